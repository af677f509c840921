"""Keeps the C allocator from sitting on freed memory, so the daemon's RSS stays flat.

glibc's malloc gives threads their own arenas (up to 8 per core) and keeps what is freed
in them; and once a large buffer is freed it raises its mmap threshold, so later large
buffers come from the heap and fragment it. In the soak (``benchmarks/soak.py
--memory-profile``) the agent's Python objects were flat after warm-up while glibc's free
lists grew by ~6 MiB in 12 minutes: RSS crept although nothing leaked. So, for the daemon
only and only on glibc: at most two arenas, a fixed mmap threshold (buffers of 256 KiB and
more, a /metrics body or a big JSON answer, go back to the system when freed) and
``malloc_trim`` once a minute. A variable the operator set (``MALLOC_ARENA_MAX``,
``MALLOC_MMAP_THRESHOLD_``) wins. Elsewhere (musl, macOS) this does nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import time
from typing import Any

from agent.tasks import cancel_and_wait

__all__ = ["MemoryTrimmer", "tune_malloc"]

log = logging.getLogger(__name__)
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
ARENA_MAX = 2
MMAP_THRESHOLD = 256 * 1024
TRIM_EVERY = 60.0
_tuned: dict[str, Any] = {"allocator": "as the process started it (tune_malloc runs only in `mlwarden run`)"}


def _glibc() -> Any | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018 - only glibc has it
        return libc
    except (OSError, AttributeError):
        return None


def tune_malloc() -> dict[str, Any]:
    """Set the arena cap and mmap threshold; call before any thread starts. Says what it did."""
    global _tuned
    libc = _glibc()
    if libc is None:
        _tuned = {"allocator": "not glibc: left as it is"}
        return _tuned
    done: dict[str, Any] = {"allocator": "glibc"}
    for env, option, value, key in (("MALLOC_ARENA_MAX", M_ARENA_MAX, ARENA_MAX, "arena_max"),
                                    ("MALLOC_MMAP_THRESHOLD_", M_MMAP_THRESHOLD, MMAP_THRESHOLD,
                                     "mmap_threshold")):
        if env in os.environ:
            done[key] = f"{os.environ[env]} (from {env})"
        elif libc.mallopt(option, value) == 1:
            done[key] = value
    _tuned = done
    return done


class MemoryTrimmer:
    """A component that hands glibc's free memory back to the system every minute."""

    name = "allocator"

    def __init__(self, every: float = TRIM_EVERY) -> None:
        self.every = every
        self._libc = _glibc()
        self._task: asyncio.Task[None] | None = None
        self.trims = 0
        self.released = 0  # trims that gave memory back
        self.last_trim_seconds: float | None = None

    async def start(self) -> None:
        if self._libc is not None:
            self._task = asyncio.create_task(self._run(), name="malloc-trim")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    def status(self) -> dict[str, Any]:
        return {**_tuned, "trim_every_seconds": self.every if self._libc else None,
                "trims": self.trims, "trims_that_released": self.released,
                "last_trim_seconds": self.last_trim_seconds}

    def trim(self) -> bool:
        """One ``malloc_trim(0)``; True when it gave memory back."""
        if self._libc is None:
            return False
        started = time.perf_counter()
        released = bool(self._libc.malloc_trim(0))  # ctypes lets go of the GIL meanwhile
        self.last_trim_seconds = round(time.perf_counter() - started, 6)
        self.trims += 1
        self.released += released
        return released

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            try:
                await asyncio.to_thread(self.trim)
            except OSError as exc:  # never expected; the agent runs on without it
                log.warning("malloc_trim failed: %s", exc)
