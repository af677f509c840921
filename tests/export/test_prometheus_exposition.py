"""What /metrics says, series by series: identity, lifetime, counters, histograms, formats.

The exporter is driven with check results on a controlled clock and read back through
parsers that are strict about the formats (prometheus_client's text and OpenMetrics
parsers), Prometheus' own ``promtool`` (lint of the text format; its OpenMetrics parser
through ``tsdb create-blocks-from openmetrics``) and a real agent server over HTTP.
"""

from __future__ import annotations

import asyncio
import gzip
import subprocess

import aiohttp
import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_families
from prometheus_client.parser import text_string_to_metric_families as text_families

from agent.app import Agent
from agent.catalog import load_catalog
from agent.config import parse_config
from agent.errors import ConfigError
from agent.export.exposition import OPENMETRICS, TEXT, compress_chunks, negotiate, wants_gzip
from agent.export.latest import EVENT_HOLD
from agent.export.prometheus import DEFAULT_BUCKETS, PrometheusExporter
from agent.samples import CheckResult, Kind, Sample, Status, make_tags
from tests.support.procs import PEERS, free_port, require_peer

PROMTOOL = PEERS / "promstack/root/usr/bin/promtool"
HINT = "bash tests/peers/install-promstack.sh"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def result(check: str, *samples: Sample, interval: float = 10.0, check_type: str = "t") -> CheckResult:
    return CheckResult(check, check_type, Status.OK, samples=list(samples), interval=interval)


def gauge(metric: str, value: float, **tags: str) -> Sample:
    return Sample(metric, value, make_tags(tags))


def count(metric: str, value: float, **tags: str) -> Sample:
    return Sample(metric, value, make_tags(tags), kind=Kind.COUNT)


def scrape(exp: PrometheusExporter, openmetrics: bool = False) -> dict[tuple[str, tuple], float]:
    """``{(sample name, sorted labels): value}`` of one render, parsed strictly."""
    body = exp.render(openmetrics).decode()
    parse = om_families if openmetrics else text_families
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in parse(body) for s in fam.samples}


def names(exp: PrometheusExporter) -> set[str]:
    return {name for name, _ in scrape(exp)}


# -- series identity and counters ---------------------------------------------------
def test_failed_runs_add_up_in_one_series_without_the_per_run_facts():
    """Two failed runs of one DAG: one counter series, shown at 0 before it rises, that
    reaches 2 — so ``increase()`` over it answers 2, not 0 (one series per run did)."""
    exp = PrometheusExporter()
    failed = "mlwarden.airflow.dag_run.failed"

    def failure(run_id: str) -> Sample:
        return count(failed, 1, check="af", dag_id="etl", run_type="manual", run_id=run_id,
                     failed_tasks="train", log_url=f"http://af/{run_id}/log")

    exp.consume(result("af", failure("manual__1")))
    first = scrape(exp)
    key = ("mlwarden_airflow_dag_run_failed_total",
           (("check", "af"), ("dag_id", "etl"), ("run_type", "manual")))
    assert first == {key: 0.0}, "a new counter is first shown at 0, without run_id or log_url"
    assert scrape(exp) == {key: 1.0}
    exp.consume(result("af", failure("manual__2")))
    assert scrape(exp) == {key: 2.0}
    exp.consume(result("af", failure("manual__3")))
    exp.consume(result("af", failure("manual__4")))
    assert scrape(exp) == {key: 4.0}, "an existing series rises at once"


def test_a_restarted_exporter_starts_its_counters_at_zero_again():
    """After a restart the counter reads 0 then counts on: Prometheus' rate() and increase()
    read the drop as a reset and count the new increments (tests/export/test_prometheus_airflow.py
    shows it with a real Prometheus)."""
    before = PrometheusExporter()
    for _ in range(3):
        before.consume(result("c", count("mlwarden.check.runs", 1, check="c")))
    before.render()
    assert list(scrape(before).values()) == [3.0]
    after = PrometheusExporter()
    after.consume(result("c", count("mlwarden.check.runs", 1, check="c")))
    assert list(scrape(after).values()) == [0.0]
    assert list(scrape(after).values()) == [1.0]


