"""Idle GPUs and what they cost: a GPU is idle once its utilisation stayed under a
threshold for a whole window.

Only the current streak of low readings is kept per GPU (when it began, when it was last
read), so memory stays constant however long the window. A reading at or above the
threshold ends the streak; so does a gap longer than ``max_gap`` between readings (the
agent was down: what the GPU did meanwhile is unknown). The state is a plain dict the check
saves in the durable store, so a restart does not reset an idle GPU's clock.

Money is ``price per GPU-hour x hours``: ``cost`` is what the current idle streak has cost
so far (from the first low reading), ``cost_rate`` is the price while idle, else 0.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from checks.gpu.readings import GpuReading

__all__ = ["IdleStatus", "IdleTracker", "NodeIdle", "Pricing", "idle_signal", "summarize"]


@dataclass(frozen=True)
class IdleStatus:
    """One GPU's idleness at one reading."""

    idle: bool
    duration: float       # seconds of the current idle streak (0 while not idle)
    cost: float | None    # money the streak has cost so far (None: no price configured)
    cost_rate: float | None  # money per hour right now


class Pricing:
    """Price per GPU-hour: by model name glob (case-insensitive, first match), else a default."""

    def __init__(self, default: float | None, by_model: Mapping[str, float] | None = None) -> None:
        self.default = default
        self.by_model = [(pattern.lower(), price) for pattern, price in (by_model or {}).items()]

    def price(self, model: str) -> float | None:
        name = model.lower()
        for pattern, price in self.by_model:
            if fnmatch.fnmatchcase(name, pattern):
                return price
        return self.default


class IdleTracker:
    """Follows each GPU's streak of low-utilisation readings.

    Example::

        tracker = IdleTracker(threshold=0.05, window=1800, max_gap=300)
        tracker.observe("GPU-1", now, 0.0, price=4.1)   # IdleStatus(idle=False, ...)
    """

    def __init__(self, threshold: float, window: float, max_gap: float,
                 state: Mapping[str, Any] | None = None) -> None:
        self.threshold = threshold
        self.window = window
        self.max_gap = max_gap
        self.streaks: dict[str, list[float]] = {}  # uuid -> [since, last]
        for uuid, value in (state or {}).items():
            if isinstance(value, (list, tuple)) and len(value) == 2:
                self.streaks[str(uuid)] = [float(value[0]), float(value[1])]

    def observe(self, uuid: str, now: float, utilization: float | None,
                price: float | None = None) -> IdleStatus | None:
        """Take one reading; None when the GPU gave no utilisation (nothing to judge by)."""
        if utilization is None:
            return None
        if utilization >= self.threshold:
            self.streaks.pop(uuid, None)
            return IdleStatus(False, 0.0, 0.0 if price is not None else None,
                              0.0 if price is not None else None)
        streak = self.streaks.get(uuid)
        if streak is None or now - streak[1] > self.max_gap or now < streak[1]:
            streak = [now, now]
            self.streaks[uuid] = streak
        streak[1] = now
        duration = now - streak[0]
        idle = duration >= self.window
        if not idle:
            return IdleStatus(False, 0.0, 0.0 if price is not None else None,
                              0.0 if price is not None else None)
        if price is None:
            return IdleStatus(True, duration, None, None)
        return IdleStatus(True, duration, price * duration / 3600.0, price)

    def prune(self, now: float) -> None:
        """Drop streaks that a new reading would restart anyway (GPUs gone or not read)."""
        for uuid in [u for u, (_, last) in self.streaks.items() if now - last > self.max_gap]:
            del self.streaks[uuid]

    def state(self) -> dict[str, list[float]]:
        return {uuid: list(streak) for uuid, streak in self.streaks.items()}


def idle_signal(gpu: GpuReading, instances: Iterable[GpuReading] = ()) -> float | None:
    """The utilisation (0..1) to judge a physical GPU's idleness by.

    Its own utilisation where the GPU reports one. MIG-enabled GPUs report none: then the
    busiest instance's graphics-engine activity (DCGM), else whether any process holds the
    GPU or one of its instances (1.0) or none does (0.0); None when nothing tells.
    """
    if gpu.utilization is not None:
        return gpu.utilization
    instances = list(instances)
    active = [i.graphics_active for i in instances if i.graphics_active is not None]
    if gpu.graphics_active is not None:
        active.append(gpu.graphics_active)
    if active:
        return max(active)
    process_lists = [p.processes for p in (gpu, *instances) if p.processes is not None]
    if process_lists:
        return 1.0 if any(process_lists) else 0.0
    return None


@dataclass(frozen=True)
class NodeIdle:
    """Idle GPUs of one node (or of the fleet) and what they cost per hour."""

    idle: int
    cost_rate: float | None
    min_duration: float  # the shortest idle streak among its idle GPUs (0: none idle)


def summarize(statuses: Iterable[IdleStatus], priced: bool) -> NodeIdle:
    """Totals of a node's (or the fleet's) GPUs; ``priced``: whether any price is configured."""
    idle = [s for s in statuses if s.idle]
    cost_rate = sum(s.cost_rate or 0.0 for s in idle) if priced else None
    return NodeIdle(len(idle), cost_rate, min((s.duration for s in idle), default=0.0))
