"""Latency percentiles over a sliding window of recent probes, kept per check instance.

A window of the last N probes (not a time window) keeps the percentiles meaningful at any
interval. The window is a ring of doubles allocated whole when the instance is made, so an
instance's memory is the same from its first probe on: a growing window (100 probes take
17 minutes to fill at a 10 s interval) reads as a leak in a soak's RSS curve. N is small, so
sorting a copy per run is cheaper than maintaining a sketch.
"""

from __future__ import annotations

import math
from array import array

__all__ = ["LatencyWindow"]


class LatencyWindow:
    __slots__ = ("_ring", "_next", "_count")

    def __init__(self, size: int) -> None:
        self._ring = array("d", bytes(8 * size))
        self._next = 0
        self._count = 0

    def add(self, seconds: float) -> None:
        ring = self._ring
        ring[self._next] = seconds
        self._next = (self._next + 1) % len(ring)
        if self._count < len(ring):
            self._count += 1

    def __len__(self) -> int:
        return self._count

    def percentiles(self, *qs: float) -> dict[float, float]:
        """Nearest-rank percentiles (``q`` in 0..1) of the window; empty when no probe yet."""
        n = self._count
        if not n:
            return {}
        ordered = sorted(self._ring[:n])  # before the ring wraps, only its first n are probes
        return {q: ordered[max(0, min(n - 1, math.ceil(q * n) - 1))] for q in qs}