def test_running_totals_from_a_source_are_exposed_as_they_are():
    exp = PrometheusExporter()
    exp.consume(result("g", Sample("mlwarden.gpu.ecc.errors", 12, make_tags({"gpu": "0"}),
                                   kind=Kind.MONOTONIC_COUNT)))
    assert list(scrape(exp).values()) == [12.0], "errors since the driver loaded did not happen now"


def test_a_sample_of_another_kind_than_declared_is_dropped_not_a_second_family():
    exp = PrometheusExporter()
    exp.consume(result("c", gauge("mlwarden.check.runs", 5, check="c"),
                       gauge("mlwarden.undeclared.x", 1, check="c"), count("mlwarden.undeclared.x", 1, check="c")))
    body = exp.render().decode()
    assert "mlwarden_check_runs" not in body and "mlwarden_undeclared_x_total" not in body
    assert "mlwarden_undeclared_x " in body or "mlwarden_undeclared_x{" in body
    assert exp.status()["samples_of_the_wrong_kind"] == 2


# -- how long gauges stay -----------------------------------------------------------
def test_a_series_a_run_no_longer_reports_has_ended_and_goes_at_once():
    clock = Clock()
    exp = PrometheusExporter(clock=clock)
    exp.consume(result("gpus", gauge("mlwarden.gpu.utilization", 0.5, gpu="0", pod="train-a"),
                       gauge("mlwarden.gpu.utilization", 0.7, gpu="1", pod="train-b")))
    clock.now += 10
    # the pod on GPU 1 changed: its old series must not be summed with the new one
    exp.consume(result("gpus", gauge("mlwarden.gpu.utilization", 0.5, gpu="0", pod="train-a"),
                       gauge("mlwarden.gpu.utilization", 0.2, gpu="1", pod="train-c")))
    pods = sorted(dict(labels)["pod"] for _, labels in scrape(exp))
    assert pods == ["train-a", "train-c"]


def test_each_scrape_shows_what_changed_since_the_last_and_keeps_the_rest():
    """The render keeps each instance's text between scrapes and reformats only what
    changed: every scrape must still equal what the reports say, in both formats."""
    clock = Clock()
    exp = PrometheusExporter(clock=clock)

    def run(check: str, latency: float, up: float, runs: float = 1) -> CheckResult:
        return result(check, gauge("mlwarden.endpoint.up", up, check=check),
                      gauge("mlwarden.endpoint.latency.ttfb", latency, check=check),
                      count("mlwarden.check.runs", runs, check=check),
                      Sample("mlwarden.endpoint.latency", latency, make_tags({"check": check}),
                             kind=Kind.DISTRIBUTION))

    for check in ("a", "b", "c"):
        exp.consume(run(check, 0.1, 1))
    scrape(exp)
    scrape(exp, True)  # new counters and histograms were shown at zero
    clock.now += 10
    exp.consume(run("a", 0.2, 1))  # a moves, b says the same again, c says nothing
    exp.consume(run("b", 0.1, 1))
    for openmetrics in (False, True):
        seen = scrape(exp, openmetrics)
        ttfb = {dict(labels)["check"]: v for (name, labels), v in seen.items()
                if name == "mlwarden_endpoint_latency_ttfb_seconds"}
        assert ttfb == {"a": 0.2, "b": 0.1, "c": 0.1}
        runs = {dict(labels)["check"]: v for (name, labels), v in seen.items()
                if name == "mlwarden_check_runs_total"}
        assert runs == {"a": 2, "b": 2, "c": 1}
        counts = {dict(labels)["check"]: v for (name, labels), v in seen.items()
                  if name == "mlwarden_endpoint_latency_seconds_count"}
        assert counts == {"a": 2, "b": 2, "c": 1}
    clock.now += 11
    exp.consume(run("b", 0.1, 0))  # b goes down; c has been silent past twice its interval
    exp.forget("a")  # a was removed by a reload
    seen = scrape(exp)
    assert {(name, dict(labels)["check"]): v for (name, labels), v in seen.items()
            if name in ("mlwarden_endpoint_up", "mlwarden_endpoint_latency_ttfb_seconds")} == {
        ("mlwarden_endpoint_up", "b"): 0.0, ("mlwarden_endpoint_latency_ttfb_seconds", "b"): 0.1}
    assert not any(dict(labels).get("check") == "a" for _, labels in seen)


