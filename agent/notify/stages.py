"""Delivery of queued notifications, one receiver at a time, through four stages:

``mute`` (a silence added while a notification waited drops its alerts), ``dedup`` (an
attempt that was interrupted is told what it already did, so the notifier can find its
message instead of posting it twice), ``retry`` (the notifier's verdict: retry with
backoff, honouring Retry-After; hand a refused notification to the fallback; or stop the
receiver and hand its queue to the fallback) and ``record`` (mark sent with the result:
the Slack channel id and ts that later messages thread under). See alertmanager
``notify/notify.go``.

Nothing is dropped silently: a notification its receiver refuses, or that waits behind a
receiver stopped on a config error, goes to the receiver's ``fallback`` (the ``console``
receiver when none is configured), and a stopped receiver turns the alerting component
CRITICAL until its config is fixed and reloaded.

Each receiver drains in outbox id order: an item that waits for a retry holds back the
ones behind it, so messages arrive in the order they were queued, and each paced channel
gets at most one message per ``pace`` seconds, so a storm is slowed, never dropped.

Agents that share one store drain the same queue: an item is claimed (compare-and-set,
:meth:`Outbox.claim`) before anything is done with it, so only one agent sends it; an
item another agent is sending holds back the receiver's later items here too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from agent.alerting.config import DeliveryConfig
from agent.notify.base import (
    Notification,
    Notifier,
    NotifyError,
    ReceiverBroken,
    SendContext,
    backoff,
)
from agent.notify.render import human_duration
from agent.outbox import Outbox, OutboxItem
from agent.secrets import scrub

__all__ = ["Delivery", "ReceiverStats", "KIND", "DEFAULT_FALLBACK"]

log = logging.getLogger(__name__)
KIND = "notification"
# where a receiver's refused notifications go when its config names no fallback
DEFAULT_FALLBACK = "console"
# how long to wait before checking a receiver's setup again after the check itself failed
PREFLIGHT_RETRY = 60.0
T = TypeVar("T")
# (labels, now) -> why it is muted now (a silence id), or None
MuteFn = Callable[[Mapping[str, str], float], str | None]


@dataclass
class ReceiverStats:
    sent: int = 0
    failed_attempts: int = 0
    dropped: int = 0
    forwarded: int = 0
    muted: int = 0
    last_success: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None
    last_failure_kind: str | None = None
    broken: str | None = None
    failures_by_reason: dict[str, int] = field(default_factory=dict)


def _reason(exc: NotifyError) -> str:
    if isinstance(exc, ReceiverBroken):
        return "config"
    text = str(exc)
    if "rate limited" in text:
        return "rate_limited"
    if "timed out" in text:
        return "timeout"
    if "HTTP 5" in text or "Slack error" in text:
        return "server_error"
    return "network" if exc.retryable else "rejected"


class Delivery:
    """Drains the ``notification`` items of the outbox to their notifiers."""

    def __init__(
        self,
        outbox: Outbox,
        notifiers: Mapping[str, Notifier],
        *,
        config: DeliveryConfig,
        fallbacks: Mapping[str, str | None] | None = None,
        mute: MuteFn | None = None,
    ) -> None:
        self.outbox = outbox
        self.notifiers = dict(notifiers)
        self.config = config
        self.fallbacks = dict(fallbacks or {})
        self.mute = mute
        self.stats = {name: ReceiverStats() for name in self.notifiers}
        self._next_ok: dict[str, float] = {}
        self._checked: set[str] = set()  # receivers whose preflight has answered
        self._check_at: dict[str, float] = {}

    async def _db(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(None, partial(fn, *args, **kwargs))

    def _head(self, receiver: str) -> OutboxItem | None:
        """The oldest unsettled item of ``receiver``: it must go first."""
        return self.outbox.head(KIND, receiver)

    def _result_of(self, dedup_key: str) -> dict[str, Any] | None:
        return self.outbox.result_of(dedup_key)  # type: ignore[no-any-return]

    # -- the loop body ------------------------------------------------------------------------
    async def run_once(self, now: float, *, budget: int = 20) -> int:
        """Deliver what is due for every receiver; returns how many items were settled."""
        done = 0
        for name, notifier in self.notifiers.items():
            try:
                await self._preflight(name, notifier, now)
                done += await self._drain(name, notifier, now, budget)
            except Exception:  # noqa: BLE001 - a store hiccup must not stop the other receivers
                log.exception("delivery to receiver %r failed; retrying on the next tick", name)
        return done

    async def _preflight(self, name: str, notifier: Notifier, now: float) -> None:
        """Once per receiver (at start, after a reload): its own check of what it can do,
        so a missing scope or a bad token is reported before the first alert needs it."""
        if name in self._checked or now < self._check_at.get(name, 0.0):
            return
        try:
            await notifier.preflight()
        except ReceiverBroken as exc:
            self._checked.add(name)
            self._stop(name, exc, now)
        except NotifyError as exc:
            self._check_at[name] = now + PREFLIGHT_RETRY
            log.warning("%s; checking receiver %r's setup again in %s", scrub(str(exc)), name,
                        human_duration(PREFLIGHT_RETRY))
        except Exception:  # noqa: BLE001 - a bug in a check must not stop delivery
            self._check_at[name] = now + PREFLIGHT_RETRY
            log.exception("receiver %r: checking its setup failed", name)
        else:
            self._checked.add(name)

    def _stop(self, name: str, exc: ReceiverBroken, now: float) -> None:
        """The receiver cannot post until a person fixes it: say what to fix, once."""
        stats = self.stats[name]
        message = scrub(str(exc))
        stats.broken = message
        self._failed(stats, exc, now)
        fallback = self.fallback_of(name)
        log.error(
            "%s. Receiver %r stops until this is fixed (then reload with SIGHUP or restart); %s",
            message,
            name,
            f"its notifications go to {fallback!r}"
            if fallback
            else "no fallback receiver exists: its notifications are kept as dead outbox rows",
        )

    async def _drain(self, name: str, notifier: Notifier, now: float, budget: int) -> int:
        stats = self.stats[name]
        done = 0
        while done < budget:
            item = await self._db(self._head, name)
            # an item created "after" now was scheduled under a clock that has since been
            # stepped back: it is due, not held back for the size of the jump
            stepped_back = item is not None and item.created_at > now
            if item is None or (item.due_at > now and not stepped_back):
                return done
            mine = item.claimed_by == self.outbox.owner
            if item.state == "sending" and not mine and (item.claim_expires or 0.0) >= now:
                return done  # another agent is sending it
            pace_key = notifier.pace_key
            if stats.broken is None and pace_key and now < self._next_ok.get(pace_key, 0.0):
                return done
            if not await self._db(partial(self.outbox.claim, item.id, now=now, again=mine,
                                          only_due=not stepped_back)):
                return done  # another agent claimed it first: it is theirs to send
            if stats.broken is not None:
                await self._forward(name, item, stats.broken)
                done += 1
                continue
            note = Notification.from_json(item.payload)
            # -- mute
            note, muted_by = self._muted(note, now)
            if note is None:
                stats.muted += 1
                await self._db(self.outbox.mark_sent, item.id, now=now, result={"muted": muted_by})
                done += 1
                continue
            # -- dedup: tell the notifier what an interrupted attempt already did
            previous = item.result if isinstance(item.result, dict) else None
            marker = {**(previous or {}), "sending": True}
            await self._db(self.outbox.set_result, item.id, marker)

            async def record(result: dict[str, Any], _id: int = item.id) -> None:
                await self._db(self.outbox.set_result, _id, {**result, "sending": True})

            parent = None
            if note.event != "firing" and note.incident and note.incident != item.dedup_key:
                parent = await self._db(self._result_of, note.incident)
            ctx = SendContext(
                now=now,
                dedup_key=item.dedup_key or f"outbox-{item.id}",
                late_note=self._late_note(notifier, note, item, now),
                previous=previous,
                parent=parent,
                record=record,
                queued_at=note.created_at,
            )
            # -- retry verdict
            try:
                result = await notifier.send(note, ctx)
            except ReceiverBroken as exc:
                self._stop(name, exc, now)
                continue  # the loop forwards this item and the rest
            except NotifyError as exc:
                self._failed(stats, exc, now)
                if exc.retryable:
                    delay = max(
                        exc.retry_after or 0.0,
                        backoff(item.attempts, self.config.retry_initial, self.config.retry_max),
                    )
                    if exc.retry_after and pace_key:
                        self._next_ok[pace_key] = now + exc.retry_after
                    log.warning(
                        "%s; retrying in %s (attempt %d)",
                        scrub(str(exc)),
                        human_duration(delay),
                        item.attempts + 1,
                    )
                    await self._db(
                        self.outbox.retry_later, item.id, due_at=now + delay, error=scrub(str(exc))
                    )
                    return done
                fallback = self.fallback_of(name)
                log.error(
                    "%s; receiver %r refused notification %s, %s", scrub(str(exc)), name,
                    item.dedup_key,
                    f"it goes to {fallback!r}" if fallback else "it is kept as a dead outbox row",
                )
                await self._forward(name, item, scrub(str(exc)))
                done += 1
                continue
            except Exception as exc:  # noqa: BLE001 - a bug in a notifier: retry, do not lose it
                wrapped = NotifyError(
                    f"receiver {name!r}: unexpected {type(exc).__name__}: {exc}", retryable=True
                )
                self._failed(stats, wrapped, now)
                log.exception("receiver %r failed unexpectedly; retrying later", name)
                delay = backoff(item.attempts, self.config.retry_initial, self.config.retry_max)
                await self._db(
                    self.outbox.retry_later, item.id, due_at=now + delay, error=scrub(str(wrapped))
                )
                return done
            # -- record
            await self._db(self.outbox.mark_sent, item.id, now=now, result=result)
            stats.sent += 1
            stats.last_success = now
            done += 1
            if pace_key and self.config.pace > 0:
                self._next_ok[pace_key] = now + self.config.pace
                return done
        return done

    def _muted(self, note: Notification, now: float) -> tuple[Notification | None, str | None]:
        if self.mute is None:
            return note, None
        keep, why = [], None
        for alert in note.alerts:
            # a resolution is never muted: the thread of a message already sent must not stay "firing"
            reason = self.mute(alert.labels, now) if alert.state == "firing" else None
            if reason is None:
                keep.append(alert)
            else:
                why = reason
        if not keep:
            return None, why
        if len(keep) != len(note.alerts):
            note.alerts = keep
        return note, None

    def _late_note(
        self, notifier: Notifier, note: Notification, item: OutboxItem, now: float
    ) -> str | None:
        late = now - note.created_at
        if late < self.config.late_after:
            return None
        kind = self.stats[notifier.name].last_failure_kind
        peer = {"slack": "Slack", "webhook": "Slack", "alertmanager": "Alertmanager"}.get(
            notifier.type, notifier.name
        )
        if item.attempts == 0:
            why = "the agent was not running" if kind is None else f"{peer} was unreachable"
        elif kind == "rate_limited":
            why = f"{peer} was rate-limiting"
        else:
            why = f"{peer} was unreachable"
        return f"delayed {human_duration(late)}: {why}"

    def _failed(self, stats: ReceiverStats, exc: NotifyError, now: float) -> None:
        reason = _reason(exc)
        stats.failed_attempts += 1
        stats.last_error = scrub(str(exc))
        stats.last_error_at = now
        stats.last_failure_kind = reason
        stats.failures_by_reason[reason] = stats.failures_by_reason.get(reason, 0) + 1

    def fallback_of(self, name: str) -> str | None:
        """The receiver that gets what ``name`` cannot deliver (console unless configured)."""
        notifier = self.notifiers.get(name)
        if notifier is None or notifier.type == "console":
            return None
        fallback = self.fallbacks.get(name) or DEFAULT_FALLBACK
        return fallback if fallback != name and fallback in self.notifiers else None

    async def _forward(self, name: str, item: OutboxItem, why: str) -> None:
        """Give up on ``item`` for ``name``: queue it for the fallback (keeping its order and
        dedup key, so a restart does not queue it twice) and keep the row as dead."""
        fallback = self.fallback_of(name)
        stats = self.stats[name]
        stats.dropped += 1
        if fallback:
            payload = dict(item.payload)
            payload["receiver"] = fallback
            if payload.get("incident"):
                payload["incident"] = f"{payload['incident']}>{fallback}"
            key = f"{item.dedup_key or item.id}>{fallback}"
            await self._db(
                self.outbox.enqueue, KIND, fallback, payload, now=item.created_at, dedup_key=key
            )
            stats.forwarded += 1
            await self._db(
                self.outbox.mark_dead, item.id, error=f"forwarded to {fallback!r}: {why}"
            )
        else:
            await self._db(self.outbox.mark_dead, item.id, error=why)

    def enqueue(self, note: Notification, *, dedup_key: str, now: float) -> int | None:
        """Queue ``note`` (blocking: call off the loop). Returns None when already queued."""
        return self.outbox.enqueue(
            KIND, note.receiver, note.to_json(), now=now, dedup_key=dedup_key
        )

    def pending(self, now: float) -> dict[str, dict[str, Any]]:
        """Per receiver: queued items and the age of the oldest (blocking)."""
        out: dict[str, dict[str, Any]] = {}
        for receiver, (count, oldest) in self.outbox.pending_by_receiver(KIND).items():
            out[receiver] = {
                "pending": count,
                "oldest_age": max(0.0, now - oldest),
            }
        return out
