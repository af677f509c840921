"""The single writer: one thread that owns every write of samples, batched.

The event loop only appends to a bounded in-memory buffer (:meth:`Writer.offer`, never
blocks); the thread writes a batch when ``batch_size`` samples are waiting or the oldest
has waited ``batch_interval``, in one transaction with one executemany through SQLAlchemy
Core (ORM objects cost ~10x here). Between batches it advances the maintenance job (rollups,
retention) by one short step, so maintenance never holds the write lock for long and there
is only ever one writer to the SQLite file. When the buffer is full, new samples are shed
and counted, not queued without limit. A failed write is retried with backoff while new
samples wait in the buffer, so a database outage costs memory up to the bound, then sheds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from operator import itemgetter

from sqlalchemy import Engine

from agent.history.maintenance import Floors
from agent.history.series import SeriesCache
from agent.history.sql import insert_ignore
from agent.history.tables import samples
from agent.samples import Sample, SeriesKey, Tags
from agent.secrets import scrub

__all__ = ["Writer", "WriterStats"]

log = logging.getLogger(__name__)

MaintenanceFactory = Callable[[float], Iterator[str]]
_ts = itemgetter(1)
# a sample as it waits for the writer: (metric, tags, timestamp, value), one tuple of 72
# bytes (a (metric, tags) key inside cost 56 more; the series cache is by metric, then
# tags). A plain tuple of strings, numbers and (untracked) tag tuples is dropped from the
# garbage collector's lists at its first young collection, where a Sample object stays tracked: samples wait
# up to ``batch_interval`` here, long enough to reach the old generation and make the
# collector's full passes come more often and walk more (benchmarks/agent_scale.py).
_Row = tuple[str, Tags, float, float]


@dataclass
class WriterStats:
    """Counters the store reports in /status and as mlwarden.history.* metrics."""

    written: int = 0
    shed: int = 0
    batches: int = 0
    errors: int = 0
    last_flush: float | None = None  # epoch seconds of the last committed batch
    last_flush_duration: float | None = None
    last_error: str | None = None
    maintenance_runs: int = 0
    last_maintenance: float | None = None
    last_maintenance_duration: float | None = None
    lost_at_stop: int = 0
    series_cached: int = 0
    extra: dict[str, float] = field(default_factory=dict)


class Writer(threading.Thread):
    """Batches samples into the database; start(), offer() from the loop, close() to flush."""

    def __init__(
        self,
        engine: Engine,
        *,
        batch_size: int,
        batch_interval: float,
        queue_size: int,
        maintenance: MaintenanceFactory | None = None,
        maintenance_interval: float = 60.0,
        on_commit: Callable[[int], None] | None = None,
        floors: Floors | None = None,
    ) -> None:
        super().__init__(name="history-writer", daemon=True)
        self.engine = engine
        self.batch_size = batch_size
        self.batch_interval = batch_interval
        self.queue_size = queue_size
        self.stats = WriterStats()
        self._maintenance = maintenance
        self._maintenance_interval = maintenance_interval
        self._on_commit = on_commit
        self._floors = floors
        self._buf: deque[_Row] = deque()
        self._cond = threading.Condition()
        self._oldest_at = 0.0  # monotonic time the oldest buffered sample arrived
        self._closing = False
        self._inflight = 0
        self._cache = SeriesCache(engine)
        self._insert = insert_ignore(engine, samples)
        # SQLite: the same Core statement, compiled once and handed to the driver's
        # executemany with plain tuples (per-row dict handling was a third of the cost).
        # PostgreSQL keeps Core's own executemany, which batches rows into multi-VALUES.
        self._driver_sql = (str(self._insert.compile(dialect=engine.dialect))
                            if engine.dialect.name == "sqlite" else None)
        self._next_maintenance = time.monotonic() + maintenance_interval
        self._steps: Iterator[str] | None = None
        self._maint_started = 0.0

    # -- the event loop side (cheap, never blocks on I/O) -------------------------------
    @property
    def depth(self) -> int:
        """Samples accepted but not yet committed (buffered, or in a batch being written)."""
        return len(self._buf) + self._inflight

    def offer(self, batch: Sequence[Sample]) -> int:
        """Queue samples; returns how many were accepted (the rest are shed and counted)."""
        if not batch:
            return 0
        rows = [(s.metric, s.tags, s.timestamp, s.value) for s in batch]
        with self._cond:
            room = self.queue_size - len(self._buf) - self._inflight
            take = rows if len(rows) <= room else rows[:max(room, 0)]
            if take:
                was_empty = not self._buf
                if was_empty:
                    self._oldest_at = time.monotonic()
                self._buf.extend(take)
                if was_empty or len(self._buf) >= self.batch_size:
                    self._cond.notify()  # the writer sleeps until a deadline it must now set
            shed = len(batch) - len(take)
        if shed:
            before = self.stats.shed
            self.stats.shed += shed
            # the first shed sample, then about every 10,000: loud enough, never a flood
            if before == 0 or before // 10_000 != self.stats.shed // 10_000:
                log.warning("history writer is behind: queue full at %d samples, shed %d "
                            "(%d so far); the database is too slow or unreachable",
                            self.queue_size, shed, self.stats.shed)
        return len(take)

    def close(self, timeout: float) -> bool:
        """Flush what is buffered and stop the thread; False if it did not finish in time."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self.join(timeout)
        return not self.is_alive()

    # -- the thread --------------------------------------------------------------------
    def run(self) -> None:
        pending: list[_Row] = []
        backoff = 0.0
        while True:
            with self._cond:
                while (not self._closing and not pending and not self._batch_ready()
                       and not self._maintenance_due()):
                    self._cond.wait(self._wait_time())
                closing = self._closing
                if not pending and (closing or self._batch_ready()):
                    pending = self._take()
                    self._inflight = len(pending)
            if pending:
                if self._write(pending):
                    pending, backoff = [], 0.0
                    self._inflight = 0
                else:
                    backoff = min(max(backoff * 2, 0.5), 30.0)
                    if closing:
                        self.stats.lost_at_stop += len(pending) + len(self._buf)
                        log.error("history writer stopping with %d unwritten samples after a "
                                  "failed write: %s", self.stats.lost_at_stop, self.stats.last_error)
                        return
                    with self._cond:
                        self._cond.wait(backoff)
                    continue
            if closing:
                with self._cond:
                    if not self._buf:
                        return
                continue
            self._maintenance_step()

    def _batch_ready(self) -> bool:
        if not self._buf:
            return False
        return (len(self._buf) >= self.batch_size
                or time.monotonic() - self._oldest_at >= self.batch_interval)

    def _wait_time(self) -> float:
        now = time.monotonic()
        until_maint = max(0.0, self._next_maintenance - now) if self._steps is None else 0.0
        if self._maintenance is None:
            until_maint = self.batch_interval
        if not self._buf:
            return max(0.01, until_maint)
        return max(0.001, min(self._oldest_at + self.batch_interval - now, until_maint))

    def _take(self) -> list[_Row]:
        n = min(len(self._buf), self.batch_size)
        batch = [self._buf.popleft() for _ in range(n)]
        if self._buf:
            self._oldest_at = time.monotonic() - self.batch_interval  # the rest is due now
        return batch

    def _write(self, batch: list[_Row]) -> bool:
        started = time.perf_counter()
        new: dict[SeriesKey, int] = {}
        try:
            with self.engine.begin() as conn:
                ids = self._cache.ids
                try:  # every series known: one tuple and two dict lookups per sample
                    rows = [(ids[metric][tags], ts, value) for metric, tags, ts, value in batch]
                except KeyError:
                    new = self._cache.resolve(conn, {(m, t) for m, t, _, _ in batch})
                    rows = [(new[(m, t)] if (m, t) in new else ids[m][t], ts, value)
                            for m, t, ts, value in batch]
                if self._driver_sql is not None:
                    conn.exec_driver_sql(self._driver_sql, rows)
                else:
                    conn.execute(self._insert, [{"series_id": sid, "ts": ts, "value": value}
                                                for sid, ts, value in rows])
        except Exception as exc:  # noqa: BLE001 - the writer must outlive any failure
            self.stats.errors += 1
            message = scrub(f"{type(exc).__name__}: {getattr(exc, 'orig', None) or exc}")[:500]
            if message != self.stats.last_error or self.stats.errors % 100 == 1:
                log.error("history write of %d samples failed (will retry): %s", len(batch), message)
            self.stats.last_error = message
            return False
        self._cache.commit(new)
        if self._floors is not None:  # retention and the first rollup start from it
            self._floors.lower(samples, min(map(_ts, rows)))
        stats = self.stats
        stats.last_flush_duration = time.perf_counter() - started
        stats.last_flush = time.time()
        stats.written += len(batch)
        stats.batches += 1
        stats.series_cached = len(self._cache)
        if self._on_commit is not None:
            self._on_commit(len(batch))
        return True

    # -- maintenance, one short step at a time ------------------------------------------
    def _maintenance_due(self) -> bool:
        return self._maintenance is not None and (
            self._steps is not None or time.monotonic() >= self._next_maintenance)

    def _maintenance_step(self) -> None:
        if not self._maintenance_due():
            return
        assert self._maintenance is not None
        if self._steps is None:
            self._maint_started = time.perf_counter()
            self._steps = self._maintenance(time.time())
        try:
            next(self._steps)
            return
        except StopIteration:
            self.stats.maintenance_runs += 1
            self.stats.last_maintenance = time.time()
            self.stats.last_maintenance_duration = time.perf_counter() - self._maint_started
        except Exception as exc:  # noqa: BLE001 - retried at the next interval
            self.stats.errors += 1
            self.stats.last_error = scrub(f"maintenance: {type(exc).__name__}: "
                                          f"{getattr(exc, 'orig', None) or exc}")[:500]
            log.error("history maintenance failed (next try in %gs): %s",
                      self._maintenance_interval, self.stats.last_error)
        self._steps = None
        self._next_maintenance = time.monotonic() + self._maintenance_interval