def test_a_group_that_shrinks_to_one_series_names_that_series_in_the_next_scrape():
    exp = PrometheusExporter(clock=Clock())
    util = "mlwarden_gpu_utilization_ratio"
    exp.consume(result("gpus", gauge("mlwarden.gpu.utilization", 0.5, gpu="0", pod="a")))
    exp.consume(result("gpus", gauge("mlwarden.gpu.utilization", 0.5, gpu="0", pod="a"),
                       gauge("mlwarden.gpu.utilization", 0.7, gpu="1", pod="b")))
    assert {dict(labels)["pod"]: v for (name, labels), v in scrape(exp).items() if name == util} == {
        "a": 0.5, "b": 0.7}
    exp.consume(result("gpus", gauge("mlwarden.gpu.utilization", 0.2, gpu="0", pod="a")))
    assert {dict(labels)["pod"]: v for (name, labels), v in scrape(exp).items() if name == util} == {
        "a": 0.2}
    exp.consume(result("gpus", gauge("mlwarden.gpu.utilization", 0.9, gpu="1", pod="b")))
    assert {dict(labels)["pod"]: v for (name, labels), v in scrape(exp).items() if name == util} == {
        "b": 0.9}


def test_a_sparse_series_stays_until_stale_twice_the_producers_interval():
    """A canary every 30 s on a 10 s check: its values are in every scrape until they are
    older than twice the instance's report interval, then they go."""
    clock = Clock()
    exp = PrometheusExporter(clock=clock)
    tags = {"check": "ep", "model": "m"}
    exp.consume(result("ep", gauge("mlwarden.endpoint.up", 1, **tags),
                       gauge("mlwarden.endpoint.canary.success", 1, **tags), interval=30))
    for _ in range(5):  # runs without a canary
        clock.now += 10
        exp.consume(result("ep", gauge("mlwarden.endpoint.up", 1, **tags), interval=30))
        assert "mlwarden_endpoint_canary_success" in names(exp)
    clock.now += 10.5  # 60.5 s after the canary: stale
    exp.consume(result("ep", gauge("mlwarden.endpoint.up", 1, **tags), interval=30))
    assert names(exp) == {"mlwarden_endpoint_up"}
    clock.now += 61  # the instance itself went silent
    assert names(exp) == set()


def test_a_run_slower_than_its_interval_keeps_its_values_until_the_next_one():
    """Runs never overlap: a 12 s run on a 2 s interval delays the next result by 12 s."""
    clock = Clock()
    exp = PrometheusExporter(clock=clock)
    slow = CheckResult("af", "airflow", Status.OK, interval=2, duration=12,
                       samples=[gauge("mlwarden.airflow.can_connect", 1, check="af")])
    exp.consume(slow)
    clock.now += 23
    assert names(exp) == {"mlwarden_airflow_can_connect"}
    clock.now += 2
    assert names(exp) == set()


def test_the_canary_sets_the_model_endpoint_checks_report_interval():
    from agent.check import CheckContext
    from checks.model_endpoint.check import ModelEndpointCheck

    cfg = ModelEndpointCheck.Config(type="model_endpoint", name="ep", url="http://127.0.0.1:1",
                                    protocol="http", interval="10s",
                                    canary={"interval": "45s", "path": "/predict", "request": {}})
    assert ModelEndpointCheck(cfg, CheckContext()).report_interval == 45.0
    plain = ModelEndpointCheck.Config(type="model_endpoint", name="ep", url="http://127.0.0.1:1",
                                      protocol="http", interval="10s")
    assert ModelEndpointCheck(plain, CheckContext()).report_interval == 10.0


