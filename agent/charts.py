"""Line charts of metric history as PNG bytes (matplotlib, Agg backend, off the event loop).

One renderer serves ``mlwarden history plot``, Slack alert images and dashboard previews,
so what a user sees in Slack matches what the CLI draws. matplotlib is imported lazily:
an agent that never draws a chart never pays for it; and it is the optional ``charts`` extra,
so an install without it sends its Slack alerts without pictures and says once why.
"""

from __future__ import annotations

import importlib.util
import io
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone

from agent.errors import AgentError
from agent.install import extra_hint

__all__ = ["ChartsUnavailable", "charts_available", "render_line_chart"]


class ChartsUnavailable(AgentError, ImportError):
    """matplotlib is not installed: the ``charts`` extra is optional (see setup.cfg)."""

    def __init__(self) -> None:
        super().__init__("drawing charts needs the charts extra (matplotlib), which is not "
                         f"installed: {extra_hint('charts')}")


def charts_available() -> bool:
    """Whether matplotlib can be imported, without importing it (that takes a second)."""
    return importlib.util.find_spec("matplotlib") is not None

Points = Sequence[tuple[float, float]]


def render_line_chart(
    series: Mapping[str, Points],
    *,
    title: str,
    threshold: float | None = None,
    unit: str = "",
    width: float = 8.0,
    height: float = 3.2,
    dpi: int = 100,
) -> bytes:
    """Draw each named series (``(timestamp, value)`` points) on one time axis; returns PNG.

    Raises:
        ChartsUnavailable: matplotlib (the ``charts`` extra) is not installed.
    """
    if not charts_available():
        raise ChartsUnavailable()
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib import dates as mdates
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=dpi)
    ax = fig.add_subplot(1, 1, 1)
    drawn = 0
    for label, points in series.items():
        if not points:
            continue
        xs = [datetime.fromtimestamp(t, timezone.utc) for t, _ in points]
        ys = [v for _, v in points]
        ax.plot(xs, ys, linewidth=1.4, label=label[:60])
        drawn += 1
    if threshold is not None:
        ax.axhline(threshold, color="#d62728", linestyle="--", linewidth=1, label=f"threshold {threshold:g}")
    if not drawn:
        ax.text(0.5, 0.5, "no data in this window", ha="center", va="center", transform=ax.transAxes)
    ax.set_title(title[:120], fontsize=10)
    if unit:
        ax.set_ylabel(unit)
    ax.grid(True, alpha=0.3)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=timezone.utc))
    if drawn > 1 or threshold is not None:
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
