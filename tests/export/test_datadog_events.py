"""Per-run facts reach Datadog as events, while the counters stay bounded series.

The Airflow check runs against recorded Airflow answers (tests/checks/airflow_fake.py:
Airflow 3.3.2 and 2.10.5 responses), and its results go to both Datadog exporters, read
back on the wire: DogStatsD ``_e`` datagrams parsed by the UDP listener, and
``/api/v1/events`` bodies validated against datadog-api-client's ``EventCreateRequest``.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from agent.catalog import load_catalog
from agent.check import CheckContext, MemoryState
from agent.export.config import DatadogConfig
from agent.export.datadog_api import EVENT_KIND, DatadogApiExporter
from agent.export.datadog_statsd import DogStatsdExporter
from agent.export.events import EventDetector, aggregation_key
from agent.history.db import create_schema, make_engine
from agent.history.outbox import Outbox
from agent.samples import CheckResult, Kind, Sample, Status, make_tags
from checks.airflow.check import AirflowCheck
from checks.airflow.config import AirflowConfig
from tests.checks.airflow_fake import PASSWORD, USER, FakeAirflow
from tests.export.dogstatsd_listener import DogStatsdListener
from tests.export.fake_intake import FakeIntake
from tests.support.procs import wait_for
from tests.support.targets import load_fixture

REPO = Path(__file__).resolve().parents[2]
RUN_ID = "manual__2026-11-28T15:18:03.000917+00:00"


async def airflow_results(major: str) -> tuple[list[CheckResult], str]:
    """Three polls of an Airflow whose run of train_ranker failed (task `train` on its third
    try) and whose DAG file broken_features.py fails to import, then imports again."""
    now = time.time()
    fake = FakeAirflow(major, time.time)
    fake.run("train_ranker", RUN_ID, "failed", now - 60, now - 10)
    fake.ti("train_ranker", RUN_ID, "train", "failed", try_number=3, duration=5.4)
    fake.ti("train_ranker", RUN_ID, "publish", "upstream_failed")
    fake.import_errors = load_fixture(f"airflow{major}", "import_errors_one.json")["import_errors"]
    state = MemoryState()
    results = []
    async with fake.target() as t:
        config = AirflowConfig(type="airflow", name="prod-airflow", url=t.url, username=USER,
                               password=PASSWORD, ui_url="https://airflow.example.com")
        for poll in range(3):
            check = AirflowCheck(config, CheckContext(state=state, agent_tags={"env": "dev"}))
            try:
                results.append(await check.run())
            finally:
                await check.context.close()
            if poll == 0:
                fake.import_errors = []
    failed = [s for s in results[0].samples if s.metric == "mlwarden.airflow.task_instance.failed"]
    return results, failed[0].tag("log_url") or ""


def dd_env(monkeypatch) -> None:
    monkeypatch.setenv("DD_ENV", "staging")
    monkeypatch.setenv("DD_SERVICE", "ml-pipelines")
    monkeypatch.setenv("DD_VERSION", "2.4.0")
    monkeypatch.delenv("DD_TAGS", raising=False)


def check_airflow_events(events: list[dict], log_url: str, major: str) -> None:
    """Events as dicts with title, text, alert_type, aggregation_key, tags."""
    by_title = {e["title"]: e for e in events}
    assert set(by_title) == {
        "Airflow DAG run failed: train_ranker",
        "Airflow task failed: train_ranker.train",
        "DAG file fails to import: " + ("broken_features.py" if major == "3"
                                        else "/opt/airflow/dags/broken_features.py"),
        "DAG file imports again: " + ("broken_features.py" if major == "3"
                                      else "/opt/airflow/dags/broken_features.py"),
    }, sorted(by_title)  # once each: the third poll repeats nothing
    task = by_title["Airflow task failed: train_ranker.train"]
    assert task["alert_type"] == "error" and task["priority"] == "normal"
    assert f"[Open the log]({log_url})" in task["text"]
    assert f"run_id: `{RUN_ID}`" in task["text"] and "try_number: `3`" in task["text"]
    assert task["aggregation_key"] == aggregation_key(
        "mlwarden.airflow.task_instance.failed",
        (("check", "prod-airflow"), ("dag_id", "train_ranker"), ("task_id", "train")))
    assert task["aggregation_key"] == ("mlwarden.airflow.task_instance.failed,check:prod-airflow,"
                                       "dag_id:train_ranker,task_id:train")
    run = by_title["Airflow DAG run failed: train_ranker"]
    assert f"[Open the log]({log_url})" in run["text"] and "failed_tasks: `train`" in run["text"]
    fixed = next(e for t, e in by_title.items() if t.startswith("DAG file imports again"))
    broken = next(e for t, e in by_title.items() if t.startswith("DAG file fails"))
    assert (broken["alert_type"], fixed["alert_type"]) == ("error", "success")
    assert broken["aggregation_key"] == fixed["aggregation_key"]  # one thread in the stream
    assert "No module named" in broken["text"]
    for event in events:
        names = [t.split(":", 1)[0] for t in event["tags"]]
        assert sorted(names) == sorted(set(names)), event["tags"]  # each key once
        assert {"env:staging", "service:ml-pipelines", "version:2.4.0"} <= set(event["tags"])
        assert not {"run_id", "log_url", "try_number", "error", "failed_tasks"} & set(names)
        assert "dag_id:train_ranker" in event["tags"] or "filename" in names


def check_bounded_counters(series_tags: list[tuple[str, tuple[str, ...]]]) -> None:
    """The failed-run counters are one series per DAG (and task), whatever the run."""
    for metric, tags in series_tags:
        if metric in ("mlwarden.airflow.dag_run.failed", "mlwarden.airflow.task_instance.failed",
                      "mlwarden.airflow.import_error"):
            names = {t.split(":", 1)[0] for t in tags}
            assert not {"run_id", "log_url", "try_number", "map_index", "failed_tasks", "error"} & names, tags


@pytest.mark.parametrize("major", ["3", "2"])
async def test_failed_airflow_runs_arrive_as_dogstatsd_events_with_their_log_links(major, monkeypatch):
    dd_env(monkeypatch)
    results, log_url = await airflow_results(major)
    with DogStatsdListener() as listener:
        exporter = DogStatsdExporter(DatadogConfig(host="127.0.0.1", port=listener.port),
                                     file_tag_keys=("env",))
        for result in results:
            exporter.consume(result)
        exporter.flush()
        wait_for(lambda: len(listener.snapshot_events()) >= 4, 5, 0.05, "four events")
        time.sleep(0.2)
        await exporter.stop()
    assert listener.problems == []
    events = [{"title": e.title, "text": e.text, "alert_type": e.alert_type, "priority": e.priority,
               "aggregation_key": e.aggregation_key, "tags": e.tags} for e in listener.snapshot_events()]
    assert {e.source for e in listener.snapshot_events()} == {"mlwarden"}
    check_airflow_events(events, log_url, major)
    check_bounded_counters([(m.name, m.tags) for m in listener.ours()])


async def test_failed_airflow_runs_arrive_as_api_events_once_across_a_restart(tmp_path, monkeypatch):
    dd_env(monkeypatch)
    results, log_url = await airflow_results("3")
    engine = make_engine(f"sqlite:///{tmp_path}/h.db")
    create_schema(engine)
    with FakeIntake() as intake:
        config = DatadogConfig(mode="api", api_key=intake.api_key, api_url=intake.url)
        exporter = DatadogApiExporter(config, engine, hostname="node-1", file_tag_keys=("env",))
        exporter._configure_client()
        for result in results:
            exporter.consume(result)
        batch = exporter._take()
        exporter._to_outbox(time.time(), batch)
        # a second agent on the same store (or a restart) queues the same events: no-ops
        exporter._to_outbox(time.time(), batch)
        exporter.cycle(time.time())
        assert intake.problems == []
        events = list(intake.events)
        series = [(s["metric"], tuple(s["tags"])) for p in intake.series_payloads for s in p["series"]]
    engine.dispose()
    assert len(events) == 4 and Outbox(engine).pending_count(EVENT_KIND) == 0
    assert {e["host"] for e in events} == {"node-1"} and {e["source_type_name"] for e in events} == {"mlwarden"}
    check_airflow_events(events, log_url, "3")
    check_bounded_counters(series)


def ready(value: float, ts: float) -> CheckResult:
    tags = make_tags({"check": "ranker", "model": "ranker", "endpoint": "http://ranker:8080",
                      "protocol": "v2"})
    return CheckResult("ranker", "model_endpoint", Status.OK, started=ts,
                       samples=[Sample("mlwarden.endpoint.ready", value, tags, ts)])


def test_gauge_events_fire_on_transitions_of_the_catalog_trigger():
    """endpoint.ready is `warning@0`: a model that stops being ready (an unload) is a
    warning, becoming ready again a success, staying either way nothing; a first reading
    of 1 sets the baseline silently."""
    detector = EventDetector(load_catalog())
    seen = []
    for i, value in enumerate([1, 1, 0, 0, 1, 1, 0]):
        seen += [(i, e.alert_type, e.title) for e in detector.events(ready(value, 1000.0 + i))]
    assert seen == [
        (2, "warning", "Model not ready: ranker at http://ranker:8080"),
        (4, "success", "Model ready again: ranker at http://ranker:8080"),
        (6, "warning", "Model not ready: ranker at http://ranker:8080"),
    ]
    fresh = EventDetector(load_catalog())  # a model already unloaded when the agent starts
    assert [e.alert_type for e in fresh.events(ready(0, 1000.0))] == ["warning"]


def test_xid_counts_are_events_and_zero_counts_are_not():
    detector = EventDetector(load_catalog())
    tags = make_tags({"check": "gpus", "node": "gpu-node-7", "gpu": "0", "uuid": "GPU-1",
                      "xid": "79", "xid_meaning": "gpu_fell_off_the_bus"})

    def xid(n: float) -> CheckResult:
        return CheckResult("gpus", "gpu", Status.CRITICAL, started=2000.0, samples=[
            Sample("mlwarden.gpu.xid.errors", n, tags, 2000.0, Kind.COUNT)])

    assert detector.events(xid(0)) == []
    (event,) = detector.events(xid(2))
    assert event.alert_type == "error"
    assert event.title == "GPU XID 79 (gpu_fell_off_the_bus) on gpu-node-7 GPU 0"
    assert "**mlwarden.gpu.xid.errors** = 2" in event.text


def test_long_keys_and_texts_stay_within_the_intakes_limits():
    key = aggregation_key("mlwarden.airflow.task_instance.failed", (("dag_id", "d" * 150),))
    assert len(key) <= 100 and key.startswith("mlwarden.airflow.task_instance.failed,")
    detector = EventDetector(load_catalog())
    url = "https://airflow.example.com/log?x=1"
    tags = make_tags({"check": "af", "dag_id": "d", "task_id": "t", "run_id": "r" * 5000,
                      "log_url": url, "try_number": "1", "map_index": "-1"})
    (event,) = detector.events(CheckResult("af", "airflow", Status.OK, started=1.0, samples=[
        Sample("mlwarden.airflow.task_instance.failed", 1, tags, 1.0, Kind.COUNT)]))
    assert len(event.text) <= 4000 and event.text.endswith(f"[Open the log]({url})\n %%%")


def test_docs_name_every_event_metric():
    doc = (REPO / "docs" / "exporters.md").read_text()
    for spec in load_catalog():
        if spec.event:
            assert f"`{spec.name}`" in doc, f"docs/exporters.md does not list the event metric {spec.name}"


def test_registered_secrets_never_reach_an_event(monkeypatch):
    from agent import secrets

    monkeypatch.setattr(secrets, "_secrets", secrets._secrets)  # restored after the test
    secrets.register_secret("hunter2-airflow-password")
    tags = make_tags({"check": "af", "filename": "dags/x.py",
                      "error": "ConnectionError: postgres://af:hunter2-airflow-password@db"})
    (event,) = EventDetector(load_catalog()).events(CheckResult("af", "airflow", Status.OK, samples=[
        Sample("mlwarden.airflow.import_error", 1, tags, 1.0)], started=1.0))
    assert "hunter2" not in event.text and "********" in event.text