def test_per_event_gauges_each_stay_on_their_own():
    """A failed task's duration is reported once, when it fails: another failure later
    must not end it, and it stays exposed for at least EVENT_HOLD."""
    clock = Clock()
    exp = PrometheusExporter(clock=clock)
    metric = "mlwarden.airflow.task_instance.failed_duration"
    exp.consume(result("af", gauge(metric, 41.5, check="af", dag_id="a", task_id="t", run_id="r1",
                                   try_number="1", map_index="-1", log_url="http://x/1")))
    clock.now += 30
    exp.consume(result("af", gauge(metric, 9.0, check="af", dag_id="b", task_id="t", run_id="r9",
                                   try_number="2", map_index="-1", log_url="http://x/9")))
    seen = scrape(exp)
    assert {dict(labels)["dag_id"]: v for (_, labels), v in seen.items()} == {"a": 41.5, "b": 9.0}
    assert all("run_id" not in dict(labels) for _, labels in seen)
    clock.now += EVENT_HOLD - 31
    assert len(scrape(exp)) == 2
    clock.now += 2
    assert [dict(labels)["dag_id"] for _, labels in scrape(exp)] == ["b"]


# -- histograms -----------------------------------------------------------------------
def test_distributions_are_classic_histograms_with_buckets_per_check_type():
    exp = PrometheusExporter(buckets={"model_endpoint": (0.1, 0.5, 1.0)})
    tags = make_tags({"check": "ep", "model": "m", "le": "x"})
    for v in (0.05, 0.1, 0.3, 2.0):
        exp.consume(result("ep", Sample("mlwarden.endpoint.latency", v, tags, kind=Kind.DISTRIBUTION),
                           check_type="model_endpoint"))
    exp.consume(result("other", Sample("mlwarden.endpoint.latency", 0.2, make_tags({"check": "other"}),
                                       kind=Kind.DISTRIBUTION), check_type="some_check"))
    first = scrape(exp)
    assert set(first.values()) == {0.0}, "new histograms are shown empty first"
    got = scrape(exp, openmetrics=True)
    base = (("check", "ep"), ("exported_le", "x"), ("model", "m"))

    def bucket(le: str) -> float:
        return got[("mlwarden_endpoint_latency_seconds_bucket", tuple(sorted((*base, ("le", le)))))]

    assert [bucket(le) for le in ("0.1", "0.5", "1.0", "+Inf")] == [2.0, 3.0, 3.0, 4.0]
    assert got[("mlwarden_endpoint_latency_seconds_count", base)] == 4.0
    assert got[("mlwarden_endpoint_latency_seconds_sum", base)] == pytest.approx(2.45)
    other = {dict(k[1]).get("le") for k in got if dict(k[1]).get("check") == "other" and "_bucket" in k[0]}
    assert other == {str(b) for b in DEFAULT_BUCKETS} | {"+Inf"}


def test_histogram_buckets_config_is_checked_with_its_path():
    cfg = parse_config("exporters:\n  prometheus:\n    histogram_buckets: {default: [0.1, 1, .inf]}\n")
    assert cfg.exporters.prometheus.histogram_buckets == {"default": (0.1, 1.0)}
    with pytest.raises(ConfigError) as err:
        parse_config("exporters:\n  prometheus:\n    histogram_buckets: {model_endpoint: [1, 0.5]}\n",
                     source="agent.yaml")
    assert "exporters.prometheus.histogram_buckets" in str(err.value)
    assert "bucket bounds must increase; found 0.5 after 1" in str(err.value)
    with pytest.raises(ConfigError, match="exporters.prometheus.listen"):
        parse_config("exporters:\n  prometheus: {listen: nowhere}\n")


