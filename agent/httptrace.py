"""Request phases (connect, time to first byte) from the shared HTTP session.

aiohttp reports phases only through trace hooks registered when a session is built, so
the shared session carries this one trace config. A request opts in by passing a
:class:`Phases` as ``trace_request_ctx``; requests that do not pass one cost a few
attribute reads per hook.
"""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import aiohttp

__all__ = ["Phases", "phase_trace_config"]


class Phases:
    """Monotonic timestamps of one request's phases (``None`` when the phase did not happen)."""

    __slots__ = ("start", "connect_start", "connect_end", "headers")

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.connect_start: float | None = None
        self.connect_end: float | None = None
        self.headers: float | None = None

    @property
    def connect(self) -> float | None:
        """Seconds spent opening a new connection (None when a pooled one was reused)."""
        if self.connect_start is None or self.connect_end is None:
            return None
        return self.connect_end - self.connect_start

    @property
    def ttfb(self) -> float | None:
        """Seconds from the request's start to its response headers."""
        return None if self.headers is None else self.headers - self.start


def _phases(ctx: SimpleNamespace) -> Phases | None:
    phases = ctx.trace_request_ctx
    return phases if isinstance(phases, Phases) else None


async def _connect_start(session: Any, ctx: SimpleNamespace, params: Any) -> None:
    if (p := _phases(ctx)) is not None:
        p.connect_start = time.monotonic()


async def _connect_end(session: Any, ctx: SimpleNamespace, params: Any) -> None:
    if (p := _phases(ctx)) is not None:
        p.connect_end = time.monotonic()


async def _headers(session: Any, ctx: SimpleNamespace, params: Any) -> None:
    if (p := _phases(ctx)) is not None and p.headers is None:
        p.headers = time.monotonic()


def phase_trace_config() -> aiohttp.TraceConfig:
    """The trace config the shared session is built with."""
    config = aiohttp.TraceConfig()
    config.on_connection_create_start.append(_connect_start)
    config.on_connection_create_end.append(_connect_end)
    config.on_request_end.append(_headers)
    config.freeze()
    return config
