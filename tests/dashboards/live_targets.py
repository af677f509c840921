"""Check test servers for a whole agent: aiohttp targets on loopback, served from a thread.

The agent under test is a subprocess and the test itself blocks on Prometheus' HTTP API,
so the targets cannot share the test's event loop: they run on a loop of their own.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from tests.support.targets import Target

__all__ = ["ThreadedTargets"]


class ThreadedTargets:
    """Start several :class:`Target` servers on a background event loop; stop them all at exit."""

    def __init__(self, **factories: Callable[[], Target]) -> None:
        self._factories = factories
        self.targets: dict[str, Target] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="targets", daemon=True)

    def __enter__(self) -> dict[str, Target]:
        self._thread.start()

        async def start() -> None:
            for name, make in self._factories.items():
                target = make()
                await target.__aenter__()
                self.targets[name] = target

        asyncio.run_coroutine_threadsafe(start(), self._loop).result(timeout=30)
        return self.targets

    def call(self, fn: Callable[[], object]) -> None:
        """Run ``fn`` on the targets' loop (to change what they serve) and wait for it."""
        async def run() -> None:
            fn()

        asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=10)

    def __exit__(self, *exc: object) -> None:
        async def stop() -> list[str]:
            problems = []
            for name, target in self.targets.items():
                try:
                    await target.__aexit__(None, None, None)
                except AssertionError as err:  # a request to an undeclared route
                    problems.append(f"{name}: {err}")
            return problems

        try:
            problems = asyncio.run_coroutine_threadsafe(stop(), self._loop).result(timeout=30)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()
        assert not problems, problems