# -- labels -----------------------------------------------------------------------------
def test_no_exported_label_is_instance_or_job_and_none_repeats():
    """Prometheus sets instance and job on every target: a sample's own would be renamed
    exported_* under the default honor_labels: false (and would replace the target's under
    true), so the exporter never sends them — whatever tags users or scraped sources use."""
    exp = PrometheusExporter()
    exp.consume(result("c", gauge("mlwarden.openmetrics.demo", 1, check="c", instance="src:9100",
                                  job="node", **{"a-b": "1", "a_b": "2"})))
    (labels,) = [dict(k[1]) for k in scrape(exp)]
    assert labels == {"check": "c", "exported_instance": "src:9100", "exported_job": "node", "a_b": "1"}


def test_the_catalog_declares_no_tag_that_a_scrape_would_rewrite():
    for spec in load_catalog():
        assert not {"instance", "job"} & set(spec.tags), f"{spec.name} is tagged {spec.tags}"


# -- formats ------------------------------------------------------------------------
def every_catalog_metric() -> PrometheusExporter:
    """An exporter holding one series of each catalog metric (tags, facts, odd values)."""
    exp = PrometheusExporter()
    samples = []
    for spec in load_catalog():
        tags = make_tags({"check": "c1", "env": "prod", "instance": "x"},
                         {t: f'{t} "v"\n\\' for t in spec.tags}, {f: f"{f}-fact" for f in spec.facts})
        samples.append(Sample(spec.name, 0.25, tags, kind=spec.kind))
    samples.append(Sample("mlwarden.openmetrics.vllm_num_requests_running", 3, make_tags({"check": "c1"})))
    samples.append(Sample("mlwarden.openmetrics.hits", 7, make_tags({"check": "c1"}), kind=Kind.MONOTONIC_COUNT))
    for _ in range(2):
        exp.consume(result("c1", *samples, check_type="model_endpoint"))
    exp.render()
    exp.consume(result("c1", *samples, check_type="model_endpoint"))
    return exp


def test_promtool_lints_the_text_format_clean():
    promtool = require_peer(PROMTOOL, HINT)
    body = every_catalog_metric().render()
    done = subprocess.run([str(promtool), "check", "metrics"], input=body, capture_output=True,
                          timeout=60)
    assert done.returncode == 0, (done.stdout + done.stderr).decode()
    assert len(list(text_families(body.decode()))) >= len(load_catalog())


def test_prometheus_own_openmetrics_parser_takes_the_openmetrics_format(tmp_path):
    """promtool 2.42's ``check metrics`` reads only the text format; its OpenMetrics parser
    (the one a scrape uses) runs in ``tsdb create-blocks-from openmetrics``, which needs a
    timestamp on every sample: the only change made to the body."""
    promtool = require_peer(PROMTOOL, HINT)
    body = every_catalog_metric().render(openmetrics=True).decode()
    assert body.endswith("# EOF\n")
    assert "# TYPE mlwarden_check_runs counter\n" in body and "mlwarden_check_runs_total{" in body
    assert "# UNIT mlwarden_agent_cpu_time_seconds seconds\n" in body
    assert "# TYPE mlwarden_endpoint_latency_seconds histogram\n" in body
    families = list(om_families(body))
    assert {f.name for f in families} >= {"mlwarden_check_runs", "mlwarden_endpoint_latency_seconds"}
    stamped = "".join(line if line.startswith("#") else line.rstrip("\n") + " 1700000000\n"
                      for line in body.splitlines(keepends=True))
    (tmp_path / "om.txt").write_text(stamped)
    done = subprocess.run([str(promtool), "tsdb", "create-blocks-from", "openmetrics",
                           str(tmp_path / "om.txt"), str(tmp_path / "blocks")],
                          capture_output=True, timeout=120)
    assert done.returncode == 0, (done.stdout + done.stderr).decode()
    series = sum(len(f.samples) for f in families)
    assert f" {series} " in done.stdout.decode(), done.stdout.decode()  # every sample stored


