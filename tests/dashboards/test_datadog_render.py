"""Datadog-side rendering of what issue #17 added: distributions (no ``.as_count()``, and
percentile aggregators Datadog computes over every agent's observations) and event-stream
widgets that pick the agent's events by their ``metric:`` tag (agent/export/events.py)."""

from __future__ import annotations

from agent.catalog import Catalog, MetricSpec, load_catalog
from agent.dashboards.render import datadog_event_query, datadog_json, datadog_query
from agent.dashboards.spec import DASHBOARDS, Dashboard, Panel, Q, Row
from agent.export.events import EventDetector
from agent.samples import CheckResult, Kind, Sample, Status, make_tags
from tests.dashboards.strict_datadog import validate_dashboard

LATENCY = MetricSpec("mlwarden.test.probe.latency", Kind.DISTRIBUTION, "seconds",
                     "One probe's latency (a test metric)", "test", ("model",))
CATALOG = Catalog([*load_catalog(), LATENCY])
DASH = Dashboard("t", "t", "t", ("env", "model"), (Row("r", (
    Panel("p95 latency", (Q(LATENCY.name, "model", agg="p95"),)),  # type: ignore[arg-type]
    Panel("mean latency", (Q(LATENCY.name, "model"),)),
    Panel("failures", (Q("mlwarden.airflow.dag_run.failed"),), viz="events"),
)),))


def test_distribution_queries_take_percentiles_and_no_count_suffix():
    p95, mean = (datadog_query(p.queries[0], DASH, CATALOG) for p in DASH.rows[0].panels[:2])
    assert p95 == "p95:mlwarden.test.probe.latency{$env,$model} by {model}"
    assert mean == "avg:mlwarden.test.probe.latency{$env,$model} by {model}"
    counter = datadog_query(Q("mlwarden.check.runs", agg="sum", rate=True), DASH, CATALOG)
    assert counter.endswith(".as_rate()")
    validate_dashboard(datadog_json(DASH, CATALOG))


def test_event_widgets_pick_the_events_the_exporters_send():
    """The query's tag is the one every event of those metrics carries."""
    widgets = [w["definition"] for g in datadog_json(DASH, CATALOG)["widgets"]
               for w in g["definition"]["widgets"]]
    stream = next(w for w in widgets if w["type"] == "event_stream")
    assert stream["query"] == "tags:metric:mlwarden.airflow.dag_run.failed"
    (event,) = EventDetector(load_catalog()).events(CheckResult("af", "airflow", Status.OK, started=1.0, samples=[
        Sample("mlwarden.airflow.dag_run.failed", 1, make_tags({"check": "af", "dag_id": "d", "run_id": "r"}),
               1.0, Kind.COUNT)]))
    assert ("metric", "mlwarden.airflow.dag_run.failed") in event.tags
    shipped = [p for d in DASHBOARDS for r in d.rows for p in r.panels if p.viz == "events"]
    event_metrics = {s.name for s in load_catalog() if s.event}
    assert {q.metric for p in shipped for q in p.queries} == event_metrics  # each on a dashboard
    for panel in shipped:
        assert datadog_event_query(panel).startswith("tags:metric:")
