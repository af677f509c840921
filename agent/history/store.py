"""The history store: the agent's component for everything that must outlive a restart.

It is three things to the rest of the agent:

- a pipeline sink (:meth:`HistoryStore.consume`): samples go to the single writer thread,
  without ever blocking the event loop;
- the checks' durable state (:class:`agent.check.StateStore`): cursors such as the last
  Airflow run already reported, written through and committed before ``set_state`` returns;
- the database other components build on (:attr:`HistoryStore.engine`: alerts, outbox,
  silences, leases), and the reader behind rules windows and charts (:meth:`read_series`).

``start()`` migrates the database to the current schema (Alembic ``upgrade head``) before
anything reads or writes it.

Example::

    store = HistoryStore("sqlite:///mlwarden.db", HistoryConfig())
    await store.start()
    store.consume(result)
    points = store.read_series("mlwarden.endpoint.latency", since=time.time() - 3600)
    await store.stop()
"""

from __future__ import annotations

import asyncio
import json
import os
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from functools import partial
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from agent.errors import StoreError
from agent.history import migrations
from agent.history.config import HistoryConfig
from agent.history.db import is_sqlite, make_engine
from agent.history.maintenance import Floors
from agent.history.query import HistoryReader, Points
from agent.history.retention import RetentionReport, apply_retention
from agent.history.rollups import fold_all
from agent.history.checkstate import CheckStateRows
from agent.history.writer import Writer
from agent.history.outbox import Outbox
from agent.samples import AGENT_CHECK_TYPE, CheckResult, Kind, Sample, Status, Tags, make_tags
from agent.secrets import scrub
from agent.tasks import cancel_and_wait

__all__ = ["HistoryStore"]

log = logging.getLogger(__name__)

STOP_TIMEOUT = 30.0


