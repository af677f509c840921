"""Renders each dashboard's panels from the local history store to a PNG.

Datadog and Grafana cannot run here; a preview lets a person see what a dashboard shows
with the agent's own data before importing it. Series are aggregated the way the panel's
query says (``agg`` across series, split by ``by`` tags) into buckets of about 1/240 of the
range; counters the panel plots as rates become per-second rates.
"""

from __future__ import annotations

import io
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone

from agent.catalog import load_catalog
from agent.dashboards.spec import Dashboard, Panel, Query
from agent.history.protocol import SeriesReader
from agent.samples import Kind, Tags

__all__ = ["aggregate", "panel_series", "render_dashboard"]

_AGG = {"avg": lambda v: sum(v) / len(v), "sum": sum, "min": min, "max": max}


def aggregate(series: Mapping[Tags, Sequence[tuple[float, float]]], query: Query, kind: Kind,
              step: float = 60.0) -> dict[str, list[tuple[float, float]]]:
    """Group series by the query's ``by`` tags and aggregate each bucket (rates for counters)."""
    where = dict(query.where)
    groups: dict[str, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    for tags, points in series.items():
        tag_map = dict(tags)
        if any(tag_map.get(k) != v for k, v in where.items()):
            continue
        label = ",".join(f"{k}={tag_map.get(k, '')}" for k in query.by) or query.label or query.metric
        if query.label and query.by:
            label = f"{query.label} {label}"
        values = _per_second(points, kind) if query.rate else points
        per_bucket: dict[float, list[float]] = defaultdict(list)
        for ts, value in values:
            per_bucket[math.floor(ts / step) * step].append(value)
        for bucket, vals in per_bucket.items():
            groups[label][bucket].append(vals[-1])  # a series' last value in the bucket
    agg = _AGG[query.agg]
    return {label: sorted((b, agg(v)) for b, v in buckets.items()) for label, buckets in groups.items()}


def _per_second(points: Sequence[tuple[float, float]], kind: Kind) -> list[tuple[float, float]]:
    out = []
    if kind is Kind.COUNT:  # deltas per sample
        for (t0, _), (t1, v1) in zip(points, points[1:]):
            if t1 > t0:
                out.append((t1, v1 / (t1 - t0)))
        return out
    for (t0, v0), (t1, v1) in zip(points, points[1:]):  # running totals; a drop is a reset
        if t1 > t0:
            out.append((t1, (v1 - v0 if v1 >= v0 else v1) / (t1 - t0)))
    return out


def _step(since: float, until: float) -> float:
    """About 240 buckets across the range, never under a second (matches a chart's width)."""
    return max(1.0, round((until - since) / 240.0))


def panel_series(dash: Dashboard, reader: SeriesReader, *, since: float, until: float,
                 step: float = 60.0) -> list[tuple[Panel, dict[str, list[tuple[float, float]]]]]:
    """Each non-note panel of ``dash`` with its aggregated series (empty: no data)."""
    catalog = load_catalog()
    out = []
    for panel in (p for row in dash.rows for p in row.panels if p.viz != "note"):
        lines: dict[str, list[tuple[float, float]]] = {}
        for query in panel.queries:
            data = reader.read_series(query.metric, since, until, dict(query.where) or None)
            for label, points in aggregate(data, query, catalog[query.metric].kind, step).items():
                if points:
                    lines[label] = points
        out.append((panel, lines))
    return out


def render_dashboard(dash: Dashboard, reader: SeriesReader, *, since: float, until: float,
                     columns: int = 3) -> tuple[bytes, int, int]:
    """One PNG with a small chart (or the last value) per panel; and (panels with data, panels)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    from agent.charts import draw_series, format_time_axis

    panels = panel_series(dash, reader, since=since, until=until, step=_step(since, until))
    rows = max(1, math.ceil(len(panels) / columns))
    fig = Figure(figsize=(5.0 * columns, 2.6 * rows + 0.8), dpi=80)
    fig.suptitle(f"{dash.title}  (preview from the local history store)", fontsize=14)
    with_data = 0
    for i, (panel, lines) in enumerate(panels):
        ax = fig.add_subplot(rows, columns, i + 1)
        unit = f" ({panel.unit.replace('_', ' ')})" if panel.unit else ""
        ax.set_title((panel.title + unit)[:70], fontsize=9)
        if not lines:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes,
                    fontsize=9, color="gray")
            ax.set_xticks([])
            ax.set_yticks([])
            continue
        with_data += 1
        if panel.viz == "value":  # a single stat: the latest value, large
            value = sum(points[-1][1] for points in lines.values())
            ax.text(0.5, 0.5, _format(value, panel.unit), ha="center", va="center",
                    transform=ax.transAxes, fontsize=22)
            ax.set_xticks([])
            ax.set_yticks([])
            continue
        if panel.viz == "table":  # the latest value of each row, as a table shows it
            rows_text = [f"{label[:48]}  {_format(points[-1][1], panel.unit)}"
                         for label, points in sorted(lines.items())[:10]]
            ax.text(0.02, 0.95, "\n".join(rows_text), ha="left", va="top", transform=ax.transAxes,
                    fontsize=7, family="monospace")
            ax.set_xticks([])
            ax.set_yticks([])
            continue
        draw_series(ax, dict(sorted(lines.items())), linewidth=1.2)
        format_time_axis(ax, max_ticks=4)
        ax.tick_params(labelsize=7)
        if len(lines) <= 6:
            ax.legend(fontsize=6, loc="best")
    fig.tight_layout(rect=(0, 0, 1, 0.98))
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue(), with_data, len(panels)


def _format(value: float, unit: str) -> str:
    if unit == "bytes":
        for suffix in ("B", "KiB", "MiB", "GiB", "TiB"):
            if abs(value) < 1024 or suffix == "TiB":
                return f"{value:.1f} {suffix}"
            value /= 1024
    if unit in ("dollars", "dollars_per_hour"):
        return f"${value:,.2f}" + ("/h" if unit == "dollars_per_hour" else "")
    if unit == "ratio":
        return f"{value:.0%}"
    if unit == "seconds" and value > 1e9:  # a UNIX time
        return datetime.fromtimestamp(value, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"{value:,.2f}".rstrip("0").rstrip(".") if value != int(value) else f"{int(value):,}"
