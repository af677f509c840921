"""Runs every check instance on its own interval with APScheduler's AsyncIOScheduler.

APScheduler fires one job per *slot*: the checks that share an interval, a scope and a
phase of ``SLOT`` seconds within the interval. A fire starts each of its checks as its own
task and returns at once, so the cost of a job (trigger arithmetic, job store, events) is
paid per slot instead of per check. A slot of more than ``GROUP`` checks starts them in
groups spread over the slot's width (one loop timer per group): a check's duration is
wall time, so 50 checks started together each counted the loop's work on its slot-mates'
responses (p50 14-21 ms at 5,000 checks every 10 s; benchmarks/agent_scale.py), and one
timer per check instead doubled the CPU per run. The guarantees stay per check:

- ``max_instances=1``: a check whose previous run is still going is skipped and counted
  (``skipped_overlap``), never stacked, and its slot's other checks run as usual;
- coalescing: runs missed while the loop was busy collapse into one (the slot's job
  coalesces, and a check belongs to exactly one slot);
- misfires: a slot's run later than one interval's grace is dropped and counted as
  ``missed`` for each of its checks.

First runs are spread over the interval (at most ``FIRST_RUN_SPREAD``) on a grid of slots
anchored at the epoch, so a check added by a reload joins the slot of its phase and still
runs within the spread. A check's ``jitter`` delays each of its runs by a random part of it.
Each run is bounded by the check's own timeout inside :meth:`AgentCheck.run`, so a hanging
target costs only its own slot. Every run adds the agent's meta samples
(``mlwarden.check.*``) to its result and hands it to the pipeline.
"""

from __future__ import annotations

import asyncio
import logging
import math
import operator
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
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
SLOT = 0.1  # seconds: checks of one interval due within the same slot share one job
GROUP = 10  # checks a slot starts together; more start in groups spread over the slot

_STATUS_VALUES = {status: float(status) for status in Status}  # one float each, not one a run
SlotKey = tuple[float, str, int]  # (interval, scope, phase index within the interval)


@dataclass
class _Slot:
    """One APScheduler job and the checks it starts."""

    job_id: str
    names: dict[str, None] = field(default_factory=dict)  # insertion-ordered set


@dataclass(slots=True)
class CheckState:
    """What /status shows for one check instance (slots: one per check, 56 bytes less than
    with a dict, and 64 more saved where /status copies it)."""

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
        return CheckState(*_ALL_FIELDS(self))  # a fifth of copy.copy's cost; 1,000 per /status

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


_ALL_FIELDS = operator.attrgetter(*(f.name for f in fields(CheckState)))  # in __init__'s order


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds")


