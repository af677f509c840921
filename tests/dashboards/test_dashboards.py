"""The shipped dashboards match the catalog, import cleanly and are regenerated, not hand-edited."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.catalog import load_catalog
from agent.dashboards.render import datadog_json, grafana_json, promql, render_all
from agent.dashboards.spec import DASHBOARDS, PERCENTILES, UNDASHBOARDED
from agent.samples import Kind
from tests.dashboards.strict_datadog import validate_dashboard

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("fmt", ["datadog", "grafana"])
def test_committed_json_is_what_the_code_generates(fmt):
    generated = render_all(fmt)
    folder = REPO / "dashboards" / fmt
    committed = {p.name: json.loads(p.read_text()) for p in folder.glob("*.json")}
    assert set(committed) == set(generated), "run: mlwarden dashboards export dashboards"
    for name, doc in generated.items():
        assert committed[name] == doc, f"dashboards/{fmt}/{name} is stale: run mlwarden dashboards export dashboards"


def test_every_queried_metric_is_in_the_catalog():
    catalog = load_catalog()
    for dash in DASHBOARDS:
        for q in dash.queries():
            assert q.metric in catalog, f"{dash.slug} queries {q.metric}, which no check emits"
            spec = catalog[q.metric]
            if q.rate or q.increase:
                assert spec.kind in (Kind.COUNT, Kind.MONOTONIC_COUNT), f"{q.metric}: rate of a {spec.kind.value}"
            if spec.kind is Kind.DISTRIBUTION:  # a histogram has a mean and percentiles only
                assert q.agg == "avg" or q.agg in PERCENTILES, f"{q.metric}: {q.agg} of a distribution"
            else:
                assert q.agg not in PERCENTILES, f"{q.metric}: percentiles need a distribution"
            for tag in q.by:
                assert tag in spec.tags or tag == "check", f"{q.metric} has no tag {tag!r} to split by"


def test_every_catalog_metric_is_on_a_dashboard_or_listed_as_undashboarded():
    used = {q.metric for d in DASHBOARDS for q in d.queries()}
    catalog = {s.name for s in load_catalog()}
    missing = catalog - used - set(UNDASHBOARDED)
    assert not missing, f"catalog metrics on no dashboard (add a panel or an UNDASHBOARDED reason): {sorted(missing)}"
    assert not set(UNDASHBOARDED) - catalog, "UNDASHBOARDED lists metrics that are not in the catalog"
    assert not set(UNDASHBOARDED) & used, "a metric is both on a dashboard and listed as undashboarded"


@pytest.mark.parametrize("dash", DASHBOARDS, ids=[d.slug for d in DASHBOARDS])
def test_datadog_json_deserialises_strictly_into_the_official_model(dash):
    model = validate_dashboard(datadog_json(dash))
    assert model.title == dash.title
    assert [v.name for v in model.template_variables] == list(dash.variables)


def test_strict_validation_rejects_unknown_widgets_and_fields():
    with pytest.raises(AssertionError):
        validate_dashboard({"title": "x", "layout_type": "ordered",
                            "widgets": [{"definition": {"type": "timeseriez", "requests": []}}]})
    with pytest.raises(AssertionError, match="bogus"):
        validate_dashboard({"title": "x", "layout_type": "ordered", "widgets": [
            {"definition": {"type": "timeseries", "requests": [{"q": "avg:a{*}", "bogus": 1}]}}]})


def test_grafana_queries_use_the_prometheus_names():
    catalog = load_catalog()
    for dash in DASHBOARDS:
        doc = grafana_json(dash)
        assert doc["templating"]["list"][0]["type"] == "datasource"
        exprs = [t["expr"] for p in doc["panels"] for t in p.get("targets", [])]
        for q in dash.queries():
            assert catalog[q.metric].prometheus in " ".join(exprs)
        ids = [p["id"] for p in doc["panels"]]
        assert len(ids) == len(set(ids))


def test_promql_shapes():
    from agent.dashboards.spec import AGENT, AIRFLOW, ENDPOINTS, Q

    catalog = load_catalog()
    assert promql(Q("mlwarden.check.runs", "check_type", agg="sum", rate=True), AGENT, catalog) == \
        'sum by (check_type) (rate(mlwarden_check_runs_total{env=~"$env",agent=~"$agent",check=~"$check"}' \
        '[$__rate_interval]))'
    assert promql(Q("mlwarden.agent.memory.rss", agg="max"), AGENT, catalog) == \
        'max (mlwarden_agent_memory_rss_bytes{env=~"$env",agent=~"$agent"})'
    # the agent's components are not check instances: no check filter that would hide them,
    # but they carry the agent's tags like every sample
    assert promql(Q("mlwarden.exporter.up", "exporter", agg="min"), AGENT, catalog) == \
        'min by (exporter) (mlwarden_exporter_up{env=~"$env",agent=~"$agent"})'
    # how many failed in the dashboard's range (a table) or per interval (a graph)
    failed = Q("mlwarden.airflow.dag_run.failed", "dag_id", agg="sum", increase=True)
    assert promql(failed, AIRFLOW, catalog, instant=True) == \
        'round(sum by (dag_id) (increase(mlwarden_airflow_dag_run_failed_total{env=~"$env",dag_id=~"$dag_id"}' \
        '[$__range])))'
    assert "[$__rate_interval]" in promql(failed, AIRFLOW, catalog)
    # distributions are histograms: percentiles across every agent, and a mean
    sel = 'mlwarden_endpoint_latency_seconds_{}{{env=~"$env",model=~"$model",endpoint=~"$endpoint"}}'
    assert promql(Q("mlwarden.endpoint.latency", "model", agg="p95"), ENDPOINTS, catalog) == \
        f'histogram_quantile(0.95, sum by (le,model) (rate({sel.format("bucket")}[$__rate_interval])))'
    assert promql(Q("mlwarden.endpoint.latency", "endpoint"), ENDPOINTS, catalog) == \
        f'sum by (endpoint) (rate({sel.format("sum")}[$__rate_interval])) / ' \
        f'sum by (endpoint) (rate({sel.format("count")}[$__rate_interval]))'


def test_export_command_writes_each_format(tmp_path):
    import subprocess
    import sys

    mlwarden = Path(sys.executable).with_name("mlwarden")
    result = subprocess.run([str(mlwarden), "dashboards", "export", "--format", "grafana",
                             str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "datadog").exists()
    written = {p.name: json.loads(p.read_text()) for p in (tmp_path / "grafana").glob("*.json")}
    assert written == render_all("grafana")
    lines = result.stdout.splitlines()  # what it wrote, one line each, and how to import them
    assert len(lines) == len(DASHBOARDS) + 1
    for dash in DASHBOARDS:
        assert f"{tmp_path / 'grafana' / (dash.slug + '.json')}  grafana dashboard {dash.title!r}" in lines
    assert lines[-1].startswith(f"wrote {len(DASHBOARDS)} dashboard files under {tmp_path}/; "
                                "import them in Grafana: Dashboards > New > Import")


def test_grafana_windows_follow_the_scrape_and_labels_survive_it():
    """Windows are Grafana's own ($__rate_interval for rates, $__range for counts over the
    dashboard's range), never a fixed 5m that is too short at a slow scrape; and no panel
    splits or filters by a label Prometheus sets on the target itself."""
    import re

    for dash in DASHBOARDS:
        for panel in grafana_json(dash)["panels"]:
            for target in panel.get("targets", []):
                windows = set(re.findall(r"\[([^\]]+)\]", target["expr"]))
                assert windows <= {"$__rate_interval", "$__range"}, (panel["title"], target["expr"])
        labels = set(dash.variables) | {t for q in dash.queries() for t in (*q.by, *dict(q.where))}
        assert not labels & {"instance", "job"}, (dash.slug, labels)
