"""Sparklines: a series' recent points as the coordinates of a small inline SVG polyline.

Drawn by the server (no chart library in the browser, nothing to load): the template puts
``points`` into ``<polyline points="...">`` inside an SVG whose accessible name states the
numbers a sighted reader gets from the shape (last, lowest, highest).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Spark", "sparkline"]


@dataclass(frozen=True)
class Spark:
    points: str  # "x,y x,y ..." in a width x height box, y grows downwards
    last: float
    low: float
    high: float
    count: int
    start: float  # time of the first point
    end: float  # time of the last point
    last_x: float = 0.0
    last_y: float = 0.0


def sparkline(points: Sequence[tuple[float, float]], *, since: float, until: float,
              width: int = 120, height: int = 24, pad: float = 2.0) -> Spark | None:
    """Scale ``(timestamp, value)`` points into the box; x spans ``since..until`` so that
    a series that stopped reporting ends short of the right edge. None without points."""
    clean = [(t, v) for t, v in points if math.isfinite(v) and since <= t <= until]
    if not clean:
        return None
    values = [v for _, v in clean]
    low, high = min(values), max(values)
    span_t = max(until - since, 1e-9)
    span_v = high - low
    inner_h = height - 2 * pad
    coords = []
    for t, v in clean:
        x = pad + (t - since) / span_t * (width - 2 * pad)
        # a flat line sits mid-height; otherwise the highest value touches the top
        y = pad + inner_h / 2 if span_v == 0 else pad + (high - v) / span_v * inner_h
        coords.append((round(x, 1), round(y, 1)))
    if len(coords) == 1:  # one point: a short flat tick so it shows
        x, y = coords[0]
        coords = [(max(pad, x - 2), y), (x, y)]
    return Spark(
        points=" ".join(f"{x:g},{y:g}" for x, y in coords),
        last=values[-1],
        low=low,
        high=high,
        count=len(clean),
        start=clean[0][0],
        end=clean[-1][0],
        last_x=coords[-1][0],
        last_y=coords[-1][1],
    )