class CheckScheduler:
    """Owns the check jobs; :meth:`set_checks` swaps the set (start-up and reload)."""

    def __init__(self, pipeline: Pipeline, *, first_run_spread: float = FIRST_RUN_SPREAD) -> None:
        self.pipeline = pipeline
        self.checks: dict[str, AgentCheck] = {}
        self.states: dict[str, CheckState] = {}
        self.runlog = RunLog()
        self.first_run_spread = first_run_spread
        self._inflight: set[asyncio.Task[Any]] = set()
        self._slots: dict[SlotKey, _Slot] = {}
        self._slot_of: dict[str, SlotKey] = {}
        self._by_job: dict[str, SlotKey] = {}
        self._later: dict[object, asyncio.TimerHandle] = {}  # a slot's groups still to start
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
        now = time.time()
        removed = [c for name, c in self.checks.items() if name not in {k.name for k in checks}]
        for check in removed:
            self._unplace(check.name)
            self.states.pop(check.name, None)
            self.runlog.forget(check.name)
            del self.checks[check.name]
        for check in checks:
            old = self.checks.get(check.name)
            if old is not None and old is not check:
                self._unplace(check.name)
                removed.append(old)
            self.checks[check.name] = check
            prev = self.states.get(check.name)
            state = CheckState(check.name, check.type_name, check.config.interval, check.config.scope)
            if prev is not None:  # keep history across reloads
                for attr in ("last_run", "last_duration", "status", "message", "error", "runs",
                             "failures", "consecutive_failures", "missed", "skipped_overlap", "last_ok",
                             "running"):
                    setattr(state, attr, getattr(prev, attr))
            self.states[check.name] = state
            if old is not check or check.name not in self._slot_of:
                self._place(check, now)
        return removed

    def run_now(self, scope: str) -> None:
        """Run every check of ``scope`` now and every interval from now on (cluster checks,
        when this agent is elected)."""
        if not self.running:
            return
        now = time.time()
        for name, check in self.checks.items():
            if check.config.scope == scope:
                self._unplace(name)
                self._place(check, now, spread=False)

    def _place(self, check: AgentCheck, now: float, spread: bool = True) -> None:
        """Put ``check`` in the slot of its phase, creating the slot's job if it has none."""
        interval = float(check.config.interval)
        per_interval = max(1, round(interval / SLOT))
        width = interval / per_interval
        first = now
        if spread:
            # first runs spread over the interval (at most the spread): 1,000 checks started in
            # one second would fire together every interval and stall the loop (soak.py)
            first += random.uniform(0, min(interval, self.first_run_spread))
        tick = math.ceil(first / width)
        key: SlotKey = (interval, check.config.scope, tick % per_interval)
        slot = self._slots.get(key)
        if slot is None:
            start = datetime.fromtimestamp(tick * width, timezone.utc)
            slot = self._slots[key] = _Slot(f"every {interval!r}s, slot {key[2]}/{per_interval}, {key[1]}")
            self._by_job[slot.job_id] = key
            self._scheduler.add_job(
                self._fire, IntervalTrigger(seconds=interval), args=[key], id=slot.job_id,
                name=slot.job_id, max_instances=1, coalesce=True,
                misfire_grace_time=max(1, int(interval)), next_run_time=start,
                replace_existing=True,
            )
        slot.names[check.name] = None
        self._slot_of[check.name] = key
        job = self._scheduler.get_job(slot.job_id)
        self.states[check.name].next_run = (job.next_run_time.timestamp()
                                            if job is not None and job.next_run_time else None)

    def _unplace(self, name: str) -> None:
        key = self._slot_of.pop(name, None)
        slot = self._slots.get(key) if key is not None else None
        if slot is None:
            return
        slot.names.pop(name, None)
        if not slot.names:
            del self._slots[key]  # type: ignore[arg-type]
            self._by_job.pop(slot.job_id, None)
            try:
                self._scheduler.remove_job(slot.job_id)
            except Exception:  # noqa: BLE001 - JobLookupError: already gone
                pass

    async def _fire(self, key: SlotKey) -> None:
        """One slot is due: start each of its checks that is not still running."""
        slot = self._slots.get(key)
        if slot is None:
            return
        job = self._scheduler.get_job(slot.job_id)
        next_run = job.next_run_time.timestamp() if job is not None and job.next_run_time else None
        if len(slot.names) <= GROUP:
            self._start(slot.names, next_run)
            return
        names = list(slot.names)
        groups = math.ceil(len(names) / GROUP)
        size = math.ceil(len(names) / groups)
        interval = key[0]
        step = interval / max(1, round(interval / SLOT)) / groups  # the slot's width, shared out
        loop = asyncio.get_running_loop()
        self._start(names[:size], next_run)
        for i in range(1, groups):
            token = object()
            self._later[token] = loop.call_later(i * step, self._start_later, token,
                                                 names[i * size:(i + 1) * size], next_run)

    def _start_later(self, token: object, names: list[str], next_run: float | None) -> None:
        if self._later.pop(token, None) is not None:
            self._start(names, next_run)

    def _start(self, names: Iterable[str], next_run: float | None) -> None:
        """Start each of ``names`` that is not still running, each as its own task."""
        loop = asyncio.get_running_loop()
        for name in names:
            state = self.states.get(name)
            if state is None:
                continue
            state.next_run = next_run
            if state.running:  # max_instances=1, per check
                state.skipped_overlap += 1
                log.warning("check %s is still running; skipped this run", name)
                continue
            state.running = True
            task = loop.create_task(self._run(name, state))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)

    def _cancel_later(self) -> None:
        for handle in self._later.values():
            handle.cancel()
        self._later.clear()

    def _on_event(self, event: JobEvent) -> None:
        key = self._by_job.get(event.job_id)
        slot = self._slots.get(key) if key is not None else None
        if slot is None:
            return
        if event.code == EVENT_JOB_MISSED:
            for name in slot.names:
                state = self.states.get(name)
                if state is not None:
                    state.missed += 1
            names = list(slot.names)
            log.warning("check%s %s missed a scheduled run (the event loop was busy)",
                        "s" if len(names) > 1 else "", ", ".join(names[:5])
                        + (f" and {len(names) - 5} more" if len(names) > 5 else ""))
        elif event.code == EVENT_JOB_MAX_INSTANCES:
            # the slot's previous fire has not even started yet (the loop is that busy): the
            # pending one starts every check that is not running, so this one is coalesced
            log.debug("slot %s fired again before its previous fire ran", event.job_id)
        elif event.code == EVENT_JOB_ERROR:
            log.error("check slot %s raised: %s", event.job_id, getattr(event, "exception", None))

    async def _run(self, name: str, state: CheckState) -> None:
        check = self.checks.get(name)
        try:
            if check is None or self.states.get(name) is not state:
                return  # removed (or replaced by a reload) before it started
            reason = self.gate(check) if self.gate is not None else None
            state.paused_reason = reason
            if reason:
                return
            if check.config.jitter:
                await asyncio.sleep(random.uniform(0, check.config.jitter))
            try:
                result = await check.run()
            except asyncio.CancelledError:
                log.info("check %s was cancelled by shutdown while running", name)
                return
            self._record(check, state, result)
            self.pipeline.submit(result)
        finally:
            state.running = False
            current = self.states.get(name)
            if current is not None and current is not state:
                current.running = False  # a reload swapped the state while this run went on

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
        warnings = result.warnings  # the result's own list where it fits: no copy a run
        state.warnings = warnings if len(warnings) <= 5 else warnings[-5:]
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
        self._cancel_later()
        pending = {t for t in self._inflight if not t.done()}
        if not pending:
            return True
        done, still = await asyncio.wait(pending, timeout=timeout)
        return not still

    def shutdown(self) -> None:
        """Stop the scheduler and cancel the runs still in flight."""
        if self.running:
            self._scheduler.shutdown(wait=False)
            self.running = False
        self._cancel_later()
        for task in list(self._inflight):
            task.cancel()


def add_meta_samples(check: AgentCheck, result: CheckResult) -> None:
    """The agent's own view of every run: verdict, duration, and an error sample on failure."""
    tags = check.merged_tags({"check_type": check.type_name})
    ts = result.started or time.time()
    result.samples.append(Sample("mlwarden.check.status", _STATUS_VALUES[result.status], tags, ts))
    result.samples.append(Sample("mlwarden.check.duration", result.duration, tags, ts))
    result.samples.append(Sample("mlwarden.check.runs", 1.0, tags, ts, Kind.COUNT))
    if result.error:
        err_tags = make_tags(tags, {"error": result.error})
        result.samples.append(Sample("mlwarden.check.errors", 1.0, err_tags, ts, Kind.COUNT))
