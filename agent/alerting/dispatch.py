"""Dispatcher groups alerts by route and labels, mutes what silences and inhibition say, and
queues one notification per group in the outbox, on Alertmanager's timers.

A new group waits ``group_wait`` before its first notification (so alerts that fire
together arrive together), then changes are sent at most every ``group_interval``, and an
unchanged firing group is repeated every ``repeat_interval``. When every alert of a group
resolves, one resolved notification closes the incident. What a due group says is decided
by a pure function (:func:`agent.alerting.grouping.plan_flush`); the dispatcher gathers the
round's verdicts (mutes, causes, acknowledgements) and applies the plan. Group state is kept
in the store (:mod:`agent.alerting.groupstate`) so a restart neither repeats nor forgets an
incident; every queued notification has a deterministic dedup key, so re-queueing after a
crash is a no-op. The component's metrics are :mod:`agent.alerting.metrics`.

The rules engine calls :meth:`Dispatcher.alerts_changed` (cheap: it only queues the
events); the component's loop reads the clock once per tick and passes ``now`` down.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol, TypeVar

from sqlalchemy import Engine

from agent.alert import Alert, AlertEvent, AlertState
from agent.alerting.causes import CauseLinks
from agent.alerting.config import AlertingConfig
from agent.alerting.grouping import FlushFacts, FlushPlan, plan_flush
from agent.alerting.groupstate import Group, GroupStates
from agent.alerting.inhibit import Inhibitor
from agent.alerting.routing import Route, build_routes
from agent.alerting.metrics import broken_receivers, dispatcher_metrics, receivers_status
from agent.alerting.silences import SilenceStore
from agent.causes.config import CausesConfig
from agent.history.protocol import SeriesReader
from agent.notify.base import Notification, Notifier
from agent.notify.stages import Delivery
from agent.notify.receivers import ReceiverSettings, build_notifiers, fallbacks_of
from agent.history.outbox import Outbox
from agent.samples import CheckResult
from agent.tasks import cancel_and_wait

__all__ = ["Dispatcher", "Group", "IncidentActions", "Router", "make_dispatcher"]


class IncidentActions(Protocol):
    """What the dispatcher asks of the Slack buttons (agent.slackapp gives it; blocking, in
    its flush thread): hand them the notifiers, whether someone acknowledged an incident
    (its reminders stop), and that an incident closed."""

    def attach(self, notifiers: Mapping[str, Notifier]) -> None: ...

    def repeat_stopped(self, receiver: str, incident: str) -> bool: ...

    def incident_closed(self, receiver: str, incident: str, now: float) -> None: ...

log = logging.getLogger(__name__)
T = TypeVar("T")


class Router:
    """The pure part: routes, silences and inhibition applied to labels (also `routes test`)."""

    def __init__(self, config: AlertingConfig, silences: SilenceStore | None) -> None:
        self.config = config
        self.root = build_routes(config)
        self.silences = silences
        self.inhibitor = Inhibitor(config.inhibit_rules)
        # suspicious timers are said once at load time: agent.config.config_warnings

    def routes_for(self, labels: Mapping[str, str]) -> list[Route]:
        return self.root.match(labels)

    def mute_reason(
        self, labels: Mapping[str, str], now: float, firing: Sequence[Mapping[str, str]] = ()
    ) -> str | None:
        if self.silences is not None:
            silence = self.silences.muted_by(labels, now)
            if silence is not None:
                return f"silenced by {silence.id} ({silence.comment or 'no comment'})"
        hit = self.inhibitor.muted_by(labels, firing)
        if hit is not None:
            rule, source = hit
            return f"inhibited by {source.get('alertname', '?')} ({rule.describe()})"
        return None


@dataclass(frozen=True)
class _Queued:
    """A due group's plan that sends a notification, until the notification is queued."""

    group: Group
    plan: FlushPlan
    carried: Any
    note: Notification
    dedup: str  # its outbox dedup key


