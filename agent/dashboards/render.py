"""Renders the dashboard description to Datadog and Grafana JSON.

Datadog queries use catalog names (``avg:mlwarden.endpoint.up{$env} by {model}``); Grafana
PromQL uses the names the Prometheus exporter emits (``catalog.prometheus_name``), so one
description yields two dashboards that query exactly what the agent sends each backend.

PromQL windows are Grafana's ``$__rate_interval`` (never shorter than four scrapes, so a
rate always has two points to work with) and, for counts on tables and values,
``$__range``: "failed runs in the time range" is ``increase()`` over it, rounded because
Prometheus extrapolates to the window's edges and events are whole. Distributions are
histograms: percentiles are ``histogram_quantile`` over the summed bucket rates, a mean is
``rate(_sum) / rate(_count)``. Panels filter and split only by labels the agent sets and a
scrape leaves alone (the exporter never sends ``instance`` or ``job``).
"""

from __future__ import annotations

from typing import Any

from agent.catalog import Catalog, load_catalog
from agent.dashboards.spec import DASHBOARDS, PERCENTILES, Dashboard, Panel, Query
from agent.samples import Kind

__all__ = ["datadog_json", "grafana_json", "promql", "datadog_query", "datadog_event_query",
           "render_all"]

GLOBAL_VARS = ("env",)  # user tags from agent.tags, not declared per metric
# metrics tagged with the check instance they describe (every sample carries `check`, but on
# the agent's own components it names the component: filtering those by a check hides them)
PER_CHECK = frozenset({"mlwarden.check.status", "mlwarden.check.duration", "mlwarden.check.runs",
                       "mlwarden.check.errors", "mlwarden.agent.check.last_duration",
                       "mlwarden.agent.check.consecutive_failures"})
# `agent` (agent.hostname) is on what local checks and the agent's own components
# (exporters, alerting, history, leader) emit; cluster-scope checks outlive a leader
AGENT_OWN = frozenset({"*", "agent", "alerting", "history", "leader"})
RATE_WINDOW = "$__rate_interval"
RANGE_WINDOW = "$__range"
GRAFANA_UNITS = {"seconds": "s", "bytes": "bytes", "ratio": "percentunit", "celsius": "celsius",
                 "watts": "watt", "hertz": "hertz", "joules": "joule", "dollars": "currencyUSD",
                 "dollars_per_hour": "currencyUSD"}


def _vars_for(query: Query, dash: Dashboard, catalog: Catalog) -> list[str]:
    spec = catalog[query.metric]
    return [v for v in dash.variables
            if v in GLOBAL_VARS or v in spec.tags
            or (v == "check" and query.metric in PER_CHECK)
            or (v == "agent" and (query.metric in PER_CHECK or spec.check in AGENT_OWN))]


# -- Datadog ---------------------------------------------------------------------------
def datadog_query(query: Query, dash: Dashboard, catalog: Catalog) -> str:
    filters = [f"{k}:{v}" for k, v in query.where] + [f"${v}" for v in _vars_for(query, dash, catalog)]
    scope = ",".join(filters) or "*"
    q = f"{query.agg}:{query.metric}{{{scope}}}"
    if query.by:
        q += " by {" + ",".join(query.by) + "}"
    spec = catalog[query.metric]
    if spec.kind in (Kind.COUNT, Kind.MONOTONIC_COUNT):
        q += ".as_rate()" if query.rate else ".as_count()"
    # a distribution takes avg/sum/min/max (over every observation) or a percentile
    # aggregator (p50, p95, ...): Datadog computes it over all agents' observations
    return q


def datadog_event_query(panel: Panel) -> str:
    """The event stream of a panel's metrics: every event carries a ``metric:`` tag."""
    return "tags:" + ",".join(f"metric:{q.metric}" for q in panel.queries)


def _dd_widget(panel: Panel, dash: Dashboard, catalog: Catalog) -> dict[str, Any]:
    if panel.viz == "note":
        return {"definition": {"type": "note", "content": panel.text, "background_color": "gray",
                               "font_size": "14", "text_align": "left", "show_tick": False,
                               "has_padding": True}}
    title = panel.title + (f" ({panel.unit.replace('_', ' ')})" if panel.unit else "")
    if panel.viz == "events":
        return {"definition": {"type": "event_stream", "title": title, "event_size": "l",
                               "query": datadog_event_query(panel)}}
    queries = [datadog_query(q, dash, catalog) for q in panel.queries]
    if panel.viz == "timeseries":
        requests = [{"q": q, "display_type": "line"} for q in queries]
        definition: dict[str, Any] = {"type": "timeseries", "title": title, "requests": requests,
                                      "show_legend": True}
    elif panel.viz == "value":
        definition = {"type": "query_value", "title": title, "precision": 2,
                      "requests": [{"q": queries[0],
                                    "aggregator": "sum" if panel.queries[0].increase else "last"}]}
    elif panel.viz == "toplist":
        definition = {"type": "toplist", "title": title,
                      "requests": [{"q": f"top({queries[0]}, 10, 'last', 'desc')"}]}
    else:  # table
        definition = {"type": "query_table", "title": title,
                      "requests": [{"q": q, "aggregator": "sum" if pq.increase else "last", "limit": 50}
                                   for q, pq in zip(queries, panel.queries)]}
    return {"definition": definition}


def datadog_json(dash: Dashboard, catalog: Catalog | None = None) -> dict[str, Any]:
    """A dashboard in the shape Datadog's v1 dashboard API takes and its UI imports."""
    catalog = catalog or load_catalog()
    groups = []
    for row in dash.rows:
        groups.append({"definition": {
            "type": "group", "title": row.title, "layout_type": "ordered",
            "widgets": [_dd_widget(p, dash, catalog) for p in row.panels]}})
    return {
        "title": dash.title,
        "description": dash.description,
        "layout_type": "ordered",
        "reflow_type": "auto",
        "template_variables": [{"name": v, "prefix": v, "available_values": [], "default": "*"}
                               for v in dash.variables],
        "widgets": groups,
        "notify_list": [],
    }


