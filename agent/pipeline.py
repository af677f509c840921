"""The per-poll flow: every check result goes through one bounded queue to every sink.

Sinks (latest values, the history store, exporters, rules) are called in the order they
were attached, each isolated from the others: a sink that raises is logged and counted,
and the rest still get the result. Sinks must be cheap on the loop; slow work (disk,
network) belongs on their own task or thread. A backlog is worked off in slices of a few
milliseconds, so due checks start on time meanwhile.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable
from typing import Protocol

from agent.samples import CheckResult
from agent.tasks import cancel_and_wait

__all__ = ["Pipeline", "Sink"]

log = logging.getLogger(__name__)
YIELD_AFTER = 0.005  # seconds of sink work before the pipeline lets the loop run other tasks


LARGE = 1000  # samples from which a result goes to a sink's consume_in_slices, if it has one


class Sink(Protocol):
    """Anything that takes check results.

    A sink whose work grows with a result's samples may also have
    ``async consume_in_slices(result)``: the same as ``consume``, but letting the loop run
    between slices. The pipeline uses it for results of more than ``LARGE`` samples (a
    self-check over thousands of instances, a scrape of a big OpenMetrics endpoint), which
    in one piece would hold every due check back for tens of milliseconds.
    """

    name: str

    def consume(self, result: CheckResult) -> None | Awaitable[None]: ...


class Pipeline:
    """One queue between the checks and every sink.

    When the queue is full (sinks fell far behind) the oldest result is shed and counted,
    so memory stays bounded and the freshest data wins.
    """

    def __init__(self, sinks: list[Sink] | None = None, maxsize: int = 10_000) -> None:
        self.sinks: list[Sink] = list(sinks or [])
        self._queue: asyncio.Queue[CheckResult] = asyncio.Queue(maxsize=maxsize)
        self.maxsize = maxsize
        self.shed = 0
        self.processed = 0
        self.sink_errors: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    def attach(self, sink: Sink) -> None:
        self.sinks.append(sink)

    def submit(self, result: CheckResult) -> None:
        if self._queue.full():
            try:
                self._queue.get_nowait()
                self._queue.task_done()
            except asyncio.QueueEmpty:
                pass
            self.shed += 1
            if self.shed == 1 or self.shed % 1000 == 0:
                log.warning("pipeline queue full (%d results): shedding the oldest; %d shed so far",
                            self.maxsize, self.shed)
        self._queue.put_nowait(result)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="pipeline")

    async def _run(self) -> None:
        while True:
            result = await self._queue.get()  # waits only when there is nothing to do
            slice_end = time.perf_counter() + YIELD_AFTER
            while True:
                try:
                    await self.process(result)
                finally:
                    self._queue.task_done()
                if self._queue.empty():
                    break
                if time.perf_counter() > slice_end:
                    # a backlog drained in one go would hold due checks back: let them start
                    await asyncio.sleep(0)
                    slice_end = time.perf_counter() + YIELD_AFTER
                result = self._queue.get_nowait()

    async def process(self, result: CheckResult) -> None:
        """Hand one result to every sink, each isolated from the others."""
        large = len(result.samples) > LARGE
        for sink in self.sinks:
            try:
                sliced = getattr(sink, "consume_in_slices", None) if large else None
                out = sliced(result) if sliced is not None else sink.consume(result)
                if inspect.isawaitable(out):
                    await out
            except Exception:  # noqa: BLE001 - one sink must not starve the others
                name = getattr(sink, "name", type(sink).__name__)
                self.sink_errors[name] = self.sink_errors.get(name, 0) + 1
                log.exception("sink %s failed on a result of check %s", name, result.check)
        self.processed += 1

    async def drain(self, timeout: float) -> bool:
        """Wait until every queued result reached the sinks; False on timeout."""
        try:
            await asyncio.wait_for(self._queue.join(), timeout)
            return True
        except asyncio.TimeoutError:
            return False

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
