"""Runs every check instance on its own interval with APScheduler's AsyncIOScheduler.

One job per instance with ``max_instances=1`` (an overrunning check is skipped, never
stacked), ``coalesce=True`` (missed runs collapse into one) and a misfire grace of one
interval. Each run is bounded by the check's own timeout inside :meth:`AgentCheck.run`,
so a hanging target costs only its own slot. Missed and skipped runs are counted from
APScheduler's events. Every run adds the agent's meta samples (``mlwarden.check.*``) to
its result and hands it to the pipeline.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    JobEvent,
)
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from agent.check import AgentCheck
from agent.pipeline import Pipeline
from agent.runlog import RunLog
from agent.samples import CheckResult, Kind, Sample, Status, make_tags

__all__ = ["CheckScheduler", "CheckState"]

log = logging.getLogger(__name__)
FIRST_RUN_SPREAD = 10.0  # seconds; also the longest wait for a check's first result


@dataclass
class CheckState:
    """What /status shows for one check instance."""

    name: str
    type: str
    interval: float
    scope: str = "local"
    last_run: float | None = None
    last_duration: float | None = None
    status: Status | None = None
    message: str = ""
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    next_run: float | None = None
    runs: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    missed: int = 0
    skipped_overlap: int = 0
    last_ok: float | None = None
    running: bool = False
    paused_reason: str | None = None

    def copy(self) -> CheckState:
        """A detached copy, for readers off the event loop (/status renders in a thread)."""
        new = object.__new__(CheckState)
        new.__dict__.update(self.__dict__)  # a third of copy.copy's cost; 1,000 per /status
        return new

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "scope": self.scope,
            "interval": self.interval,
            "status": self.status.name if self.status is not None else "PENDING",
            "message": self.message,
            "error": self.error,
            "warnings": self.warnings,
            "last_run": _iso(self.last_run),
            "last_duration": None if self.last_duration is None else round(self.last_duration, 6),
            "last_ok": _iso(self.last_ok),
            "next_run": _iso(self.next_run),
            "running": self.running,
            "runs": self.runs,
            "failures": self.failures,
            "consecutive_failures": self.consecutive_failures,
            "missed": self.missed,
            "skipped_overlap": self.skipped_overlap,
            "paused_reason": self.paused_reason,
        }


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds")


class CheckScheduler:
    """Owns the check jobs; :meth:`set_checks` swaps the set (start-up and reload)."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.checks: dict[str, AgentCheck] = {}
        self.states: dict[str, CheckState] = {}
        self.runlog = RunLog()
        self._inflight: set[asyncio.Task[Any]] = set()
        self._scheduler = AsyncIOScheduler(timezone=timezone.utc)
        self._scheduler.add_listener(
            self._on_event, EVENT_JOB_ERROR | EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES
        )
        self.running = False
        self.gate: Any = None  # optional callable(check) -> str|None: reason to skip (leadership)

    def start(self) -> None:
        self._scheduler.start()
        self.running = True

    def set_checks(self, checks: list[AgentCheck]) -> list[AgentCheck]:
        """Schedule ``checks`` instead of the current set; returns the removed ones to close."""
        removed = [c for name, c in self.checks.items() if name not in {k.name for k in checks}]
        for check in removed:
            self._remove_job(check.name)
            self.states.pop(check.name, None)
            self.runlog.forget(check.name)
            del self.checks[check.name]
        for check in checks:
            old = self.checks.get(check.name)
            if old is not None and old is not check:
                self._remove_job(check.name)
                removed.append(old)
            self.checks[check.name] = check
            prev = self.states.get(check.name)
            state = CheckState(check.name, check.type_name, check.config.interval, check.config.scope)
            if prev is not None:  # keep history across reloads
                for attr in ("last_run", "last_duration", "status", "message", "error", "runs",
                             "failures", "consecutive_failures", "missed", "skipped_overlap", "last_ok"):
                    setattr(state, attr, getattr(prev, attr))
            self.states[check.name] = state
            self._add_job(check)
        return removed

    def run_now(self, scope: str) -> None:
        """Move every job of ``scope`` to now (cluster checks, when this agent is elected)."""
        now = datetime.now(timezone.utc)
        for name, check in self.checks.items():
            job = self._scheduler.get_job(name) if self.running else None
            if job is not None and check.config.scope == scope:
                job.modify(next_run_time=now)

    def _add_job(self, check: AgentCheck) -> None:
        interval = check.config.interval
        # first runs spread over the interval (at most FIRST_RUN_SPREAD): 1,000 checks started
        # in one second fire together every interval and stall the loop (benchmarks/soak.py)
        spread = min(interval, FIRST_RUN_SPREAD)
        first = datetime.now(timezone.utc) + timedelta(seconds=random.uniform(0, spread))
        self._scheduler.add_job(
            self._run,
            IntervalTrigger(seconds=interval, jitter=check.config.jitter or None),
            args=[check.name],
            id=check.name,
            name=check.name,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=max(1, int(interval)),
            next_run_time=first,
            replace_existing=True,
        )
        self.states[check.name].next_run = first.timestamp()

    def _remove_job(self, name: str) -> None:
        try:
            self._scheduler.remove_job(name)
        except Exception:  # noqa: BLE001 - JobLookupError: already gone
            pass

    def _on_event(self, event: JobEvent) -> None:
        state = self.states.get(event.job_id)
        if state is None:
            return
        if event.code == EVENT_JOB_MISSED:
            state.missed += 1
            log.warning("check %s missed a scheduled run (the event loop was busy)", event.job_id)
        elif event.code == EVENT_JOB_MAX_INSTANCES:
            state.skipped_overlap += 1
            log.warning("check %s is still running; skipped this run", event.job_id)
        elif event.code == EVENT_JOB_ERROR:
            log.error("check job %s raised: %s", event.job_id, getattr(event, "exception", None))

    async def _run(self, name: str) -> None:
        check = self.checks.get(name)
        state = self.states.get(name)
        if check is None or state is None:
            return
        task = asyncio.current_task()
        if task is not None:
            self._inflight.add(task)
        state.running = True
        try:
            reason = self.gate(check) if self.gate is not None else None
            state.paused_reason = reason
            if reason:
                return
            try:
                result = await check.run()
            except asyncio.CancelledError:
                log.info("check %s was cancelled by shutdown while running", name)
                return
            self._record(check, state, result)
            self.pipeline.submit(result)
        finally:
            state.running = False
            job = self._scheduler.get_job(name)
            state.next_run = job.next_run_time.timestamp() if job and job.next_run_time else None
            if task is not None:
                self._inflight.discard(task)

    async def run_once(self, name: str) -> CheckResult:
        """Run one instance now, outside its schedule; its result flows like any other."""
        check = self.checks[name]
        result = await check.run()
        self._record(check, self.states[name], result)
        self.pipeline.submit(result)
        return result

    def _record(self, check: AgentCheck, state: CheckState, result: CheckResult) -> None:
        add_meta_samples(check, result)
        state.runs += 1
        state.last_run = result.started
        state.last_duration = result.duration
        previous, state.status = state.status, result.status
        state.message = result.message
        state.error = result.error
        state.warnings = result.warnings[-5:]
        if result.error:
            state.failures += 1
            state.consecutive_failures += 1
        else:
            state.consecutive_failures = 0
            state.last_ok = result.started
        self.runlog.record(check.name, previous, result)  # changes, once; not every run
        for warning in result.warnings:
            log.warning("check %s: %s", check.name, warning, extra={"check": check.name})

    async def quiesce(self, timeout: float) -> bool:
        """Stop starting runs and wait up to ``timeout`` for in-flight ones; False if some remain."""
        if self.running:
            self._scheduler.pause()
        pending = {t for t in self._inflight if not t.done()}
        if not pending:
            return True
        done, still = await asyncio.wait(pending, timeout=timeout)
        return not still

    def shutdown(self) -> None:
        if self.running:
            self._scheduler.shutdown(wait=False)
            self.running = False


def add_meta_samples(check: AgentCheck, result: CheckResult) -> None:
    """The agent's own view of every run: verdict, duration, and an error sample on failure."""
    tags = make_tags(check._base_tags, {"check_type": check.type_name})  # noqa: SLF001
    ts = result.started or time.time()
    result.samples.append(Sample("mlwarden.check.status", float(result.status), tags, ts))
    result.samples.append(Sample("mlwarden.check.duration", result.duration, tags, ts))
    result.samples.append(Sample("mlwarden.check.runs", 1.0, tags, ts, Kind.COUNT))
    if result.error:
        err_tags = make_tags(tags, {"error": result.error})
        result.samples.append(Sample("mlwarden.check.errors", 1.0, err_tags, ts, Kind.COUNT))