# -- Grafana ---------------------------------------------------------------------------
def promql(query: Query, dash: Dashboard, catalog: Catalog, instant: bool = False) -> str:
    """The PromQL of one query; ``instant``: a table/value/toplist (counts over the range)."""
    spec = catalog[query.metric]
    name = spec.prometheus
    matchers = [f'{k}="{v}"' for k, v in query.where]
    matchers += [f'{v}=~"${v}"' for v in _vars_for(query, dash, catalog)]
    labels = "{" + ",".join(matchers) + "}" if matchers else ""
    if spec.kind is Kind.DISTRIBUTION:
        return _histogram(query, name, labels)
    selector = name + labels
    if query.increase:
        window = RANGE_WINDOW if instant else RATE_WINDOW
        inner = f"increase({selector}[{window}])"
    elif query.rate and spec.kind is not Kind.GAUGE:
        inner = f"rate({selector}[{RATE_WINDOW}])"
    else:
        inner = selector
    by = f" by ({','.join(query.by)})" if query.by else ""
    expr = f"{query.agg}{by} ({inner})"
    return f"round({expr})" if query.increase else expr


def _histogram(query: Query, name: str, labels: str) -> str:
    def rate(suffix: str) -> str:
        return f"rate({name}_{suffix}{labels}[{RATE_WINDOW}])"

    if query.agg in PERCENTILES:
        by = ",".join(("le", *query.by))
        return f"histogram_quantile({PERCENTILES[query.agg]}, sum by ({by}) ({rate('bucket')}))"
    by = f" by ({','.join(query.by)})" if query.by else ""
    return f"sum{by} ({rate('sum')}) / sum{by} ({rate('count')})"


def _gf_panel(panel: Panel, dash: Dashboard, catalog: Catalog, pid: int, x: int, y: int) -> dict[str, Any]:
    grid = {"h": 8, "w": 8, "x": x, "y": y}
    if panel.viz in ("note", "events"):
        content = panel.text if panel.viz == "note" else (
            "Datadog shows these as events (with run ids and log links); here, graph their "
            "counters: " + ", ".join(f"`{catalog[q.metric].prometheus}`" for q in panel.queries))
        return {"id": pid, "type": "text", "title": panel.title, "gridPos": grid,
                "options": {"mode": "markdown", "content": content}}
    targets = []
    instant = panel.viz in ("value", "table", "toplist")
    for i, q in enumerate(panel.queries):
        expr = promql(q, dash, catalog, instant)
        if panel.viz == "toplist":
            expr = f"topk(10, {expr})"
        legend = " ".join("{{" + b + "}}" for b in q.by)
        if q.label:
            legend = f"{q.label} {legend}".strip()
        targets.append({"refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend or "__auto",
                        "instant": panel.viz in ("value", "table", "toplist"),
                        "datasource": {"type": "prometheus", "uid": "${datasource}"}})
    kind = {"timeseries": "timeseries", "value": "stat", "toplist": "bargauge", "table": "table"}[panel.viz]
    out: dict[str, Any] = {
        "id": pid, "type": kind, "title": panel.title, "gridPos": grid,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "targets": targets,
        "fieldConfig": {"defaults": {"unit": GRAFANA_UNITS.get(panel.unit, "short")}, "overrides": []},
    }
    if panel.description:
        out["description"] = panel.description
    if kind == "table":
        out["transformations"] = [{"id": "merge", "options": {}}]
    return out


def grafana_json(dash: Dashboard, catalog: Catalog | None = None) -> dict[str, Any]:
    """The same dashboard for Grafana, querying a Prometheus data source chosen by variable."""
    catalog = catalog or load_catalog()
    panels: list[dict[str, Any]] = []
    pid, y = 1, 0
    for row in dash.rows:
        panels.append({"id": pid, "type": "row", "title": row.title, "collapsed": False,
                       "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
        pid, y = pid + 1, y + 1
        for i, panel in enumerate(row.panels):
            panels.append(_gf_panel(panel, dash, catalog, pid, (i % 3) * 8, y + (i // 3) * 8))
            pid += 1
        y += ((len(row.panels) + 2) // 3) * 8
    variables: list[dict[str, Any]] = [{
        "name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus",
        "current": {}, "hide": 0, "refresh": 1, "options": [],
    }]
    for v in dash.variables:
        variables.append({
            "name": v, "label": v, "type": "query",
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "query": {"query": f'label_values({{__name__=~"mlwarden_.+"}}, {v})', "refId": f"var-{v}"},
            "definition": f'label_values({{__name__=~"mlwarden_.+"}}, {v})',
            "includeAll": True, "allValue": ".*", "multi": True, "refresh": 2, "sort": 1,
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]}, "options": [],
        })
    return {
        "uid": dash.slug[:40],
        "title": dash.title,
        "description": dash.description,
        "tags": ["mlwarden"],
        "timezone": "browser",
        "editable": True,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "1m",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": variables},
        "annotations": {"list": []},
        "panels": panels,
    }


def render_all(fmt: str) -> dict[str, dict[str, Any]]:
    """``{file name: dashboard JSON}`` for one format (``datadog`` or ``grafana``)."""
    catalog = load_catalog()
    render = datadog_json if fmt == "datadog" else grafana_json
    return {f"{d.slug}.json": render(d, catalog) for d in DASHBOARDS}
