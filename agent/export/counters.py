"""Monotonic totals into deltas, for backends that take counts (Datadog).

A ``monotonic_count`` sample is a running total; Datadog wants how many happened in each
interval. The first total of a series only seeds it (nothing is known about before), and
a total lower than the previous one means the source restarted from zero, so the new
total is itself the delta — the same rule Prometheus' ``increase()`` applies.
"""

from __future__ import annotations

from agent.samples import SeriesKey

__all__ = ["MonotonicDeltas"]


class MonotonicDeltas:
    def __init__(self) -> None:
        self._last: dict[SeriesKey, float] = {}

    def delta(self, key: SeriesKey, total: float) -> float | None:
        """The increase since the previous total of ``key``; None for the first one."""
        prev = self._last.get(key)
        self._last[key] = total
        if prev is None:
            return None
        return total - prev if total >= prev else total

    def forget(self, check: str) -> None:
        for key in [k for k in self._last if ("check", check) in k[1]]:
            del self._last[key]