def _rebase_after_clock_step(group: Group, route: Route, now: float) -> None:
    """A flush is never planned further ahead than the longest wait; one that is was planned
    under a wall clock that has since been stepped back, and would wait out the jump."""
    latest = now + max(route.group_wait, route.group_interval)
    if group.next_flush > latest:
        group.next_flush = latest
    if group.last_notify is not None and group.last_notify > now:
        group.last_notify = now


class Dispatcher:
    """The ``alerting`` component: an AlertSink that routes, groups and delivers notifications."""

    name = "alerting"

    def __init__(
        self,
        config: AlertingConfig,
        engine: Engine,
        *,
        reader: SeriesReader | None = None,
        clock: Callable[[], float] = time.time,
        notifiers: Mapping[str, Notifier] | None = None,
        submit: Callable[[CheckResult], None] | None = None,
        causes: CausesConfig | None = None,
    ) -> None:
        self.config = config
        self.engine = engine
        self.causes = CauseLinks(causes)  # the cause graph's `causes:` section
        self.clock = clock
        self.silences = SilenceStore(engine)
        self.router = Router(config, self.silences)
        self.outbox = Outbox(engine)
        self.notifiers = (
            dict(notifiers)
            if notifiers is not None
            else build_notifiers(ReceiverSettings.of(config), self.router.root.receivers(),
                                 reader=reader)
        )
        self.delivery = Delivery(
            self.outbox,
            self.notifiers,
            config=config.delivery,
            fallbacks=fallbacks_of(ReceiverSettings.of(config), self.router.root.receivers()),
            mute=self._mute_now,
        )
        self.submit = submit
        self.states = GroupStates(engine)
        self._events: list[tuple[Alert, float]] = []  # the alerts as made, when heard
        self._lock = threading.Lock()
        self._loaded = False
        self._task: asyncio.Task[None] | None = None
        self.events_seen = 0
        self.notifications_queued = 0
        self.muted = 0
        self.last_tick: float | None = None
        self.last_error: str | None = None
        self._routes_by_id = {r.id: r for r in self.router.root.walk()}
        self._reader = reader
        self._tick_lock = asyncio.Lock()
        self.actions: IncidentActions | None = None  # Slack buttons: see set_actions

    def set_actions(self, actions: IncidentActions) -> None:
        """Slack actions (issue 21): buttons on the Slack receivers' messages, no reminders
        for an acknowledged incident, 'until resolved' silences ended with their incident."""
        self.actions = actions
        actions.attach(self.notifiers)

    # -- AlertSink --------------------------------------------------------------------------
    def alerts_changed(self, events: Sequence[AlertEvent], now: float) -> None:
        """Queue state changes; grouping and sending happen on the component's loop."""
        relevant = [
            e.alert
            for e in events
            if e.state in (AlertState.FIRING, AlertState.FLAPPING)
            or (
                e.state in (AlertState.RESOLVED, AlertState.INACTIVE)
                and e.previous in (AlertState.FIRING, AlertState.FLAPPING)
            )
        ]
        with self._lock:
            self._events.extend((a, now) for a in relevant)
            self.events_seen += len(relevant)

    # -- store ------------------------------------------------------------------------------
    @property
    def groups(self) -> dict[str, Group]:
        """The live groups by key (read-only use; changes go through ``self.states``)."""
        return self.states.groups

    def load(self) -> None:
        """Resume groups from the store (blocking)."""
        self.states.load()
        self._loaded = True

    def _save(self, now: float) -> None:
        """Write changed groups (one transaction, blocking)."""
        self.states.save(now)

    # -- grouping ---------------------------------------------------------------------------
    def _ingest(self, now: float) -> None:
        with self._lock:
            events, self._events = self._events, []
        for alert, seen in events:
            for route in self.router.routes_for(alert.labels):
                gkey = f"{route.receiver}|{route.group_key(alert.labels)}"
                group = self.groups.get(gkey)
                if group is None:
                    if alert.state == "resolved":
                        continue  # a resolution of an alert we never notified about
                    wait = 0.0 if self._immediate(route.receiver) else route.group_wait
                    group = Group(
                        route.id,
                        gkey,
                        route.group_labels(alert.labels),
                        route.receiver,
                        next_flush=min(seen, now) + wait,
                    )
                    self.states.add(group)
                group.alerts[alert.fingerprint] = alert
                if self._immediate(route.receiver):
                    group.next_flush = min(group.next_flush, now)
                self.states.changed(gkey)

    def _immediate(self, receiver: str) -> bool:
        notifier = self.notifiers.get(receiver)
        return notifier is not None and notifier.type == "alertmanager"

    def _firing_labels(self) -> list[dict[str, str]]:
        """What fires now, for inhibition (the only reader): none read without inhibit rules,
        as the delivery's mute stage asks once a message."""
        if not self.router.inhibitor.rules:
            return []
        return [
            a.labels
            for g in self.groups.values()
            for a in g.alerts.values()
            if a.state == "firing"
        ]

    def _mute_now(self, labels: Mapping[str, str], now: float) -> str | None:
        return self.router.mute_reason(labels, now, self._firing_labels())

    def flush(self, now: float) -> int:
        """Queue the notifications that are due (blocking: silences and the outbox)."""
        if not self._loaded:
            self.load()
        self.silences.refresh(now)
        self._ingest(now)
        self._place_causes(now)
        firing = self._firing_labels()
        due: list[_Queued] = []
        for group in self.states:
            route = self._routes_by_id.get(group.route_id) or self.router.root
            _rebase_after_clock_step(group, route, now)
            if now < group.next_flush:
                continue
            queued = self._flush_group(group, route, now, firing)
            if queued is not None:
                due.append(queued)
        queued_count = self._enqueue(due, now)
        self._save(now)
        self.notifications_queued += queued_count
        return queued_count

    def _flush_group(
        self, group: Group, route: Route, now: float, firing: list[dict[str, str]]
    ) -> _Queued | None:
        """Plan what the due group says (:func:`plan_flush`) and apply the plan; a plan that
        sends a notification is returned to be queued first (:meth:`_enqueue`)."""
        alerts = list(group.alerts.values())
        carried, joined = self.causes.carried(group)
        plan = plan_flush(self._facts(group, route, alerts, now, firing, joined), route, now)
        if (plan.event == "repeat" and self.actions is not None
                and self.actions.repeat_stopped(group.receiver, str(group.incident))):
            plan = plan.acknowledged()
        if plan.held:
            group.notified = dict(plan.notified)
            self.muted += plan.newly_muted
            return None
        if plan.close_incident and self.actions is not None:
            self.actions.incident_closed(group.receiver, str(group.incident), now)
        if plan.send:
            note = self._notification(group, plan, now, carried, joined)
            assert plan.dedup is not None
            return _Queued(group, plan, carried, note, plan.dedup)
        self._apply(group, plan, now)
        return None

    def _facts(self, group: Group, route: Route, alerts: list[Alert], now: float,
               firing: list[dict[str, str]], joined: set[str]) -> FlushFacts:
        """The group and this round's verdicts on it, as :func:`plan_flush` takes them."""
        immediate = self._immediate(group.receiver)
        return FlushFacts(
            key=group.key,
            alerts=alerts,
            notified=group.notified,
            incident=group.incident,
            seq=group.seq,
            last_notify=group.last_notify,
            muted={a.fingerprint for a in alerts if a.state == "firing"
                   and self.router.mute_reason(a.labels, now, firing)},
            away={a.fingerprint for a in alerts if self.causes.away(group.key, a.fingerprint)},
            joined=joined,
            repeat_every=(self.config.alertmanager.resend_interval if immediate
                          else route.repeat_interval),
            next_every=self.config.delivery.tick if immediate else route.group_interval,
            send_resolved=self._send_resolved(group.receiver),
        )

    def _notification(self, group: Group, plan: FlushPlan, now: float, carried: Any,
                      joined: set[str]) -> Notification:
        """The plan's notification."""
        assert plan.event is not None and plan.incident is not None and plan.dedup is not None
        return Notification(
            receiver=group.receiver,
            group_key=group.key,
            group_labels=group.labels,
            event=plan.event,
            incident=plan.incident,
            alerts=self.causes.annotate(group.key, list(plan.shown)),
            created_at=now,
            seq=plan.seq,
            causes=self.causes.docs(carried, joined),
        )

    def _enqueue(self, due: list[_Queued], now: float) -> int:
        """Queue the round's notifications in the outbox (a no-op for a dedup key queued
        before), then apply each group's plan; returns how many were queued.

        One transaction for the round. If it fails, nothing of it was kept and no plan was
        applied; then each goes in its own transaction, in order, its plan applied once it
        is written, as if the round had been written one notification at a time: the first
        that fails raises, the ones before it stay queued (and their groups say so), the
        ones after it are planned again on the next tick."""
        if not due:
            return 0
        try:
            ids = self.delivery.enqueue_all([(q.note, q.dedup) for q in due], now=now)
        except Exception as exc:  # noqa: BLE001 - retried one at a time just below
            log.debug("alerting: queueing %d notifications in one transaction failed (%s); "
                      "queueing them one at a time", len(due), exc)
            queued = 0
            for q in due:
                queued += self.delivery.enqueue(q.note, dedup_key=q.dedup, now=now) is not None
                self._queued(q, now)
            return queued
        for q in due:
            self._queued(q, now)
        return sum(i is not None for i in ids)

    def _queued(self, q: _Queued, now: float) -> None:
        """A group whose notification is in the outbox: its state after the flush."""
        self.causes.said(q.group, q.carried)
        self._apply(q.group, q.plan, now)

    def _apply(self, group: Group, plan: FlushPlan, now: float) -> None:
        """The group's state after a flush that was not held."""
        group.notified = dict(plan.notified)
        self.muted += plan.newly_muted
        group.incident, group.seq = plan.incident, plan.seq
        if plan.stamp_notify:
            group.last_notify = now
        for fp in plan.dropped:
            group.alerts.pop(fp, None)
        assert plan.next_flush is not None
        group.next_flush = plan.next_flush
        if plan.empty:
            self.states.remove(group.key)
        else:
            self.states.changed(group.key)

    def _send_resolved(self, receiver: str) -> bool:
        for r in self.config.receivers:
            if r.name == receiver and r.send_resolved is not None:
                return r.send_resolved
        return self.config.send_resolved

    def _place_causes(self, now: float) -> None:
        """The cause graph's decision for this round: which effects go under their cause,
        which groups wait for a cause or are due (agent.alerting.causes)."""
        if not self.causes.enabled:
            return
        firing: list[list[dict[str, str]]] = []  # read once, only when a round decides anew

        def muted(labels: Mapping[str, str]) -> bool:
            if not firing:
                firing.append(self._firing_labels())
            return self.router.mute_reason(labels, now, firing[0]) is not None

        self.causes.decide(
            self.groups.values(), now,
            muted=muted,
            moves=lambda receiver: not self._immediate(receiver),
            group_wait=lambda g: self._routes_by_id.get(g.route_id, self.router.root).group_wait,
            # what else can change a mute verdict: silences, and for inhibition what fires
            epoch=(self.silences.active_ids(now), self.config.inhibit_rules and tuple(
                fp for g in self.groups.values() for fp, a in g.alerts.items()
                if a.state == "firing")),
        )
        if self.causes.decision.wait_until or self.causes.decision.due:
            for group in self.groups.values():
                self.causes.plan(group, now)
        if not self.causes.changed:
            return
        try:
            self.causes.record(self.engine, now, {g.key: g.receiver for g in self.groups.values()})
        except Exception as exc:  # noqa: BLE001 - the history of links must not stop alerts
            self.causes.decide_again()  # so the next round writes them
            log.warning("alerting: could not record alert links: %s", exc)

    # -- the loop -----------------------------------------------------------------------------
    async def _db(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(None, partial(fn, *args))

    async def tick(self, now: float) -> None:
        """One round: group and queue (off the loop), then deliver what is due."""
        async with self._tick_lock:
            await self._db(self.flush, now)
            await self.delivery.run_once(now)
            self.last_tick = now

    async def reconfigure(self, config: AlertingConfig,
                          causes: CausesConfig | None = None) -> None:
        """Reload: build routes and notifiers from ``config`` first, then swap them in between
        ticks. Groups, incidents and queued notifications carry over; so do the delivery
        counts of receivers that still exist. A receiver stopped on a config error starts again.
        """
        router = Router(config, self.silences)
        notifiers = build_notifiers(ReceiverSettings.of(config), router.root.receivers(),
                                    reader=self._reader)
        if self.actions is not None:
            self.actions.attach(notifiers)
        delivery = Delivery(
            self.outbox,
            notifiers,
            config=config.delivery,
            fallbacks=fallbacks_of(ReceiverSettings.of(config), router.root.receivers()),
            mute=self._mute_now,
        )
        for name, stats in self.delivery.stats.items():
            if name in delivery.stats:
                stats.broken = None
                delivery.stats[name] = stats
        async with self._tick_lock:
            old = self.notifiers
            self.config, self.router, self.notifiers, self.delivery = (
                config,
                router,
                notifiers,
                delivery,
            )
            self._routes_by_id = {r.id: r for r in router.root.walk()}
            if causes is not None:
                self.causes = CauseLinks(causes)
        for notifier in old.values():
            await notifier.close()

    async def _run(self) -> None:
        last_prune = 0.0
        while True:
            now = self.clock()
            try:
                await self.tick(now)
                if now - last_prune > 3600:
                    await self._db(
                        partial(self.outbox.prune, sent_before=now - self.config.delivery.keep_sent)
                    )
                    last_prune = now
                if self.submit is not None:
                    self.submit(await self._db(self.metrics, now))
                self.last_error = None
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the daemon keeps running; the next tick retries
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("alerting tick failed; retrying")
            await asyncio.sleep(self.config.delivery.tick)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="alerting")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        try:
            await self._db(self._save, self.clock())
        except Exception:  # noqa: BLE001
            log.exception("alerting: could not save group state on stop")
        for notifier in self.notifiers.values():
            await notifier.close()

    # -- introspection ------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        broken = self.broken_receivers()
        return {
            # CRITICAL while a receiver cannot post at all: its notifications reach only the
            # fallback, and `problems` says what to fix
            "status": "critical" if broken else "ok",
            "problems": [f"receiver {n!r}: {why}" for n, why in broken.items()],
            "groups": len(self.groups),
            "events_seen": self.events_seen,
            "notifications_queued": self.notifications_queued,
            "alerts_muted": self.muted,
            "last_tick": self.last_tick,
            "last_error": self.last_error,
            "receivers": receivers_status(self.notifiers, self.delivery),
        }

    def broken_receivers(self) -> dict[str, str]:
        """Receivers stopped on a config error, with what to fix."""
        return broken_receivers(self.delivery)

    def metrics(self, now: float) -> CheckResult:
        """The component's own metrics as a check result for the pipeline (blocking)."""
        return dispatcher_metrics(self.notifiers, self.delivery, len(self.groups), now,
                                  self.config.delivery.tick)


def make_dispatcher(
    config: AlertingConfig,
    *,
    engine: Engine,
    causes: CausesConfig | None = None,
    reader: SeriesReader | None = None,
    submit: Callable[[CheckResult], None] | None = None,
) -> Dispatcher:
    """The ``alerting`` component from its section (and the ``causes:`` one) over the store's
    engine, which the store has migrated (the daemon starts the store first)."""
    return Dispatcher(config, engine, reader=reader, submit=submit, causes=causes)
