"""The strict fake Slack (tests/notify/fake_slack.py) on its own event loop in a thread, so
a test that drives a daemon subprocess from synchronous code can use it."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from tests.notify.fake_slack import FakeSlack

__all__ = ["ThreadedSlack"]


class ThreadedSlack:
    def __init__(self, **fake: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.fake = FakeSlack(**fake)
        self.fake.ts_base = int(time.time())  # the agent looks for its posts by real time

    def call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run ``fn`` on the fake's loop (its state is only touched there) and return its value."""
        async def run() -> Any:
            return fn(*args, **kwargs)
        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout=10)

    def __enter__(self) -> "ThreadedSlack":
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.fake.start(), self.loop).result(timeout=10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.fake.stop(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        self.loop.close()
