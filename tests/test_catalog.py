"""The metric catalog: every metadata.csv parses and names convert the one way."""

from __future__ import annotations

import pytest

from agent.catalog import Catalog, load_catalog, prometheus_name, read_metadata_csv
from agent.check import CheckContext, InstanceConfig
from agent.plugins import check_types
from agent.samples import Kind


@pytest.mark.parametrize("name,kind,unit,expected", [
    ("mlwarden.endpoint.latency", Kind.GAUGE, "seconds", "mlwarden_endpoint_latency_seconds"),
    ("mlwarden.check.runs", Kind.COUNT, "runs", "mlwarden_check_runs_total"),
    ("mlwarden.agent.cpu.time", Kind.MONOTONIC_COUNT, "seconds", "mlwarden_agent_cpu_time_seconds_total"),
    ("mlwarden.gpu.memory.used_bytes", Kind.GAUGE, "bytes", "mlwarden_gpu_memory_used_bytes"),
    ("mlwarden.x.errors_total", Kind.COUNT, "", "mlwarden_x_errors_total"),
])
def test_prometheus_name(name, kind, unit, expected):
    assert prometheus_name(name, kind, unit) == expected


def test_catalog_loads_every_installed_check():
    catalog = load_catalog()
    assert "mlwarden.check.status" in catalog
    for type_name, cls in check_types().items():
        if type_name.startswith("test_"):
            continue
        assert cls.metadata_path() and cls.metadata_path().exists(), f"{type_name} has no metadata.csv"
        assert catalog.for_check(type_name), f"{type_name} declares no metrics"


def test_duplicate_declaration_fails():
    spec = next(iter(load_catalog()))
    with pytest.raises(ValueError, match="declared twice"):
        Catalog([spec, spec])


def test_bad_rows_name_file_and_line(tmp_path):
    path = tmp_path / "metadata.csv"
    path.write_text("metric_name,metric_type,unit,description,check,tags\n"
                    "mlwarden.a.b,gauge,,ok,x,\nmlwarden.a.c,histogram,,bad,x,\n")
    with pytest.raises(ValueError, match=r"metadata.csv:3: metric_type must be one of"):
        read_metadata_csv(path)


async def test_self_check_emits_only_catalog_metrics(catalog_check, tmp_path):
    from checks.agent.check import AgentSelfCheck
    from agent.app import Agent
    from agent.config import parse_config
    from agent.scheduler import add_meta_samples

    agent = Agent(parse_config(f"agent: {{listen: '127.0.0.1:1', history: 'sqlite:///{tmp_path}/h.db'}}"))
    check = AgentSelfCheck(InstanceConfig(type="agent", name="agent"), CheckContext(runtime=agent))
    agent.scheduler.set_checks([check])
    agent.scheduler.states["agent"].last_duration = 0.01  # as after a first run
    result = await check.run()
    add_meta_samples(check, result)
    catalog_check(result)
    declared = {s.name for s in load_catalog().for_check("agent")}
    assert {s.metric for s in result.samples if s.metric.startswith("mlwarden.agent.")} == declared


def test_counters_carry_no_per_event_tag():
    """A counter tagged with a per-event value (a run id, a log link) starts a new series at
    1 for every event, so ``rate()`` over it is always 0 and every event is a billed Datadog
    custom metric: such values must be declared as facts, never as tags."""
    # (``error`` and ``reason`` on the agent's own counters are bounded kinds: timeout, ...)
    per_event = {"run_id", "log_url", "try_number", "map_index", "failed_tasks", "message",
                 "url", "timestamp", "trace_id", "request_id"}
    for spec in load_catalog():
        if spec.kind in (Kind.COUNT, Kind.MONOTONIC_COUNT):
            assert not per_event & set(spec.tags), f"{spec.name} has per-event tags {spec.tags}"


def test_series_tags_drop_facts_only():
    catalog = load_catalog()
    tags = (("dag_id", "etl"), ("log_url", "http://x/log"), ("run_id", "r1"), ("run_type", "manual"))
    assert catalog.series_tags("mlwarden.airflow.dag_run.failed", tags) == (
        ("dag_id", "etl"), ("run_type", "manual"))
    plain = (("dag_id", "etl"), ("state", "failed"))
    assert catalog.series_tags("mlwarden.airflow.dag_run.finished", plain) is plain
    assert catalog.series_tags("not.declared", plain) is plain


def test_facts_and_event_columns_are_checked(tmp_path):
    path = tmp_path / "metadata.csv"
    path.write_text("metric_name,metric_type,unit,description,check,tags,facts,event\n"
                    "mlwarden.a.b,count,,ok,x,dag_id,run_id,error\n"
                    "mlwarden.a.c,count,,bad,x,dag_id run_id,run_id,\n")
    with pytest.raises(ValueError, match=r"metadata.csv:3: \['run_id'\] listed both as tags and as facts"):
        read_metadata_csv(path)
    path.write_text("metric_name,metric_type,unit,description,check,tags,facts,event\n"
                    "mlwarden.a.b,count,,ok,x,dag_id,run_id,page\n")
    with pytest.raises(ValueError, match=r"metadata.csv:2: event must be empty or one of"):
        read_metadata_csv(path)
    path.write_text("metric_name,metric_type,unit,description,check,tags\nmlwarden.a.b,count,,ok,x,\n")
    (spec,) = read_metadata_csv(path)
    assert spec.facts == () and spec.event == ""
