"""Line charts of metric history as PNG bytes (matplotlib, Agg backend, off the event loop).

One renderer serves ``mlwarden history plot``, Slack alert images and dashboard previews,
so what a user sees in Slack matches what the CLI draws. matplotlib is imported lazily:
an agent that never draws a chart never pays for it; and it is the optional ``charts`` extra,
so an install without it sends its Slack alerts without pictures and says once why.

What makes a chart worth looking at, and how it is done here:

- the time axis never repeats a tick label: the ticks get the shortest format under which
  each reads differently (``14:05``, ``14:05:30``, ``Dec 06``, ``Dec 06 12:00``);
- a gap in the data is drawn as a gap, not as a slope across it: a break is inserted where
  two points are further apart than 2.5 times the series' own median interval;
- a 0/1 metric (up, ready, healthy) is drawn as steps with ticks at 0 and 1 only;
- legends name only the tags that differ between the series (:func:`legend_labels`), cut
  between ``key=value`` pairs, never inside one;
- Slack shows images as thumbnails about 360 px wide: the figure is small with large type,
  and thick lines, so it reads at that size.
"""

from __future__ import annotations

import importlib.util
import io
import math
import statistics
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from agent.errors import AgentError
from agent.install import extra_hint

__all__ = ["ChartsUnavailable", "charts_available", "draw_series", "fit_label", "format_time_axis",
           "legend_labels", "line_chart", "render_line_chart"]


class ChartsUnavailable(AgentError, ImportError):
    """matplotlib is not installed: the ``charts`` extra is optional (see setup.cfg)."""

    def __init__(self) -> None:
        super().__init__("drawing charts needs the charts extra (matplotlib), which is not "
                         f"installed: {extra_hint('charts')}")


def charts_available() -> bool:
    """Whether matplotlib can be imported, without importing it (that takes a second)."""
    return importlib.util.find_spec("matplotlib") is not None

Points = Sequence[tuple[float, float]]
GAP_FACTOR = 2.5
LABEL_LIMIT = 40
# sized for Slack's thumbnails: 720x360 px with 12 pt type
WIDTH, HEIGHT, DPI = 6.0, 3.0, 120


def legend_labels(tag_sets: Sequence[Mapping[str, str]], limit: int = LABEL_LIMIT) -> list[str]:
    """One label per tag set naming only the tags whose values differ between the sets."""
    keys = sorted({k for tags in tag_sets for k in tags})
    differ = [k for k in keys if len({tags.get(k, "") for tags in tag_sets}) > 1]
    return [fit_label([f"{k}={tags.get(k, '')}" for k in differ if tags.get(k, "")], limit)
            for tags in tag_sets]


def fit_label(parts: Sequence[str] | str, limit: int = LABEL_LIMIT) -> str:
    """Join ``key=value`` parts up to ``limit`` characters, dropping whole parts (marked
    with "…") rather than cutting one in the middle; a single part too long keeps its key."""
    if isinstance(parts, str):
        parts = [p for p in parts.replace(", ", ",").split(",") if p] if "=" in parts else [parts]
    out: list[str] = []
    for part in parts:
        candidate = ", ".join([*out, part])
        if len(candidate) <= limit:
            out.append(part)
            continue
        if not out:  # one part alone is too long: keep its key, shorten its value
            out.append(part[: max(1, limit - 1)] + "…")
        else:
            out.append("…")
        break
    return ", ".join(out)


