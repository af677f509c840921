"""Dispatcher groups alerts by route and labels, mutes what silences and inhibition say, and
queues one notification per group in the outbox, on Alertmanager's timers.

A new group waits ``group_wait`` before its first notification (so alerts that fire
together arrive together), then changes are sent at most every ``group_interval``, and an
unchanged firing group is repeated every ``repeat_interval``. When every alert of a group
resolves, one resolved notification closes the incident. Group state is kept in the
store (``check_state``, check ``alerting``) so a restart neither repeats nor forgets an
incident; every queued notification has a deterministic dedup key, so re-queueing after a
crash is a no-op.

The rules engine calls :meth:`Dispatcher.alerts_changed` (cheap: it only queues the
events); the component's loop reads the clock once per tick and passes ``now`` down.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Engine, and_, delete, select

from agent.alerting.causes import CauseLinks
from agent.alerting.config import AlertingConfig
from agent.alerting.inhibit import Inhibitor
from agent.alerting.matchers import alert_labels
from agent.alerting.model import AlertEvent, AlertState
from agent.alerting.receivers import build_notifiers, fallbacks_of
from agent.alerting.routing import Route, build_routes, in_quiet_hours, time_muted
from agent.alerting.silences import SilenceStore
from agent.history.sql import upsert
from agent.history.tables import check_state
from agent.history.protocol import SeriesReader
from agent.notify.base import AlertInfo, Notification, Notifier
from agent.notify.stages import Delivery
from agent.outbox import Outbox
from agent.samples import CheckResult, Kind, Sample, Status, make_tags
from agent.tasks import cancel_and_wait

if TYPE_CHECKING:
    from agent.slackapp.wiring import AlertActions

__all__ = ["Dispatcher", "Group", "Router", "make_dispatcher"]

log = logging.getLogger(__name__)
T = TypeVar("T")
STATE_CHECK = "alerting"


def _key(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:40]


@dataclass
class Group:
    """The alerts of one route that share the group_by labels, and what was last sent about them."""

    route_id: str
    key: str
    labels: dict[str, str]
    receiver: str
    alerts: dict[str, dict[str, Any]] = field(
        default_factory=dict
    )  # fingerprint -> AlertInfo as dict
    notified: dict[str, str] = field(default_factory=dict)  # fingerprint -> state last sent
    incident: str | None = None
    seq: int = 0
    next_flush: float = 0.0
    last_notify: float | None = None
    linked: dict[str, str] = field(default_factory=dict)  # fingerprint -> cause|effect (causes.py)

    def to_json(self) -> str:
        return json.dumps(vars(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> "Group":
        return cls(**json.loads(text))


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


def _rebase_after_clock_step(group: Group, route: Route, now: float) -> None:
    """A flush is never planned further ahead than the longest wait; one that is was planned
    under a wall clock that has since been stepped back, and would wait out the jump."""
    latest = now + max(route.group_wait, route.group_interval)
    if group.next_flush > latest:
        group.next_flush = latest
    if group.last_notify is not None and group.last_notify > now:
        group.last_notify = now


def _info(event: AlertEvent) -> AlertInfo:
    a = event.alert
    state = "firing" if a.state in (AlertState.FIRING, AlertState.FLAPPING) else "resolved"
    return AlertInfo(
        fingerprint=a.fingerprint,
        rule=a.rule,
        labels=alert_labels(a.rule, a.labels, a.severity),
        state=state,
        severity=a.severity,
        annotations=dict(a.annotations),
        value=a.value,
        threshold=a.threshold,
        active_since=a.active_since,
        fired_at=a.fired_at,
        resolved_at=(a.resolved_at or event.at) if state == "resolved" else None,
        metric=a.metric,
        series=[dict(s) for s in a.series],
    )


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
        causes: Any = None,
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
            else build_notifiers(config, self.router.root, reader=reader)
        )
        self.delivery = Delivery(
            self.outbox,
            self.notifiers,
            config=config.delivery,
            fallbacks=fallbacks_of(config, self.router.root),
            mute=self._mute_now,
        )
        self.submit = submit
        self.groups: dict[str, Group] = {}
        self._events: list[tuple[AlertEvent, float]] = []
        self._lock = threading.Lock()
        self._loaded = False
        self._task: asyncio.Task[None] | None = None
        self._dirty: set[str] = set()
        self._removed: set[str] = set()
        self.events_seen = 0
        self.notifications_queued = 0
        self.muted = 0
        self.last_tick: float | None = None
        self.last_error: str | None = None
        self._routes_by_id = {r.id: r for r in self.router.root.walk()}
        # standalone use creates the tables; otherwise the store's owner migrates them
        self.ensure_schema = False
        self._reader = reader
        self._tick_lock = asyncio.Lock()
        self.actions: AlertActions | None = None  # Slack buttons: see set_actions

    def set_actions(self, actions: AlertActions) -> None:
        """Slack actions (issue 21): buttons on the Slack receivers' messages, no reminders
        for an acknowledged incident, 'until resolved' silences ended with their incident."""
        self.actions = actions
        actions.attach(self.notifiers)

    # -- AlertSink --------------------------------------------------------------------------
    def alerts_changed(self, events: Sequence[AlertEvent], now: float) -> None:
        """Queue state changes; grouping and sending happen on the component's loop."""
        relevant = [
            e
            for e in events
            if e.alert.state in (AlertState.FIRING, AlertState.FLAPPING)
            or (
                e.alert.state in (AlertState.RESOLVED, AlertState.INACTIVE)
                and e.previous in (AlertState.FIRING, AlertState.FLAPPING)
            )
        ]
        with self._lock:
            self._events.extend((e, now) for e in relevant)
            self.events_seen += len(relevant)

    # -- store ------------------------------------------------------------------------------
    def load(self) -> None:
        """Resume groups from the store (blocking)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(check_state.c.key, check_state.c.value).where(
                    check_state.c.check_name == STATE_CHECK
                )
            ).all()
        for key, value in rows:
            try:
                group = Group.from_json(str(value))
                self.groups[group.key] = group
            except (TypeError, ValueError) as exc:
                log.warning("alerting: ignoring unreadable saved group %s: %s", key, exc)
        self._loaded = True

    def _save(self, now: float) -> None:
        """Write changed groups (one transaction). Rows are keyed by a hash of the group key,
        which holds label values of any length; the key itself is inside the JSON.

        Changed groups are upserted, never deleted and re-inserted: agents sharing the store
        save the same groups at the same moments, and an upsert cannot collide with another
        agent's insert. Rows go in key order, so two savers lock them in the same order."""
        if not self._dirty and not self._removed:
            return
        kept = sorted(k for k in self._dirty if k in self.groups)
        gone = sorted({_key(k) for k in self._removed | self._dirty} - {_key(k) for k in kept})
        rows = sorted(
            (
                {
                    "check_name": STATE_CHECK,
                    "key": _key(k),
                    "value": self.groups[k].to_json(),
                    "updated_at": now,
                }
                for k in kept
            ),
            key=lambda row: str(row["key"]),
        )
        with self.engine.begin() as conn:
            for i in range(0, len(gone), 500):
                conn.execute(
                    delete(check_state).where(
                        and_(
                            check_state.c.check_name == STATE_CHECK,
                            check_state.c.key.in_(gone[i : i + 500]),
                        )
                    )
                )
            if rows:
                conn.execute(
                    upsert(
                        self.engine, check_state, ["check_name", "key"], ["value", "updated_at"]
                    ),
                    rows,
                )
        self._dirty.clear()
        self._removed.clear()

    # -- grouping ---------------------------------------------------------------------------
    def _ingest(self, now: float) -> None:
        with self._lock:
            events, self._events = self._events, []
        for event, seen in events:
            info = _info(event)
            for route in self.router.routes_for(info.labels):
                gkey = f"{route.receiver}|{route.group_key(info.labels)}"
                group = self.groups.get(gkey)
                if group is None:
                    if info.state == "resolved":
                        continue  # a resolution of an alert we never notified about
                    wait = 0.0 if self._immediate(route.receiver) else route.group_wait
                    group = Group(
                        route.id,
                        gkey,
                        route.group_labels(info.labels),
                        route.receiver,
                        next_flush=min(seen, now) + wait,
                    )
                    self.groups[gkey] = group
                group.alerts[info.fingerprint] = dict(vars(info))
                if self._immediate(route.receiver):
                    group.next_flush = min(group.next_flush, now)
                self._dirty.add(gkey)

    def _immediate(self, receiver: str) -> bool:
        notifier = self.notifiers.get(receiver)
        return notifier is not None and notifier.type == "alertmanager"

    def _firing_labels(self) -> list[dict[str, str]]:
        return [
            a["labels"]
            for g in self.groups.values()
            for a in g.alerts.values()
            if a["state"] == "firing"
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
        queued = 0
        for gkey in list(self.groups):
            group = self.groups[gkey]
            route = self._routes_by_id.get(group.route_id) or self.router.root
            _rebase_after_clock_step(group, route, now)
            if now < group.next_flush:
                continue
            queued += self._flush_group(group, route, now, firing)
        self._save(now)
        self.notifications_queued += queued
        return queued

    def _flush_group(
        self, group: Group, route: Route, now: float, firing: list[dict[str, str]]
    ) -> int:
        alerts = [AlertInfo.from_dict(a) for a in group.alerts.values()]
        live = []
        for alert in alerts:
            if alert.state == "firing" and self.router.mute_reason(alert.labels, now, firing):
                if group.notified.get(alert.fingerprint) is None:
                    self.muted += 1  # counted once per alert; "firing" stays so it can resolve
                    group.notified[alert.fingerprint] = "muted"
                continue
            if self.causes.away(group.key, alert.fingerprint):
                group.notified[alert.fingerprint] = "linked"  # said under its cause
                continue
            live.append(alert)
        firing_now = [a for a in live if a.state == "firing"]
        resolved_now = [
            a
            for a in alerts
            if a.state == "resolved" and group.notified.get(a.fingerprint) == "firing"
        ]
        worst = (
            "critical"
            if any(a.severity == "critical" for a in firing_now)
            else (firing_now[0].severity if firing_now else "info")
        )
        if in_quiet_hours(route.quiet_hours, now, worst) or time_muted(route, now):
            return 0  # held, not dropped: tried again on the next tick
        immediate = self._immediate(group.receiver)
        repeat_every = (
            self.config.alertmanager.resend_interval if immediate else route.repeat_interval
        )
        changed = {
            a.fingerprint for a in firing_now if group.notified.get(a.fingerprint) != "firing"
        }
        carried, joined = self.causes.carried(group)
        changed |= joined  # an effect that joins its cause is news for the cause's thread
        event: str | None = None
        if group.incident is None:
            if firing_now:
                event = "firing"
        elif changed or resolved_now:
            event = "update" if firing_now else "resolved"
        elif (
            firing_now and group.last_notify is not None and now - group.last_notify >= repeat_every
        ):
            event = "repeat"
        elif not firing_now and not resolved_now and not any(a.state == "firing" for a in alerts):
            event = None  # nothing left to say
        if self.actions is not None and event in ("repeat", "resolved"):
            assert group.incident is not None
            if event == "resolved":
                if not any(a.state == "firing" for a in alerts):  # none left, muted or not
                    self.actions.incident_closed(group.receiver, group.incident, now)
            elif self.actions.repeat_stopped(group.receiver, group.incident):
                event = None
                group.last_notify = now  # asked again after another repeat_interval
        send_resolved = self._send_resolved(group.receiver)
        queued = 0
        if event is not None and not (event == "resolved" and not send_resolved):
            shown = firing_now + resolved_now
            group.seq += 1
            if event == "firing":
                started = min((a.started or now) for a in firing_now)
                group.incident = _key(group.key, started, "incident")
            assert group.incident is not None
            dedup = group.incident if event == "firing" else _key(group.incident, group.seq, event)
            note = Notification(
                receiver=group.receiver,
                group_key=group.key,
                group_labels=group.labels,
                event=event,
                incident=group.incident,
                alerts=self.causes.annotate(group.key, shown),
                created_at=now,
                seq=group.seq,
                causes=self.causes.docs(carried, joined),
            )
            if self.delivery.enqueue(note, dedup_key=dedup, now=now) is not None:
                queued = 1
            group.last_notify = now
            self.causes.said(group, carried)
        for a in firing_now:
            group.notified[a.fingerprint] = "firing"
        for a in alerts:
            if a.state == "resolved":
                group.alerts.pop(a.fingerprint, None)
                group.notified.pop(a.fingerprint, None)
        group.next_flush = now + (self.config.delivery.tick if immediate else route.group_interval)
        if not group.alerts:
            self.groups.pop(group.key, None)
            self._removed.add(group.key)
            self._dirty.discard(group.key)
        else:
            self._dirty.add(group.key)
        return queued

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
                if a["state"] == "firing")),
        )
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

    async def reconfigure(self, config: AlertingConfig, causes: Any = None) -> None:
        """Reload: build routes and notifiers from ``config`` first, then swap them in between
        ticks. Groups, incidents and queued notifications carry over; so do the delivery
        counts of receivers that still exist. A receiver stopped on a config error starts again.
        """
        router = Router(config, self.silences)
        notifiers = build_notifiers(config, router.root, reader=self._reader)
        if self.actions is not None:
            self.actions.attach(notifiers)
        delivery = Delivery(
            self.outbox,
            notifiers,
            config=config.delivery,
            fallbacks=fallbacks_of(config, router.root),
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
        if self.ensure_schema:
            from agent.history.db import create_schema

            await self._db(create_schema, self.engine)
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
        receivers = {}
        for name, notifier in self.notifiers.items():
            s = self.delivery.stats[name]
            receivers[name] = {
                "type": notifier.type,
                "target": notifier.description,
                "sent": s.sent,
                "failed_attempts": s.failed_attempts,
                "dropped": s.dropped,
                "forwarded": s.forwarded,
                "muted": s.muted,
                "last_success": s.last_success,
                "last_error": s.last_error,
                "last_error_at": s.last_error_at,
                "broken": s.broken,
                "fallback": self.delivery.fallback_of(name),
            }
            setup = notifier.setup()
            if setup is not None:
                receivers[name]["setup"] = setup
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
            "receivers": receivers,
        }

    def broken_receivers(self) -> dict[str, str]:
        """Receivers stopped on a config error, with what to fix."""
        return {n: s.broken for n, s in self.delivery.stats.items() if s.broken}

    def metrics(self, now: float) -> CheckResult:
        """The component's own metrics as a check result for the pipeline (blocking)."""
        pending = self.delivery.pending(now)
        samples = []
        for name, notifier in self.notifiers.items():
            s = self.delivery.stats[name]
            tags = make_tags({"receiver": name, "receiver_type": notifier.type})
            p = pending.get(name, {"pending": 0, "oldest_age": 0.0})
            samples += [
                Sample(
                    "mlwarden.alerting.notifications.sent", s.sent, tags, now, Kind.MONOTONIC_COUNT
                ),
                Sample(
                    "mlwarden.alerting.notifications.dropped",
                    s.dropped,
                    tags,
                    now,
                    Kind.MONOTONIC_COUNT,
                ),
                Sample(
                    "mlwarden.alerting.notifications.pending", p["pending"], tags, now, Kind.GAUGE
                ),
                Sample(
                    "mlwarden.alerting.notifications.oldest_pending_age",
                    p["oldest_age"],
                    tags,
                    now,
                    Kind.GAUGE,
                ),
                Sample(
                    "mlwarden.alerting.receiver.up", 0.0 if s.broken else 1.0, tags, now, Kind.GAUGE
                ),
            ]
            for reason, count in s.failures_by_reason.items():
                samples.append(
                    Sample(
                        "mlwarden.alerting.delivery.failures",
                        count,
                        make_tags(tags, {"reason": reason}),
                        now,
                        Kind.MONOTONIC_COUNT,
                    )
                )
        samples.append(Sample("mlwarden.alerting.groups", len(self.groups), (), now, Kind.GAUGE))
        broken = self.broken_receivers()
        status = Status.CRITICAL if broken else Status.OK
        message = (
            "receivers stopped: " + "; ".join(f"{n}: {why}" for n, why in broken.items())
            if broken
            else f"{len(self.groups)} alert groups"
        )
        return CheckResult(
            check="alerting",
            check_type="agent",
            status=status,
            message=message,
            samples=samples,
            started=now,
            interval=self.config.delivery.tick,
        )


def make_dispatcher(
    config: Any,
    *,
    engine: Engine | None = None,
    reader: SeriesReader | None = None,
    submit: Callable[[CheckResult], None] | None = None,
) -> Dispatcher:
    """The ``alerting`` component for an AgentConfig; without an engine it opens ``agent.history``."""
    ensure_schema = engine is None
    if engine is None:
        from agent.history.db import make_engine

        engine = make_engine(config.agent.history)
    dispatcher = Dispatcher(config.alerting, engine, reader=reader, submit=submit,
                            causes=getattr(config, "causes", None))
    dispatcher.ensure_schema = ensure_schema
    return dispatcher
