"""Latency percentiles over a sliding window of recent probes, kept per check instance.

A window of the last N probes (not a time window) keeps memory fixed and the percentiles
meaningful at any interval; N is small, so sorting a copy per run is cheaper than
maintaining a sketch.
"""

from __future__ import annotations

import math
from collections import deque

__all__ = ["LatencyWindow"]


class LatencyWindow:
    def __init__(self, size: int) -> None:
        self._values: deque[float] = deque(maxlen=size)

    def add(self, seconds: float) -> None:
        self._values.append(seconds)

    def __len__(self) -> int:
        return len(self._values)

    def percentiles(self, *qs: float) -> dict[float, float]:
        """Nearest-rank percentiles (``q`` in 0..1) of the window; empty when no probe yet."""
        if not self._values:
            return {}
        ordered = sorted(self._values)
        n = len(ordered)
        return {q: ordered[max(0, min(n - 1, math.ceil(q * n) - 1))] for q in qs}
