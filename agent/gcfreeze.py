"""Keeps Python's cyclic garbage collector from pausing the event loop for long.

A full collection walks every object the collector tracks, and CPython starts one whenever
the objects that survived the young generations since the last one reach a quarter of
the old generation. At 5,000 checks every 10 s the agent allocates samples, tag tuples and
per-run dicts that live a second or ten (a batch waiting for the store, the exporter's
latest values), so they survive into the old generation: a full collection every ~3 s,
each walking ~370,000 long-lived objects (checks, their configs and probes, series caches,
rule windows) for up to 350 ms on the loop's thread (benchmarks/agent_scale.py
``--gc-stats``: 15 full collections, 4.5 s of CPU, in 40 s; schedule drift p99 316 ms).

What lives long is built once: so ``mlwarden run`` freezes it (``gc.freeze``: moved to a
permanent generation the collector no longer walks) once the first runs have built it,
and then every ``every`` seconds unfreezes, collects everything once (one full pause)
and freezes again, so cyclic garbage among frozen objects is never held longer than
that. Objects that die by reference counting (nearly all) are freed at once, frozen or
not. The first freeze collects only the young generations before it: the automatic full
passes of the first seconds (several a minute at 5,000 checks) have already freed the
old generation's garbage but the last few seconds', and a full collection there walked
every object the agent had built: a pause of 0.4-1.4 s on the loop's thread at 5,000
checks, the longest of the agent's first minutes (benchmarks/agent_scale.py).

Once frozen, the old generation the collector still walks is small, and CPython starts a
full pass whenever the objects promoted since the last one reach a quarter of it: at
5,000 checks every 10 s, a pass every ~2 s (17-24 in 45 s), each stalling every check in
flight. So after the first freeze a full pass also waits for ``FULL_AFTER`` collections
of the middle generation instead of 10 (the third threshold): 1-3 in 45 s. A pass mostly
costs what it did (what it walks is what is alive, not what was promoted: the promoted
objects that died are freed by reference counting at once); cyclic garbage that reached
the old generation waits that much longer, and a pass that frees more of it takes longer
(one of 0.5 s was seen). Only in the daemon (``tune_gc``): a library user's process is
left as it is.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from typing import Any

from agent.tasks import cancel_and_wait

__all__ = ["GcFreezer", "tune_gc"]

log = logging.getLogger(__name__)
FIRST = 30.0  # seconds after start: the checks' first runs have built what they keep
EVERY = 600.0
FULL_AFTER = 100  # collections of the middle generation between two full passes (CPython: 10)
_enabled = False


def tune_gc() -> None:
    """Let the agent's :class:`GcFreezer` freeze long-lived objects (``mlwarden run`` only)."""
    global _enabled
    _enabled = True


class GcFreezer:
    """Component ``gc``: freezes what lives long, refreezes every ``every`` seconds."""

    name = "gc"

    def __init__(self, first: float = FIRST, every: float = EVERY) -> None:
        self.first = first
        self.every = every
        self.enabled = _enabled
        self._task: asyncio.Task[None] | None = None
        self.freezes = 0
        self.frozen_objects = 0  # as of the last freeze
        self.last_freeze_seconds: float | None = None
        self.last_full_collection_seconds: float | None = None
        self.collections = [0, 0, 0]
        self.collection_seconds = [0.0, 0.0, 0.0]
        self._started_at = 0.0
        self._thresholds: tuple[int, int, int] | None = None  # the collector's, before ours

    async def start(self) -> None:
        if self.enabled:
            gc.callbacks.append(self._timing)
            self._task = asyncio.create_task(self._run(), name="gc-freeze")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        if self._timing in gc.callbacks:
            gc.callbacks.remove(self._timing)
        if self._thresholds is not None:
            gc.set_threshold(*self._thresholds)
            self._thresholds = None

    def status(self) -> dict[str, Any]:
        return {"enabled": self.enabled, "frozen_objects": self.frozen_objects,
                "freezes": self.freezes, "refreeze_every_seconds": self.every if self.enabled else None,
                "last_freeze_seconds": self.last_freeze_seconds, "thresholds": list(gc.get_threshold()),
                "last_full_collection_seconds": self.last_full_collection_seconds,
                "collections": list(self.collections),
                "collection_seconds": [round(s, 3) for s in self.collection_seconds]}

    def _count_frozen(self) -> None:
        # counting walks every frozen object (~60 ms at 5,000 checks): once a freeze, not on
        # every /status (which the web UI asks for every 15 s)
        self.frozen_objects = gc.get_freeze_count()

    def freeze(self) -> None:
        """The first freeze: collect the young generations (cheap), then freeze what is left."""
        started = time.perf_counter()
        gc.collect(1)
        gc.freeze()
        self.last_freeze_seconds = round(time.perf_counter() - started, 6)
        self._count_frozen()
        self.freezes += 1
        if self._thresholds is None:
            self._thresholds = gc.get_threshold()
            gc.set_threshold(self._thresholds[0], self._thresholds[1], FULL_AFTER)

    def refreeze(self) -> None:
        """Collect everything once (frozen objects too), then freeze what is left."""
        started = time.perf_counter()
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        self.last_freeze_seconds = self.last_full_collection_seconds = round(
            time.perf_counter() - started, 6)
        self._count_frozen()
        self.freezes += 1

    def _timing(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started_at = time.perf_counter()
        elif self._started_at:  # (added between a collection's start and stop: not timed)
            generation = info.get("generation", 2)
            self.collections[generation] += 1
            self.collection_seconds[generation] += time.perf_counter() - self._started_at
            self._started_at = 0.0

    async def _run(self) -> None:
        await asyncio.sleep(self.first)
        self.freeze()
        log.debug("gc: %d objects frozen in %.3fs", gc.get_freeze_count(), self.last_freeze_seconds)
        while True:
            await asyncio.sleep(self.every)
            self.refreeze()
            log.debug("gc: %d objects frozen, full collection took %.3fs",
                      gc.get_freeze_count(), self.last_full_collection_seconds)
