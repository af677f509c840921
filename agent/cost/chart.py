"""The cost report's chart: what each model, idle node and pipeline cost in the period (PNG).

The bars are plain data (:func:`chart_bars`), so the digest can carry them in its queued
notification and draw the same picture whenever Slack takes it. matplotlib is imported
lazily (Agg backend), as for the line charts in agent/charts.py.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from agent.cost.prices import money
from agent.cost.report import CostReport

__all__ = ["chart_bars", "render_bars", "render_cost_chart"]


def chart_bars(report: CostReport, top: int = 12) -> dict[str, Any]:
    """``{"title", "currency", "bars": [[label, value, kind], ...]}``, costliest first."""
    bars: list[list[Any]] = []
    unknown = False
    for m in report.models:
        if m.on_gpu:
            bars.append([f"model {m.model}", m.spend or 0.0, "model"])
            unknown |= m.spend is None
    for n in report.nodes:
        if n.idle_seconds > 0:
            bars.append([f"idle {n.node}", n.idle_spend or 0.0, "idle"])
            unknown |= n.idle_spend is None
    for p in report.pipelines:
        bars.append([f"dag {p.dag_id}", p.cost or 0.0, "pipeline"])
        unknown |= p.cost is None
    bars.sort(key=lambda b: -b[1])
    note = " (some costs unknown: GPUs without a price)" if unknown else ""
    return {"title": f"GPU cost over {report.days:g} days, {report.currency}{note}",
            "currency": report.currency, "bars": bars[:top]}


def render_bars(chart: dict[str, Any], *, width: float = 8.0, dpi: int = 100) -> bytes:
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    bars: Sequence[Sequence[Any]] = chart.get("bars") or []
    fig = Figure(figsize=(width, 1.2 + 0.32 * max(len(bars), 1)), dpi=dpi)
    ax = fig.add_subplot(1, 1, 1)
    colors = {"model": "#1f77b4", "idle": "#d62728", "pipeline": "#2ca02c"}
    if bars:
        ordered = list(reversed(bars))
        values = [float(b[1]) for b in ordered]
        ax.barh([str(b[0])[:40] for b in ordered], values,
                color=[colors.get(str(b[2]), "#7f7f7f") for b in ordered])
        for y, value in enumerate(values):
            ax.text(value, y, " " + money(value, str(chart.get("currency", "USD"))), va="center", fontsize=7)
        ax.margins(x=0.25)
    else:
        ax.text(0.5, 0.5, "no cost data in this period", ha="center", va="center", transform=ax.transAxes)
        ax.set_yticks([])
    ax.set_title(str(chart.get("title", ""))[:120], fontsize=10)
    ax.tick_params(axis="y", labelsize=8)
    ax.grid(True, axis="x", alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def render_cost_chart(report: CostReport) -> bytes:
    return render_bars(chart_bars(report))
