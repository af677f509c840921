"""Renders each dashboard's panels from the local history store to a PNG.

Datadog and Grafana cannot run here; a preview lets a person see what a dashboard shows
with the agent's own data before importing it. Series are aggregated the way the panel's
query says (``agg`` across series, split by ``by`` tags) into buckets of about 1/240 of the
range; counters the panel plots as rates become per-second rates, counts become sums per
bucket, and percentiles of a distribution take every observation in the bucket.
"""

from __future__ import annotations

import io
import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone

from agent.catalog import load_catalog
from agent.dashboards.spec import PERCENTILES, Dashboard, Panel, Query
from agent.history.protocol import SeriesReader
from agent.samples import Kind, Tags

__all__ = ["aggregate", "draw_panels", "panel_series", "render_dashboard"]

_AGG = {"avg": lambda v: sum(v) / len(v), "sum": sum, "min": min, "max": max}


def _percentile(q: float) -> Callable[[list[float]], float]:
    def nearest_rank(values: list[float]) -> float:
        ordered = sorted(values)
        return ordered[max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))]

    return nearest_rank


_AGG.update({name: _percentile(q) for name, q in PERCENTILES.items()})


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
        if query.increase:
            values = _increments(points, kind)
        else:
            values = _per_second(points, kind) if query.rate else points
        per_bucket: dict[float, list[float]] = defaultdict(list)
        for ts, value in values:
            per_bucket[math.floor(ts / step) * step].append(value)
        for bucket, vals in per_bucket.items():
            if kind is Kind.DISTRIBUTION:  # every observation counts, not the last one
                groups[label][bucket].extend(vals)
            elif query.increase:
                groups[label][bucket].append(sum(vals))
            else:
                groups[label][bucket].append(vals[-1])  # a series' last value in the bucket
    agg = _AGG[query.agg]
    return {label: sorted((b, agg(v)) for b, v in buckets.items()) for label, buckets in groups.items()}


def _increments(points: Sequence[tuple[float, float]], kind: Kind) -> list[tuple[float, float]]:
    if kind is Kind.COUNT:  # deltas already
        return list(points)
    return [(t1, v1 - v0 if v1 >= v0 else v1) for (_, v0), (t1, v1) in zip(points, points[1:])]


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
    """One PNG with a small chart (or the last value) per panel; and (panels with data, panels).

    Only panels with a time series get matplotlib axes; "no data", single values and
    tables are a frame and text on the figure. Axes (ticks, labels) and ``tight_layout``
    were most of the time a preview took, so cells are placed on a fixed grid instead.
    """
    panels = panel_series(dash, reader, since=since, until=until, step=_step(since, until))
    return draw_panels(dash.title, panels, since=since, until=until, columns=columns)


Lines = Mapping[str, Sequence[tuple[float, float]]]


def draw_panels(title: str, panels: Sequence[tuple[Panel, Lines]], *, since: float, until: float,
                columns: int = 3) -> tuple[bytes, int, int]:
    """The drawing half of :func:`render_dashboard` (separate so it can be timed alone)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle
    from matplotlib.ticker import MaxNLocator

    from agent.charts import draw_series, format_time_axis

    rows = max(1, math.ceil(len(panels) / columns))
    cell_w, cell_h, header = 5.0, 2.6, 0.8  # inches
    fig = Figure(figsize=(cell_w * columns, cell_h * rows + header), dpi=80)
    height = cell_h * rows + header
    fig.text(0.5, 1 - 0.35 / height, f"{title}  (preview from the local history store)",
             ha="center", va="center", fontsize=14)
    with_data = 0
    for i, (panel, lines) in enumerate(panels):
        row, col = divmod(i, columns)
        left, bottom = col / columns, (rows - row - 1) * cell_h / height
        w, h = 1 / columns, cell_h / height
        unit = f" ({panel.unit.replace('_', ' ')})" if panel.unit else ""
        label = (panel.title + unit)[:70]
        text = None
        if not lines:
            text, size, color = "no data", 9, "gray"
        elif panel.viz == "value":  # a single stat: the latest value, large
            value = sum(points[-1][1] for points in lines.values())
            text, size, color = _format(value, panel.unit), 22, "black"
        if lines:
            with_data += 1
        if text is not None or panel.viz == "table":
            box = (left + 0.06 * w, bottom + 0.14 * h, 0.88 * w, 0.72 * h)
            fig.add_artist(Rectangle(box[:2], box[2], box[3], transform=fig.transFigure,
                                     fill=False, linewidth=0.8, edgecolor="black"))
            fig.text(left + 0.5 * w, bottom + 0.90 * h, label, ha="center", va="bottom", fontsize=9)
            if text is not None:
                fig.text(box[0] + box[2] / 2, box[1] + box[3] / 2, text, ha="center",
                         va="center", fontsize=size, color=color)
            else:  # a table: the latest value of each row
                rows_text = [f"{name[:48]}  {_format(points[-1][1], panel.unit)}"
                             for name, points in sorted(lines.items())[:10]]
                fig.text(box[0] + 0.02 * w, box[1] + box[3] - 0.04 * h, "\n".join(rows_text),
                         ha="left", va="top", fontsize=7, family="monospace")
            continue
        ax = fig.add_axes((left + 0.13 * w, bottom + 0.16 * h, 0.83 * w, 0.70 * h))
        ax.set_title(label, fontsize=9)
        ax.yaxis.set_major_locator(MaxNLocator(4))  # fewer tick labels: each is a text to lay out
        draw_series(ax, dict(sorted(lines.items())), linewidth=1.0)  # 0/1 metrics: ticks 0 and 1
        format_time_axis(ax, max_ticks=4)
        ax.tick_params(labelsize=7)
        if len(lines) <= 6:
            ax.legend(fontsize=6, loc="best")
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
