"""Recent samples per series, kept in memory for as long as the longest window needs.

A :class:`SeriesBuffer` is a ring over two ``array('d')`` columns (16 bytes a sample, no
per-sample objects): appends are amortised O(1), expiry advances a start index and
compacts now and then, and windows are found by bisection. How far back a series is kept
is the longest window of the rules that read its metric (at most ``memory_window``), so
memory follows what the rules need, not how long the agent has run.
"""

from __future__ import annotations

import math
import statistics
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Mapping
from types import MappingProxyType

__all__ = ["NO_FACTS", "SeriesBuffer"]

_COMPACT_MIN = 64
_INF, _NEG_INF = math.inf, -math.inf  # one float object each, not two per series
NO_FACTS: MappingProxyType[str, str] = MappingProxyType({})  # the facts of most series: none


class SeriesBuffer:
    """The samples of one series from ``times[start]`` on, oldest first."""

    __slots__ = ("times", "values", "start", "last_seen", "max_points", "dropped", "tags", "groups",
                 "memo", "facts", "epoch", "watch", "lo", "hi", "absent", "seq", "due", "key")

    def __init__(self, max_points: int = 4096, tags: tuple = ()) -> None:
        self.times = array("d")
        self.values = array("d")
        self.start = 0
        self.last_seen = _NEG_INF
        self.max_points = max_points
        self.dropped = 0  # samples pushed out by the max_points cap
        self.tags = tags
        self.groups: tuple = ()  # the rule groups this series belongs to (set by the evaluator)
        # (aggregate, window) -> (now, length, value) or a window state, for the evaluator;
        # made on first use (most series are read by rules that keep none)
        self.memo: dict | None = None
        # what the newest sample says beyond its tags (a reason); read-only
        self.facts: Mapping[str, str] = NO_FACTS
        self.epoch = 0  # moves when held samples move or change (incremental window states)
        # the evaluator's: its groups with a quiet band and where all those bands overlap,
        # those of absent rules, when it was created and the second its expiry is due
        self.watch: tuple = ()
        self.lo, self.hi = _NEG_INF, _INF
        self.absent: tuple = ()
        self.seq = 0
        self.due: int | None = None
        self.key: tuple = ()  # (metric, tags): the evaluator's key of this series

    def __len__(self) -> int:
        return len(self.times) - self.start

    def append(self, ts: float, value: float) -> None:
        """Add a sample; an out-of-order one is inserted in place, a duplicate time replaces."""
        times = self.times
        if not times or ts > times[-1]:
            times.append(ts)
            self.values.append(value)
        elif ts == times[-1]:
            self.values[-1] = value
            self.epoch += 1
        else:
            self.epoch += 1
            i = bisect_left(times, ts, self.start)
            if i < len(times) and times[i] == ts:
                self.values[i] = value
            else:
                times.insert(i, ts)
                self.values.insert(i, value)
        if ts > self.last_seen:
            self.last_seen = ts
        over = len(self) - self.max_points
        if over > 0:
            self.start += over
            self.dropped += over
            self._maybe_compact()

    def expire(self, before: float, keep: int = 0) -> None:
        """Forget samples older than ``before``, but keep at least the newest ``keep``."""
        idx = bisect_left(self.times, before, self.start)
        idx = min(idx, max(len(self.times) - keep, self.start))
        if idx > self.start:
            self.start = idx
            self._maybe_compact()

    def bounds(self, since: float, until: float) -> tuple[int, int]:
        """Index range of samples with ``since < t <= until`` (a window ending now)."""
        return (bisect_right(self.times, since, self.start),
                bisect_right(self.times, until, self.start))

    def latest(self, until: float) -> tuple[int, int]:
        """Index range holding only the newest sample at or before ``until``."""
        hi = bisect_right(self.times, until, self.start)
        return (hi - 1, hi) if hi > self.start else (hi, hi)

    @property
    def oldest(self) -> float | None:
        return self.times[self.start] if len(self) else None

    def interval(self) -> float | None:
        """The series' own sampling interval: the median of its recent gaps."""
        n = len(self)
        if n < 2:
            return None
        times = self.times
        lo = max(self.start, len(times) - 9)
        gaps = [times[i] - times[i - 1] for i in range(lo + 1, len(times))]
        return statistics.median(gaps) if gaps else None

    def nbytes(self) -> int:
        """Memory held by the sample columns (for the benchmark and /status)."""
        return (self.times.buffer_info()[1] + self.values.buffer_info()[1]) * self.times.itemsize

    def _maybe_compact(self) -> None:
        if self.start >= _COMPACT_MIN and self.start * 2 >= len(self.times):
            del self.times[: self.start]
            del self.values[: self.start]
            self.start = 0
            self.epoch += 1
