"""Renders each dashboard's panels from the local history store to a PNG.

Datadog and Grafana cannot run here; a preview lets a person see what a dashboard shows
with the agent's own data before importing it. Series are aggregated the way the panel's
query says (``agg`` across series, split by ``by`` tags) into one-minute buckets.
"""

from __future__ import annotations

import io
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Protocol

from agent.catalog import load_catalog
from agent.dashboards.spec import Dashboard, Panel, Query
from agent.samples import Kind, Tags

__all__ = ["SeriesReader", "aggregate", "render_dashboard"]

_AGG = {"avg": lambda v: sum(v) / len(v), "sum": sum, "min": min, "max": max}


class SeriesReader(Protocol):
    def read_series(self, metric: str, since: float, until: float | None = None,
                    tags: Mapping[str, str] | None = None) -> dict[Tags, list[tuple[float, float]]]: ...


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


def render_dashboard(dash: Dashboard, reader: SeriesReader, *, since: float, until: float,
                     columns: int = 3) -> bytes:
    """One PNG with a small chart (or value) per panel of ``dash``."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib import dates as mdates
    from matplotlib.figure import Figure

    catalog = load_catalog()
    panels: list[Panel] = [p for row in dash.rows for p in row.panels if p.viz != "note"]
    rows = max(1, math.ceil(len(panels) / columns))
    fig = Figure(figsize=(5.0 * columns, 2.6 * rows + 0.6), dpi=80)
    fig.suptitle(dash.title, fontsize=13)
    for i, panel in enumerate(panels):
        ax = fig.add_subplot(rows, columns, i + 1)
        ax.set_title(panel.title[:60], fontsize=8)
        drawn = 0
        for query in panel.queries:
            spec = catalog[query.metric]
            data = reader.read_series(query.metric, since, until)
            for label, points in aggregate(data, query, spec.kind).items():
                if not points:
                    continue
                xs = [datetime.fromtimestamp(t, timezone.utc) for t, _ in points]
                ax.plot(xs, [v for _, v in points], linewidth=1.0, label=label[:40])
                drawn += 1
        if drawn:
            ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=timezone.utc))
            ax.tick_params(labelsize=6)
            if drawn <= 6:
                ax.legend(fontsize=5, loc="best")
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