def _cut_words(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    head = text[: limit - 1].rsplit(" ", 1)[0] or text[: limit - 1]
    return head + "…"


def _is_binary(series: Mapping[str, Points]) -> bool:
    values = {v for points in series.values() for _, v in points}
    return bool(values) and values <= {0.0, 1.0}


def _with_gaps(points: Points) -> tuple[list[datetime], list[float]]:
    """Times and values with a NaN where the series was silent, so the line breaks there."""
    pts = sorted((t, v) for t, v in points if v is not None and not math.isnan(v))
    xs: list[datetime] = []
    ys: list[float] = []
    if not pts:
        return xs, ys
    gaps = [b[0] - a[0] for a, b in zip(pts, pts[1:]) if b[0] > a[0]]
    limit = GAP_FACTOR * statistics.median(gaps) if len(gaps) >= 2 else math.inf
    for i, (t, v) in enumerate(pts):
        if i and t - pts[i - 1][0] > limit:
            xs.append(datetime.fromtimestamp((t + pts[i - 1][0]) / 2, timezone.utc))
            ys.append(math.nan)
        xs.append(datetime.fromtimestamp(t, timezone.utc))
        ys.append(v)
    return xs, ys


def draw_series(ax: Any, series: Mapping[str, Points], *, linewidth: float = 2.0,
                label_limit: int = LABEL_LIMIT) -> int:
    """Plot each series on ``ax`` (gaps as gaps, 0/1 metrics as steps); returns how many."""
    binary = _is_binary(series)
    drawn = 0
    for label, points in series.items():
        xs, ys = _with_gaps(points)
        if not xs:
            continue
        ax.plot(xs, ys, linewidth=linewidth, label=fit_label(label, label_limit) or None,
                drawstyle="steps-post" if binary else "default",
                marker="." if len(xs) < 12 else None)
        drawn += 1
    if binary and drawn:
        ax.set_yticks([0, 1])
        ax.set_ylim(-0.1, 1.1)
    return drawn


def format_time_axis(ax: Any, *, max_ticks: int = 6) -> None:
    """Dates on ``ax``'s x axis in UTC, each tick label distinct."""
    from matplotlib import dates as mdates

    ax.xaxis.set_major_locator(mdates.AutoDateLocator(tz=timezone.utc, minticks=2,
                                                      maxticks=max_ticks))
    ax.xaxis.set_major_formatter(_distinct_dates())


# from the shortest: the first format under which every tick reads differently wins
_TIME_FORMATS = ("%H:%M", "%H:%M:%S", "%b %d", "%b %d %H:%M", "%Y-%m-%d", "%Y-%m-%d %H:%M",
                 "%Y-%m-%d %H:%M:%S")


def _distinct_dates() -> Any:
    from matplotlib import dates as mdates
    from matplotlib.ticker import Formatter

    class DistinctDates(Formatter):  # type: ignore[misc]
        def __call__(self, x: float, pos: int | None = None) -> str:
            return self.format_ticks([x])[0]

        def format_ticks(self, values: Sequence[float]) -> list[str]:
            times = [mdates.num2date(v, tz=timezone.utc) for v in values]
            for fmt in _TIME_FORMATS:
                labels = [t.strftime(fmt) for t in times]
                if len(set(labels)) == len(labels):
                    return labels
            return labels

    return DistinctDates()


def render_line_chart(series: Mapping[str, Points], **options: Any) -> bytes:
    """Draw each named series (``(timestamp, value)`` points) on one time axis; returns PNG.
    Options as :func:`line_chart`."""
    fig = line_chart(series, **options)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def line_chart(
    series: Mapping[str, Points],
    *,
    title: str,
    threshold: float | None = None,
    unit: str = "",
    pending: tuple[float, float] | None = None,
    firing: tuple[float, float] | None = None,
    width: float = WIDTH,
    height: float = HEIGHT,
    dpi: int = DPI,
) -> Any:
    """The matplotlib Figure of :func:`render_line_chart`.

    ``pending`` and ``firing`` shade an alert's windows (start, end), so the chart shows
    when the condition began and when the alert fired against the line that caused it.

    Raises:
        ChartsUnavailable: matplotlib (the ``charts`` extra) is not installed.
    """
    if not charts_available():
        raise ChartsUnavailable()
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    drawn = draw_series(ax, series)
    if threshold is not None:
        ax.axhline(threshold, color="#d62728", linestyle="--", linewidth=1.5,
                   label=f"threshold {threshold:g}")
    for span, color, name in ((pending, "#ff9f1c", "pending"), (firing, "#d62728", "firing")):
        if span is not None and span[1] > span[0]:
            ax.axvspan(datetime.fromtimestamp(span[0], timezone.utc),
                       datetime.fromtimestamp(span[1], timezone.utc),
                       color=color, alpha=0.15, linewidth=0, label=name)
    if not drawn:
        ax.text(0.5, 0.5, "no data in this window", ha="center", va="center",
                transform=ax.transAxes, fontsize=12)
    ax.set_title(_cut_words(title, 60), fontsize=13)
    if unit:
        ax.set_ylabel(unit.replace("_", " "), fontsize=11)
    ax.tick_params(labelsize=11)
    ax.grid(True, alpha=0.3)
    format_time_axis(ax)
    handles, _labels = ax.get_legend_handles_labels()
    if len(handles) > 1 or (handles and threshold is None):
        ax.legend(fontsize=10, loc="best", framealpha=0.8)
    fig.tight_layout()
    return fig
