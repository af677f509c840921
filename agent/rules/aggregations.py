"""How a window of samples becomes one number, and how a group's numbers combine.

Every function reads ``values[lo:hi]`` (and ``times`` for rates) of a series' buffer
without copying the window first, and returns ``None`` when the window holds nothing to
judge (no samples, or a rate with a single sample): a rule never compares a made-up zero.

``rate`` and ``increase`` depend on the metric's kind in the catalog. A ``count`` carries
deltas (how many since the previous sample), so the increase is their sum and the rate is
that sum per second of the window. A ``monotonic_count`` (or a gauge) is a running total:
the increase adds up the rises between consecutive samples, and a drop is a counter reset
(the source restarted), so the value after the drop counts as risen from zero. There is no
extrapolation to the window's edges: the figures are exactly what the samples show.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

__all__ = ["AGGREGATORS", "combine", "percentile", "worst"]

Reducer = Callable[[Sequence[float], Sequence[float], int, int, float, bool], "float | None"]


def _last(times: Sequence[float], values: Sequence[float], lo: int, hi: int,
          window: float, delta: bool) -> float | None:
    return values[hi - 1] if hi > lo else None


def _avg(times: Sequence[float], values: Sequence[float], lo: int, hi: int,
         window: float, delta: bool) -> float | None:
    n = hi - lo
    if n <= 0:
        return None
    return math.fsum(values[lo:hi]) / n


def _min(times: Sequence[float], values: Sequence[float], lo: int, hi: int,
         window: float, delta: bool) -> float | None:
    return min(values[lo:hi]) if hi > lo else None


def _max(times: Sequence[float], values: Sequence[float], lo: int, hi: int,
         window: float, delta: bool) -> float | None:
    return max(values[lo:hi]) if hi > lo else None


def _sum(times: Sequence[float], values: Sequence[float], lo: int, hi: int,
         window: float, delta: bool) -> float | None:
    return math.fsum(values[lo:hi]) if hi > lo else None


def _count(times: Sequence[float], values: Sequence[float], lo: int, hi: int,
           window: float, delta: bool) -> float | None:
    # an empty window counts 0 samples: "fewer than N runs in 10m" must be able to fire
    return float(max(hi - lo, 0))


def _increase(times: Sequence[float], values: Sequence[float], lo: int, hi: int,
              window: float, delta: bool) -> float | None:
    if delta:
        return math.fsum(values[lo:hi]) if hi > lo else None
    if hi - lo < 2:
        return None
    total = 0.0
    prev = values[lo]
    for i in range(lo + 1, hi):
        cur = values[i]
        total += cur - prev if cur >= prev else cur  # a drop is a reset: risen from zero
        prev = cur
    return total


def _rate(times: Sequence[float], values: Sequence[float], lo: int, hi: int,
          window: float, delta: bool) -> float | None:
    inc = _increase(times, values, lo, hi, window, delta)
    if inc is None:
        return None
    if delta:
        return inc / window if window > 0 else None
    span = times[hi - 1] - times[lo]
    return inc / span if span > 0 else None


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (NumPy's default method)."""
    n = len(sorted_values)
    if n == 1:
        return sorted_values[0]
    pos = q * (n - 1)
    i = int(pos)
    frac = pos - i
    if i + 1 >= n:
        return sorted_values[-1]
    return sorted_values[i] + (sorted_values[i + 1] - sorted_values[i]) * frac


def _pct(q: float) -> Reducer:
    def reduce(times: Sequence[float], values: Sequence[float], lo: int, hi: int,
               window: float, delta: bool) -> float | None:
        if hi <= lo:
            return None
        return percentile(sorted(values[lo:hi]), q)

    return reduce


AGGREGATORS: dict[str, Reducer] = {
    "last": _last,
    "avg": _avg,
    "min": _min,
    "max": _max,
    "sum": _sum,
    "count": _count,
    "p50": _pct(0.50),
    "p90": _pct(0.90),
    "p95": _pct(0.95),
    "p99": _pct(0.99),
    "rate": _rate,
    "increase": _increase,
}

_ADDITIVE = frozenset({"sum", "count", "rate", "increase"})


def worst(values: Sequence[float], op: str | None, threshold: float | None) -> float:
    """The value furthest beyond the threshold, in the direction the rule fires."""
    if op in ("<", "<="):
        return min(values)
    if op in (">", ">="):
        return max(values)
    if op == "==":
        return next((v for v in values if v == threshold), values[-1])
    if op == "!=":
        return next((v for v in values if v != threshold), values[-1])
    return values[-1]


def combine(aggregate: str, values: Sequence[float], op: str | None,
            threshold: float | None) -> float:
    """One number for a group of series (``group_by``): totals add up, levels take the worst."""
    if len(values) == 1:
        return values[0]
    if aggregate in _ADDITIVE:
        return math.fsum(values)
    return worst(values, op, threshold)