@pytest.mark.parametrize("accept,openmetrics", [
    (None, False),
    ("*/*", False),
    ("text/plain;version=0.0.4", False),
    # Prometheus 2.x's scrape header
    ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
     "text/plain;version=0.0.4;q=0.5,*/*;q=0.1", True),
    ("application/openmetrics-text; version=0.0.1; charset=utf-8", True),
    ("application/openmetrics-text;version=2.0.0", False),
    ("text/plain;q=1,application/openmetrics-text;q=0.5", False),
    ("application/openmetrics-text;q=0", False),
])
def test_content_negotiation(accept, openmetrics):
    assert negotiate(accept) is openmetrics


def test_gzip_negotiation():
    assert wants_gzip("gzip") and wants_gzip("deflate, gzip;q=0.8") and wants_gzip("*")
    assert not wants_gzip(None) and not wants_gzip("identity") and not wants_gzip("gzip;q=0")


async def test_metrics_route_negotiates_format_and_gzip_and_the_metrics_listener_needs_no_token(tmp_path):
    port, metrics_port = free_port(), free_port()
    cfg = parse_config(f"""
agent: {{listen: "127.0.0.1:{port}", history: "sqlite:///{tmp_path}/h.db", auth_token: tok-123,
         tags: {{env: test}}, self_check_interval: 0.2s}}
exporters: {{prometheus: {{listen: "127.0.0.1:{metrics_port}"}}}}
""")
    agent = Agent(cfg)
    await agent.start()
    try:
        await agent.scheduler.run_once("agent")
        await asyncio.sleep(0.5)  # the exporters' health is reported every self_check_interval
        await agent.pipeline.drain(2)
        auth = {"Authorization": "Bearer tok-123"}
        async with aiohttp.ClientSession(auto_decompress=False) as s:
            async with s.get(f"http://127.0.0.1:{port}/metrics") as r:
                assert r.status == 401
            async with s.get(f"http://127.0.0.1:{port}/metrics",
                             headers={**auth, "Accept-Encoding": "identity"}) as r:
                assert r.headers["Content-Type"] == TEXT and "Content-Encoding" not in r.headers
                text = await r.text()
            async with s.get(f"http://127.0.0.1:{metrics_port}/metrics", headers={
                    "Accept": "application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
                    "Accept-Encoding": "gzip"}) as r:
                assert r.status == 200 and r.headers["Content-Type"] == OPENMETRICS
                assert r.headers["Content-Encoding"] == "gzip"
                om = gzip.decompress(await r.read()).decode()
            async with s.get(f"http://127.0.0.1:{metrics_port}/status", headers=auth) as r:
                assert r.status == 404, "the token-free listener serves /metrics only"
        assert "mlwarden_agent_threads{" in text and om.endswith("# EOF\n")
        assert {f.name for f in text_families(text)} - {f.name for f in om_families(om)} <= {
            f"{f.name}_total" for f in om_families(om) if f.type == "counter"}
        # the agent's own components carry the agent's tags like every check's sample
        fams = {f.name: f for f in text_families(text)}
        written = fams["mlwarden_exporter_up"].samples[0].labels
        assert written["agent"] == cfg.agent.hostname and written["env"] == "test"
    finally:
        await agent.stop()


