"""The rules component: a pipeline sink plus a timer around :class:`RuleEvaluator`.

After each check result it evaluates the groups the result touched; every
``evaluation_interval`` a timer evaluates absent rules, expires windows, runs the
``for``/``keep_firing_for``/flap timers of alerts that get no new samples, and evaluates
rules whose window is longer than memory from the store. Each of those reads the clock
once and passes ``now`` down.

Every change the sinks hear of is written to the alert tables first (off the loop), so a
crash between the two can repeat a notification (routing de-duplicates through its
outbox) but never lose a transition. Changes the sinks do not hear of (pending, timers,
values) are written by a background save that starts as soon as the results at hand are
evaluated: a burst of results is saved in one transaction instead of one per result, and
the pipeline does not wait for it. Saves never overlap and always write everything not
yet written. When the database is down, rows wait in memory and are written with the next
save; alerting goes on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Engine

from agent.alert import AlertSink, AlertState
from agent.rules.state import AlertStateStore, record_row
from agent.errors import AgentError
from agent.rules.config import RuleConfig, RulesEngineConfig
from agent.rules.evaluator import Change, RuleEvaluator
from agent.history.protocol import SeriesReader
from agent.samples import CheckResult

__all__ = ["NOTIFIABLE", "RulesEngine"]

log = logging.getLogger(__name__)

# Changes the sinks hear about; pending and back-to-inactive are recorded, not notified.
NOTIFIABLE = frozenset({AlertState.FIRING, AlertState.RESOLVED, AlertState.FLAPPING})


class RulesEngine:
    """Component ``rules``: evaluates alert rules and keeps alert state durable."""

    name = "rules"

    def __init__(
        self,
        rules: Sequence[RuleConfig],
        settings: RulesEngineConfig | None = None,
        *,
        sinks: Sequence[AlertSink] = (),
        state: AlertStateStore | None = None,
        source: SeriesReader | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.rules = list(rules)
        self.settings = settings or RulesEngineConfig()
        self.sinks = list(sinks)
        self.state = state
        self.source = source
        self.clock = clock
        self.evaluator: RuleEvaluator | None = None
        self._lock = asyncio.Lock()
        self._save_lock = asyncio.Lock()  # one save at a time, each writes all that is unsaved
        self._saver: asyncio.Task[None] | None = None
        self._timer: asyncio.Task[None] | None = None
        self._unsaved_rows: dict[str, dict[str, Any]] = {}
        self._unsaved_transitions: list[dict[str, Any]] = []
        self.store_errors = 0
        self.sink_errors = 0
        self.last_error: str | None = None
        self.evaluations = 0
        self.last_tick: float | None = None

    @classmethod
    def with_store(cls, rules: Sequence[RuleConfig], settings: RulesEngineConfig,
                   sinks: Sequence[AlertSink], *, engine: Engine, agent: str,
                   source: SeriesReader | None = None) -> RulesEngine:
        """The component over its own sections (``rules``, ``rules_engine``), saving its alerts
        in the store on ``engine`` as agent ``agent`` so that a restart resumes them."""
        return cls(rules, settings, sinks=sinks, state=AlertStateStore(engine, agent=agent),
                   source=source)

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        now = self.clock()
        evaluator = RuleEvaluator(self.rules, self.settings, started=now)
        self.evaluator = evaluator
        if self.state is not None:
            try:
                await asyncio.to_thread(self.state.prepare)
                records = await asyncio.to_thread(self.state.load, now, self.settings.flap_window)
                adopted = evaluator.restore(records, now)
                log.info("rules: resumed %d alerts from %s", adopted, self.state.where())
                self._notify(evaluator.resumed(now), now)  # routing may not have heard of them
            except AgentError as exc:
                self._note_store_error(exc)
        await self._prime(now)
        async with self._lock:
            await self._flush(now)
        self._timer = asyncio.get_running_loop().create_task(self._run_timer(), name="rules-timer")

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            try:
                await self._timer
            except asyncio.CancelledError:
                pass
            self._timer = None
        async with self._lock:
            await self._flush(self.clock())
        await self.saved()

    async def saved(self) -> None:
        """Wait until every change evaluated so far is written (or its save failed)."""
        if self._saver is not None:
            await self._saver
        await self._save()

    async def reconfigure(self, rules: Sequence[RuleConfig], settings: RulesEngineConfig) -> None:
        """SIGHUP: swap in the new rules (the ``rules`` and ``rules_engine`` sections), keeping every alert and every window held.

        Alerts of rules that are gone (or whose labels changed) are closed the way a restart
        closes them; the rest carry on exactly where they were.
        """
        async with self._lock:
            now = self.clock()
            old = self.evaluator
            new = RuleEvaluator(rules, settings,
                                started=old.started if old is not None else now)
            if old is not None:
                for (metric, tags), buf in old.buffers.items():
                    if metric in new.by_metric:
                        points = list(zip(buf.times[buf.start:], buf.values[buf.start:]))
                        new.prime(metric, {tags: points})
                new.restore(old.alerts(), now)
            self.rules, self.settings, self.evaluator = list(rules), settings, new
            await self._flush(now)
        log.info("rules: %d rules after reload", len(self.rules))

    def status(self) -> dict[str, Any]:
        evaluator = self.evaluator
        records = evaluator.alerts() if evaluator else []
        firing = [
            {"alert": r.rule, "labels": r.labels, "severity": r.severity, "state": r.state.value,
             "since": r.fired_at, "value": r.value, "summary": r.annotations.get("summary", "")}
            for r in records if r.state in (AlertState.FIRING, AlertState.FLAPPING)
        ]
        return {
            "rules": len(self.rules),
            "series": evaluator.series_count() if evaluator else 0,
            "pending": sum(1 for r in records if r.state is AlertState.PENDING),
            "firing": sorted(firing, key=lambda a: (a["alert"], sorted(a["labels"].items())))[:100],
            "firing_total": len(firing),
            "evaluations": self.evaluations,
            "store_errors": self.store_errors,
            "unsaved": len(self._unsaved_rows),
            "sink_errors": self.sink_errors,
            "last_error": self.last_error,
        }

    # -- the pipeline sink --------------------------------------------------------------
    async def consume(self, result: CheckResult) -> None:
        evaluator = self.evaluator
        if evaluator is None:
            return
        async with self._lock:
            affected = evaluator.ingest(result.samples)
            if not affected:
                return
            now = self.clock()
            evaluator.evaluate(affected, now)
            self.evaluations += len(affected)
            await self._flush(now)

    # -- the timer ----------------------------------------------------------------------
    async def tick(self) -> None:
        """One timer round (the timer task calls it; tests call it directly)."""
        evaluator = self.evaluator
        if evaluator is None:
            return
        now = self.clock()
        from_store = []
        for rule in evaluator.store_rules():
            data = await self._read(rule.metric, now - rule.window, now, rule.selector.equalities())
            if data is not None:
                from_store.append((rule, data))
        async with self._lock:
            evaluator.tick(now)
            for rule, data in from_store:
                evaluator.evaluate_from_store(rule, data, now)
            self.last_tick = now
            await self._flush(now)

    async def _run_timer(self) -> None:
        interval = self.settings.evaluation_interval
        while True:
            await asyncio.sleep(interval)
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the timer must outlive one bad round
                log.exception("rules: timer round failed")

    # -- internals ------------------------------------------------------------------------
    async def _prime(self, now: float) -> None:
        """Refill windows from the store so a restart does not judge on half a window."""
        evaluator = self.evaluator
        if self.source is None or evaluator is None:
            return
        for metric, span in evaluator.prime_spans().items():
            data = await self._read(metric, now - span, now, None)
            if data:
                evaluator.prime(metric, data)

    async def _read(self, metric: str, since: float, until: float,
                    tags: dict[str, str] | None) -> dict | None:
        if self.source is None:
            return None
        try:
            return await asyncio.to_thread(self.source.read_series, metric, since, until, tags or None)
        except Exception as exc:  # noqa: BLE001 - a store outage must not stop alerting
            self._note_store_error(exc, f"reading {metric} from the store")
            return None

    async def _flush(self, now: float) -> None:
        """Queue the evaluator's changes for saving; save before telling the sinks of any."""
        evaluator = self.evaluator
        if evaluator is None:
            return
        changes, dirty = evaluator.drain()
        if self.state is not None:
            agent = self.state.agent
            for rec in dirty:
                self._unsaved_rows[rec.fingerprint] = record_row(rec, agent)
            self._unsaved_transitions.extend(_transition_row(c) for c in changes)
            if any(c.state in NOTIFIABLE for c in changes):
                await self._save()
            elif (self._unsaved_rows or self._unsaved_transitions) and (
                    self._saver is None or self._saver.done()):
                self._saver = asyncio.get_running_loop().create_task(self._save(), name="rules-save")
        self._notify(changes, now)

    async def _save(self) -> None:
        """Write every row not yet written (after the save in progress, if any)."""
        if self.state is None:
            return
        async with self._save_lock:
            if not self._unsaved_rows and not self._unsaved_transitions:
                return
            rows = dict(self._unsaved_rows)
            transitions = list(self._unsaved_transitions)
            try:
                await asyncio.to_thread(self.state.save, list(rows.values()), transitions)
            except Exception as exc:  # noqa: BLE001 - keep alerting; retry with the next save
                self._note_store_error(exc)
                return
            for fingerprint, row in rows.items():  # rows that moved again meanwhile stay
                if self._unsaved_rows.get(fingerprint) is row:
                    del self._unsaved_rows[fingerprint]
            del self._unsaved_transitions[: len(transitions)]

    def _notify(self, changes: list[Change], now: float) -> None:
        events = [c.event() for c in changes if c.state in NOTIFIABLE]
        for change in changes:
            log.debug("alert %s %s: %s -> %s", change.record.rule, change.record.labels,
                      change.previous.value, change.state.value)
        if not events:
            return
        for sink in self.sinks:
            try:
                sink.alerts_changed(events, now)
            except Exception:  # noqa: BLE001 - one sink must not starve the others
                self.sink_errors += 1
                log.exception("alert sink %s failed", getattr(sink, "name", type(sink).__name__))

    def _note_store_error(self, exc: BaseException, doing: str = "saving alert state") -> None:
        self.store_errors += 1
        self.last_error = f"{doing}: {exc}"
        if self.store_errors == 1 or self.store_errors % 100 == 0:
            log.error("rules: %s failed (%d so far); alerting goes on and state is kept in "
                      "memory until the store answers: %s", doing, self.store_errors, exc)


def _transition_row(change: Change) -> dict[str, Any]:
    import json

    rec = change.record
    return {
        "fingerprint": rec.fingerprint,
        "rule": rec.rule,
        "from_state": change.previous.value,
        "to_state": change.state.value,
        "at": change.at,
        "value": rec.value,
        "labels": json.dumps(rec.labels, sort_keys=True, separators=(",", ":")),
    }