class HistoryStore:
    """Component, pipeline sink and :class:`~agent.check.StateStore` on one database."""

    name = "history"

    def __init__(self, url: str, config: HistoryConfig | None = None, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config or HistoryConfig()
        self.url = url
        self.shown_url = _hide_password(url)
        self._engine = make_engine(url)
        self.clock = clock
        self.reader = HistoryReader(self._engine, self.config.retention, clock)
        self.retention_report = RetentionReport(deleted={})
        self.floors = Floors()  # what maintenance knows without asking (history/maintenance.py)
        self._writer: Writer | None = None
        self._started = False
        self._metrics_task: asyncio.Task[None] | None = None
        self._last_metrics = (0, 0, 0)  # written, shed, errors at the previous report
        # set by the agent to feed the store's own metrics back into the pipeline
        self.emit: Callable[[CheckResult], None] | None = None

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine other components use for their tables."""
        return self._engine

    @property
    def writer(self) -> Writer | None:
        return self._writer

    # -- Component --------------------------------------------------------------------
    async def start(self) -> None:
        """Migrate to the current schema, hand back the deliveries a killed predecessor left
        mid-send (they would wait out their claim), then start the writer thread."""
        if self._started:
            return
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, migrations.upgrade, self._engine)
            await loop.run_in_executor(None, Outbox(self._engine).release_orphans)
        except SQLAlchemyError as exc:
            raise StoreError(scrub(f"agent.history: cannot open or migrate {self.shown_url}: "
                                   f"{getattr(exc, 'orig', None) or exc}"
                                   f"{_sqlite_hint(self._engine)}")) from None
        self._writer = self._new_writer()
        self._writer.start()
        self._started = True
        if self.emit is not None:
            self._metrics_task = loop.create_task(self._report_metrics(), name="history-metrics")
        log.info("history store on %s (schema %s)", self.shown_url, migrations.HEAD)

    def start_blocking(self) -> None:
        """start() for code without an event loop (benchmarks, scripts)."""
        migrations.upgrade(self._engine)
        self._writer = self._new_writer()
        self._writer.start()
        self._started = True

    async def stop(self) -> None:
        """Flush every buffered sample, stop the writer, close the connections."""
        await cancel_and_wait(self._metrics_task)
        self._metrics_task = None
        await asyncio.get_running_loop().run_in_executor(None, self.stop_blocking)

    def stop_blocking(self) -> None:
        if self._writer is not None:
            if not self._writer.close(STOP_TIMEOUT):
                log.error("history writer did not finish flushing within %gs", STOP_TIMEOUT)
            stats = self._writer.stats
            if stats.lost_at_stop:
                log.error("history store stopped; %d samples could not be written", stats.lost_at_stop)
        self._started = False
        self._engine.dispose()

    def status(self) -> dict[str, Any]:
        w = self._writer
        s = w.stats if w is not None else None
        return {
            "url": self.shown_url,
            "running": bool(w and w.is_alive()),
            "queue_depth": w.depth if w else 0,
            "queue_capacity": self.config.queue_size,
            "written": s.written if s else 0,
            "dropped": s.shed if s else 0,
            "batches": s.batches if s else 0,
            "errors": s.errors if s else 0,
            "last_error": s.last_error if s else None,
            "last_flush": s.last_flush if s else None,
            "last_flush_duration": s.last_flush_duration if s else None,
            "series_cached": s.series_cached if s else 0,
            "maintenance_runs": s.maintenance_runs if s else 0,
            "last_maintenance": s.last_maintenance if s else None,
            "last_maintenance_duration": s.last_maintenance_duration if s else None,
            "deleted_by_retention": dict(self.retention_report.deleted),
        }

    # -- pipeline sink ------------------------------------------------------------------
    def consume(self, result: CheckResult) -> None:
        """Queue a result's samples for the writer; never blocks (sheds when full)."""
        if self._writer is None or not result.samples:
            return
        self._writer.offer(result.samples)

    # -- StateStore ---------------------------------------------------------------------
    async def get_state(self, check: str, key: str) -> Any:
        return await asyncio.get_running_loop().run_in_executor(
            None, self.get_state_blocking, check, key)

    async def set_state(self, check: str, key: str, value: Any) -> None:
        """Committed (durable) when this returns; StoreError naming check and key on failure."""
        await asyncio.get_running_loop().run_in_executor(
            None, self.set_state_blocking, check, key, value)

    def get_state_blocking(self, check: str, key: str) -> Any:
        try:
            text = CheckStateRows(self._engine).get(check, key)
        except SQLAlchemyError as exc:
            raise StoreError(scrub(f"history: cannot read state {check}/{key} from "
                                   f"{self.shown_url}: {getattr(exc, 'orig', None) or exc}")) from None
        return None if text is None else json.loads(text)

    def set_state_blocking(self, check: str, key: str, value: Any) -> None:
        try:
            text = json.dumps(value, separators=(",", ":"), sort_keys=True)
        except (TypeError, ValueError) as exc:
            raise StoreError(f"history: state {check}/{key} is not JSON-serialisable: {exc}") from None
        try:
            CheckStateRows(self._engine).put(check, key, text, self.clock())
        except SQLAlchemyError as exc:
            raise StoreError(scrub(f"history: cannot save state {check}/{key} to "
                                   f"{self.shown_url}: {getattr(exc, 'orig', None) or exc}")) from None

    # -- queries ------------------------------------------------------------------------
    def read_series(self, metric: str, since: float, until: float | None = None,
                    tags: Mapping[str, str] | None = None) -> dict[Tags, Points]:
        """Points per matching series (tags ⊇ ``tags``); raw or rollup by range. Blocking."""
        return self.reader.read_series(metric, since, until, tags)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until what was queued before this call is written (tests, CLI tools)."""
        w = self._writer
        if w is None:
            return True
        deadline = time.monotonic() + timeout
        target = w.stats.written + w.depth
        while time.monotonic() < deadline:
            if w.depth == 0 or w.stats.written >= target:
                return True
            if not w.is_alive():
                return False
            time.sleep(0.01)
        return False

    def run_maintenance(self, now: float | None = None) -> None:
        """Fold rollups and apply retention to completion (blocking; tests and the CLI)."""
        for _ in self._maintenance(self.clock() if now is None else now):
            pass

    # -- internals ------------------------------------------------------------------------
    def _new_writer(self) -> Writer:
        c = self.config
        return Writer(self._engine, batch_size=c.batch_size, batch_interval=c.batch_interval,
                      queue_size=c.queue_size, maintenance=self._maintenance,
                      maintenance_interval=c.maintenance_interval, floors=self.floors)

    def _maintenance(self, now: float) -> Iterator[str]:
        c = self.config
        yield from fold_all(self._engine, now - c.rollup_delay, chunk=c.maintenance_chunk,
                            floors=self.floors)
        yield from apply_retention(self._engine, c.retention, now, chunk=c.maintenance_chunk,
                                   report=self.retention_report, floors=self.floors)

    def self_samples(self, now: float) -> list[Sample]:
        """The store's own metrics (mlwarden.history.*, declared in agent/metadata.csv)."""
        s = self._writer.stats if self._writer else None
        if s is None:
            return []
        written, shed, errors = s.written, s.shed, s.errors
        prev = self._last_metrics
        self._last_metrics = (written, shed, errors)
        tags = make_tags({"check": "history"})
        out = [
            Sample("mlwarden.history.queue_depth", float(self._writer.depth), tags, now, Kind.GAUGE),
            Sample("mlwarden.history.samples_written", float(written - prev[0]), tags, now, Kind.COUNT),
            Sample("mlwarden.history.samples_shed", float(shed - prev[1]), tags, now, Kind.COUNT),
            Sample("mlwarden.history.write_errors", float(errors - prev[2]), tags, now, Kind.COUNT),
        ]
        if s.last_flush_duration is not None:
            out.append(Sample("mlwarden.history.flush_duration", s.last_flush_duration, tags, now))
        if s.last_maintenance_duration is not None:
            out.append(Sample("mlwarden.history.maintenance_duration",
                              s.last_maintenance_duration, tags, now))
        size = self._db_size()
        if size is not None:
            out.append(Sample("mlwarden.history.db_size", float(size), tags, now))
        return out

    def _db_size(self) -> int | None:
        if not is_sqlite(self._engine):
            return None
        from pathlib import Path

        db = self._engine.url.database
        if not db or db == ":memory:":
            return None
        return sum(p.stat().st_size for p in (Path(db), Path(db + "-wal")) if p.exists())

    async def _report_metrics(self) -> None:
        interval = self.config.metrics_interval
        while True:
            await asyncio.sleep(interval)
            now = self.clock()
            try:
                batch = await asyncio.get_running_loop().run_in_executor(
                    None, partial(self.self_samples, now))
                w = self._writer
                shed = sum(x.value for x in batch if x.metric == "mlwarden.history.samples_shed")
                ok = w is not None and w.is_alive() and not shed
                result = CheckResult(check="history", check_type=AGENT_CHECK_TYPE,
                                     status=Status.OK if ok else Status.WARNING,
                                     message="" if ok else "history writer is shedding samples",
                                     samples=batch, started=now, interval=interval)
                if self.emit is not None:
                    self.emit(result)
            except Exception:  # noqa: BLE001 - metrics about the store must not stop it
                log.exception("history store could not report its own metrics")


def _hide_password(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - make_engine reports a bad URL properly
        return "(invalid URL)"


def _sqlite_hint(engine: Engine) -> str:
    """Why SQLite could not open its file, when the cause is the filesystem (its own words are vague)."""
    if engine.dialect.name != "sqlite" or not engine.url.database or engine.url.database == ":memory:":
        return ""
    folder = os.path.dirname(os.path.abspath(engine.url.database))
    try:
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return (f" (the filesystem holding {folder} is mounted read-only; SQLite in WAL mode "
                    "must write its -wal and -shm files beside the database: mount it read-write "
                    "or point agent.history elsewhere)")
    except OSError as exc:
        return f" ({folder}: {exc.strerror})"
    if not os.access(folder, os.W_OK):
        return f" ({folder} is not writable by this user)"
    return ""