async def test_a_metrics_listener_on_a_taken_port_names_its_setting(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        agent = Agent(parse_config(f"""
agent: {{listen: "127.0.0.1:{free_port()}", history: "sqlite:///{tmp_path}/h.db"}}
exporters: {{prometheus: {{listen: "127.0.0.1:{port}"}}}}
"""))
        try:
            with pytest.raises(OSError, match=f"exporters.prometheus.listen 127.0.0.1:{port}: .*in use"):
                await agent.start()
        finally:
            await agent.stop()


def test_a_report_that_arrives_while_a_scrape_joins_its_lines_is_in_the_next_scrape():
    """Reports are formatted as they arrive and a scrape joins the texts outside the lock:
    a family that did not change between two scrapes is kept joined, and a report that
    changed it while the second scrape was joining must still show in the next one."""
    clock = Clock()

    class ReportDuringJoin(PrometheusExporter):
        during: list[CheckResult] = []

        def _join(self, parts):  # noqa: ANN001, ANN202
            while self.during:
                self.consume(self.during.pop(0))
            return super()._join(parts)

    exp = ReportDuringJoin(clock=clock)
    exp.consume(result("a", gauge("mlwarden.endpoint.up", 1, check="a")))
    scrape(exp)  # the family changed since the last render: joined afresh
    ReportDuringJoin.during.append(result("a", gauge("mlwarden.endpoint.up", 0, check="a")))
    assert scrape(exp)[("mlwarden_endpoint_up", (("check", "a"),))] == 1.0  # unchanged at its take
    assert scrape(exp)[("mlwarden_endpoint_up", (("check", "a"),))] == 0.0
    assert scrape(exp)[("mlwarden_endpoint_up", (("check", "a"),))] == 0.0  # and the cache is right


def test_scrapes_in_threads_while_reports_arrive_parse_and_end_on_the_last_values():
    """Renders run in worker threads while the loop consumes: each one must be a whole,
    valid exposition, and once reports stop, the scrape says what the last ones did."""
    import threading

    clock = Clock()
    exp = PrometheusExporter(clock=clock)
    checks = [f"c{i}" for i in range(20)]
    stop = threading.Event()
    bodies: list[bytes] = []

    def scraper() -> None:
        for _ in range(2000):  # bounded; stops when the reports do
            if stop.is_set():
                return
            bodies.append(exp.render(True))

    thread = threading.Thread(target=scraper)
    thread.start()
    try:
        for n in range(300):
            for i, check in enumerate(checks):
                exp.consume(result(check, gauge("mlwarden.endpoint.up", float((n + i) % 7 == 0), check=check),
                                   gauge("mlwarden.endpoint.latency.ttfb", n + i / 100, check=check),
                                   count("mlwarden.check.runs", 1, check=check)))
    finally:
        stop.set()
        thread.join(timeout=60)
    assert not thread.is_alive() and len(bodies) > 1
    for body in bodies[:: max(1, len(bodies) // 50)]:
        list(om_families(body.decode()))  # strict: a family split in two or a torn line fails
    scrape(exp)  # the last first increments applied
    seen = scrape(exp, True)
    for i, check in enumerate(checks):
        labels = (("check", check),)
        assert seen[("mlwarden_endpoint_up", labels)] == float((299 + i) % 7 == 0)
        assert seen[("mlwarden_endpoint_latency_ttfb_seconds", labels)] == 299 + i / 100
        assert seen[("mlwarden_check_runs_total", labels)] == 300


@pytest.mark.parametrize("sizes", [[], [0], [5, 3, 7], [8], [8, 1], [9, 2], [3, 20, 4], [4, 4, 4, 4, 1]])
def test_the_gzip_stream_reads_back_as_its_chunks_joined_across_block_boundaries(sizes):
    """The compressor copies chunks into a block and compresses a block at a time; a chunk
    that fills it exactly, overflows it, or is larger than a block must lose no byte and
    keep the order (a block of 8 bytes here; the render's are 4 MiB)."""
    chunks = [bytes([65 + i]) * n for i, n in enumerate(sizes)]
    body = compress_chunks(iter(chunks), block=8)
    assert gzip.decompress(body) == b"".join(chunks)


async def test_a_gzip_scrape_on_the_loop_reads_back_as_the_plain_render():
    """render_async gzips the same exposition render() joins, in slices on the loop."""
    exp = PrometheusExporter(clock=Clock())
    for i in range(300):
        exp.consume(result(f"c{i}", gauge("mlwarden.endpoint.up", 1, check=f"c{i}")))
    plain = exp.render(True)
    assert gzip.decompress(await exp.render_async(True, gzip=True)) == plain
    assert await exp.render_async(True, gzip=False) == plain
