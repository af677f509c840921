"""Window aggregates kept up to date as the window slides, instead of reduced anew each time.

A rule evaluates a series after each new sample, and in between the window moves by a
sample or two: one in at the end, one out at the start. Reducing the whole window again
each time (``min(values[lo:hi])``) boxes every sample into a float object; these states
carry the last answer forward and touch only what entered or left:

- ``min``/``max``: the extreme and where it sits; recomputed only when it leaves the window;
- ``p50``..``p99``: the window kept sorted (one removal and one insertion a slide).

Each answer is exactly what the reducer in :mod:`agent.rules.aggregations` gives for the
same window, signed zeros included (the first of equal extremes, a stable sort), so
switching between them never changes a verdict; tests/rules/test_incremental.py checks
that against the plain reducers. A state is tied to its buffer's ``epoch``: when samples
move (compaction, an out-of-order insert, a replaced value) it starts over. ``avg``,
``sum`` and the rates keep their plain reducers: ``math.fsum`` is exact and a running sum
is not, and those reducers are already one C call over the window.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Callable, Sequence

from agent.rules.aggregations import percentile

__all__ = ["INCREMENTAL", "Extreme", "SortedWindow"]

_SLIDE_MAX = 8  # samples in and out past which sorting the window anew is cheaper


class Extreme:
    """``max`` (or ``min``) of ``values[lo:hi]``, carried forward as the window slides."""

    __slots__ = ("lo", "hi", "epoch", "value", "at", "high", "now")

    def __init__(self, high: bool) -> None:
        self.high = high
        self.lo = self.hi = self.at = 0
        self.epoch = -1
        self.value: float | None = None
        self.now: float | None = None  # when the evaluator last asked (rules sharing the state)

    def update(self, values: Sequence[float], lo: int, hi: int, epoch: int) -> float | None:
        if hi <= lo:
            self.epoch = -1
            return None
        if epoch == self.epoch and self.lo <= lo <= self.at < self.hi <= hi:
            value, at = self.value, self.at
            high = self.high
            for i in range(self.hi, hi):  # strictly beyond: the first of equal extremes stays
                v = values[i]
                if (v > value) if high else (v < value):
                    value, at = v, i
        else:
            seg = values[lo:hi]
            value = max(seg) if self.high else min(seg)
            at = lo + seg.index(value)
        self.lo, self.hi, self.epoch, self.value, self.at = lo, hi, epoch, value, at
        return value


class SortedWindow:
    """A percentile of ``values[lo:hi]``, with the window kept sorted as it slides."""

    __slots__ = ("lo", "hi", "epoch", "sorted", "q", "value", "now")

    def __init__(self, q: float) -> None:
        self.q = q
        self.lo = self.hi = 0
        self.epoch = -1
        self.sorted: list[float] = []
        self.value: float | None = None
        self.now: float | None = None  # when the evaluator last asked (rules sharing the state)

    def update(self, values: Sequence[float], lo: int, hi: int, epoch: int) -> float | None:
        if hi <= lo:
            self.epoch = -1
            self.sorted = []
            return None
        if hi - lo <= _SLIDE_MAX:  # a short window: sorting it is cheaper than keeping it sorted
            self.lo, self.hi, self.epoch = lo, hi, -2 - epoch  # never slid from, still a hit
            self.value = percentile(sorted(values[lo:hi]), self.q)
            return self.value
        ordered = self.sorted
        if (epoch == self.epoch and self.lo <= lo <= self.hi <= hi
                and (lo - self.lo) + (hi - self.hi) <= _SLIDE_MAX):
            # the oldest of equal values leaves first and a newcomer goes after its equals:
            # the list stays what a stable sort of the window gives
            for i in range(self.lo, lo):
                del ordered[bisect_left(ordered, values[i])]
            for i in range(self.hi, hi):
                insort(ordered, values[i])
        else:
            ordered = self.sorted = sorted(values[lo:hi])
        self.lo, self.hi, self.epoch = lo, hi, epoch
        self.value = percentile(ordered, self.q)
        return self.value


INCREMENTAL: dict[str, Callable[[], Extreme | SortedWindow]] = {
    "max": lambda: Extreme(True),
    "min": lambda: Extreme(False),
    "p50": lambda: SortedWindow(0.50),
    "p90": lambda: SortedWindow(0.90),
    "p95": lambda: SortedWindow(0.95),
    "p99": lambda: SortedWindow(0.99),
}
