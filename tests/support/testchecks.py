"""Check types that exist only for tests: fast, hanging, crashing, garbage-emitting.

``python tests/support/testchecks.py run --config F`` runs the real CLI with these types
registered, so end-to-end tests exercise the real daemon with misbehaving checks.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from agent.check import AgentCheck, InstanceConfig  # noqa: E402
from agent.errors import CheckError  # noqa: E402
from agent.plugins import register_check_type  # noqa: E402
from agent.samples import Status  # noqa: E402


class FastCheck(AgentCheck):
    type_name = "test_fast"
    runs: list[float] = []

    async def check(self) -> None:
        FastCheck.runs.append(time.monotonic())
        self.service_check(Status.OK, "fast and fine")


class HangCheck(AgentCheck):
    """Awaits forever: only its timeout (or shutdown) ends it."""

    type_name = "test_hang"

    async def check(self) -> None:
        await asyncio.sleep(3600)


class BlockingHangCheck(AgentCheck):
    """Blocks a worker thread (like a slow C library call) for longer than its timeout."""

    type_name = "test_thread_hang"

    async def check(self) -> None:
        await self.run_blocking(time.sleep, 4)  # bounded: a stuck thread would outlive the test


class CrashCheck(AgentCheck):
    type_name = "test_crash"

    async def check(self) -> None:
        self.gauge("test.partial", 1.0)
        raise RuntimeError("boom with password hunter2-secret")


class DownCheck(AgentCheck):
    type_name = "test_down"

    async def check(self) -> None:
        raise CheckError("target refused the connection")


class WarnCheck(AgentCheck):
    type_name = "test_warn"

    async def check(self) -> None:
        self.service_check(Status.WARNING, "degraded on purpose")


class GarbageCheck(AgentCheck):
    type_name = "test_garbage"

    async def check(self) -> None:
        self.gauge("test.good", 1.5)
        self.gauge("test.nan", float("nan"))
        self.gauge("test.text", "not a number")  # type: ignore[arg-type]
        self.gauge("test.flag", True)


ALL = [FastCheck, HangCheck, BlockingHangCheck, CrashCheck, DownCheck, GarbageCheck, WarnCheck]


def register_all() -> None:
    for cls in ALL:
        register_check_type(cls.type_name, cls)


if __name__ == "__main__":
    register_all()
    from agent.cli import main

    sys.exit(main(sys.argv[1:]))
