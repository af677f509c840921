"""Delivery of queued notifications, one receiver at a time, through small stages:

``take`` (:meth:`Delivery._take`, one transaction: claim the receiver's oldest item with a
``sending`` marker, the dedup stage: an attempt that was interrupted is told what it
already did, so the notifier can find its message instead of posting it twice), ``mute``
(a silence added while a notification waited drops its alerts), ``send`` with the
notifier's verdict, read off the error it raises (``retryable``, ``retry_after``,
``reason``: retry with backoff, honouring Retry-After; hand a refused notification to the
fallback; or stop the receiver and hand its queue to the fallback) and ``record`` (mark
sent with the result: the Slack channel id and ts that later messages thread under; written
in the same transaction as the next take). See alertmanager ``notify/notify.go``.

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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from agent.notify.config import DeliveryConfig
from agent.notify.base import (
    Notification,
    Notifier,
    NotifyError,
    ReceiverBroken,
    SendContext,
    backoff,
)
from agent.notify.render import human_duration
from agent.history.outbox import Outbox, OutboxItem
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


@dataclass(frozen=True)
class Taken:
    """An item this agent has claimed, with what the send stage needs to know about it.

    ``note`` is None when the receiver is stopped (the item is forwarded, not sent);
    ``previous`` is what an earlier, interrupted attempt recorded (the dedup stage);
    ``parent`` the recorded result of the incident's first message."""

    item: OutboxItem
    note: Notification | None
    previous: dict[str, Any] | None = None
    parent: dict[str, Any] | None = None


# what the send stage tells the loop: SENT (record the result), FORWARDED (refused: it went
# to the fallback), STOPPED (the receiver stopped: this item and the rest are forwarded),
# RETRY (it waits for a retry, and holds the receiver's later items back)
SENT, FORWARDED, STOPPED, RETRY = "sent", "forwarded", "stopped", "retry"


def ready(item: OutboxItem, now: float, owner: str) -> bool:
    """Whether the head of a receiver's queue may be claimed now: it is due, and no other
    agent holds a live claim on it."""
    # an item created "after" now was scheduled under a clock that has since been stepped
    # back: it is due, not held back for the size of the jump
    if item.due_at > now and item.created_at <= now:
        return False
    held = item.state == "sending" and item.claimed_by != owner
    return not (held and (item.claim_expires or 0.0) >= now)


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
        """Settle up to ``budget`` items of ``name``, in order, one stage after the other.

        The record of one item and the take of the next share one trip to the database."""
        stats = self.stats[name]
        done = 0
        settle: tuple[int, Any] | None = None  # (id, result) to mark sent with the next take
        try:
            while done < budget and not self._paced(notifier, stats, now):
                taken = await self._db(self._take, name, now, settle)
                settle = None
                if taken is None:
                    break
                if taken.note is None:  # the receiver is stopped: to its fallback
                    await self._forward(name, taken.item, stats.broken or "receiver stopped")
                    done += 1
                    continue
                note, muted_by = self._muted(taken.note, now)
                if note is None:
                    stats.muted += 1
                    settle = (taken.item.id, {"muted": muted_by})
                    done += 1
                    continue
                outcome, result = await self._send(name, notifier, taken, note, now)
                if outcome == RETRY:
                    break
                if outcome == STOPPED:
                    continue  # the next take forwards this item
                done += 1
                if outcome == SENT:
                    settle = (taken.item.id, self._record(notifier, stats, result, now))
                    if notifier.pace_key and self.config.pace > 0:
                        break
        finally:
            if settle is not None:
                await self._db(self.outbox.mark_sent, settle[0], now=now, result=settle[1])
        return done

    def _paced(self, notifier: Notifier, stats: ReceiverStats, now: float) -> bool:
        """Whether the receiver's channel must wait (a stopped receiver only forwards)."""
        key = notifier.pace_key
        return stats.broken is None and bool(key) and now < self._next_ok.get(key or "", 0.0)

    # -- claim (one trip: the previous record, the head, its claim and dedup marker) --------
    def _take(self, name: str, now: float, settle: tuple[int, Any] | None) -> Taken | None:
        """Claim the head of ``name``'s queue if it is due and free (blocking)."""
        with self.outbox.batch() as batch:
            if settle is not None:
                batch.mark_sent(settle[0], now=now, result=settle[1])
            item = batch.head(KIND, name)
            if item is None or not ready(item, now, self.outbox.owner):
                return None
            mine = item.claimed_by == self.outbox.owner
            claim = partial(batch.claim, item.id, now=now, again=mine,
                            only_due=item.created_at <= now)
            if self.stats[name].broken is not None:
                return Taken(item, None) if claim() else None
            # -- dedup: the marker tells a later attempt that this one may have sent it
            previous = item.result if isinstance(item.result, dict) else None
            if not claim(result={**(previous or {}), "sending": True}):
                return None  # another agent claimed it first: it is theirs to send
            note = Notification.from_json(item.payload)
            parent = None
            if note.event != "firing" and note.incident and note.incident != item.dedup_key:
                parent = batch.result_of(note.incident)
            return Taken(item, note, previous, parent)

    # -- send, and the verdict on a failure ----------------------------------------------------
    async def _send(
        self, name: str, notifier: Notifier, taken: Taken, note: Notification, now: float
    ) -> tuple[str, Any]:
        """Hand ``note`` to its notifier; on failure act on the error's verdict. Returns
        the outcome (SENT, FORWARDED, STOPPED, RETRY) and, when sent, what to record."""
        item = taken.item

        async def record(result: dict[str, Any]) -> None:
            await self._db(self.outbox.set_result, item.id, {**result, "sending": True})

        ctx = SendContext(
            now=now,
            dedup_key=item.dedup_key or f"outbox-{item.id}",
            late_note=self._late_note(notifier, note, item, now),
            previous=taken.previous,
            parent=taken.parent,
            record=record,
            queued_at=note.created_at,
        )
        try:
            return SENT, await notifier.send(note, ctx)
        except ReceiverBroken as exc:
            self._stop(name, exc, now)
            return STOPPED, None
        except NotifyError as exc:
            self._failed(self.stats[name], exc, now)
            if exc.retryable:
                await self._retry(notifier, item, exc, now)
                return RETRY, None
            await self._refused(name, item, exc)
            return FORWARDED, None
        except Exception as exc:  # noqa: BLE001 - a bug in a notifier: retry, do not lose it
            wrapped = NotifyError(
                f"receiver {name!r}: unexpected {type(exc).__name__}: {exc}", retryable=True
            )
            self._failed(self.stats[name], wrapped, now)
            log.exception("receiver %r failed unexpectedly; retrying later", name)
            delay = backoff(item.attempts, self.config.retry_initial, self.config.retry_max)
            await self._db(
                self.outbox.retry_later, item.id, due_at=now + delay, error=scrub(str(wrapped))
            )
            return RETRY, None

    async def _retry(self, notifier: Notifier, item: OutboxItem, exc: NotifyError,
                     now: float) -> None:
        """Try ``item`` again after a backoff, or after what the peer asked for if longer
        (which also holds the paced channel back that long)."""
        delay = max(
            exc.retry_after or 0.0,
            backoff(item.attempts, self.config.retry_initial, self.config.retry_max),
        )
        if exc.retry_after and notifier.pace_key:
            self._next_ok[notifier.pace_key] = now + exc.retry_after
        message = scrub(str(exc))
        log.warning("%s; retrying in %s (attempt %d)", message, human_duration(delay),
                    item.attempts + 1)
        await self._db(self.outbox.retry_later, item.id, due_at=now + delay, error=message)

    async def _refused(self, name: str, item: OutboxItem, exc: NotifyError) -> None:
        """The receiver refused this notification: it goes to the fallback."""
        fallback = self.fallback_of(name)
        log.error(
            "%s; receiver %r refused notification %s, %s", scrub(str(exc)), name,
            item.dedup_key,
            f"it goes to {fallback!r}" if fallback else "it is kept as a dead outbox row",
        )
        await self._forward(name, item, scrub(str(exc)))

    # -- record ---------------------------------------------------------------------------------
    def _record(self, notifier: Notifier, stats: ReceiverStats, result: Any, now: float) -> Any:
        """Count a sent item and start its channel's pace; returns what to mark it sent with."""
        stats.sent += 1
        stats.last_success = now
        if notifier.pace_key and self.config.pace > 0:
            self._next_ok[notifier.pace_key] = now + self.config.pace
        return result

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
        reason = exc.reason  # the notifier's verdict, set where the peer's answer was read
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
        self.stats[name].dropped += 1
        fallback = self.fallback_of(name)
        if fallback:
            self.stats[name].forwarded += 1
        await self._db(self._forward_rows, item, fallback, why)

    def _forward_rows(self, item: OutboxItem, fallback: str | None, why: str) -> None:
        if fallback is None:
            self.outbox.mark_dead(item.id, error=why)
            return
        payload = dict(item.payload)
        payload["receiver"] = fallback
        if payload.get("incident"):
            payload["incident"] = f"{payload['incident']}>{fallback}"
        key = f"{item.dedup_key or item.id}>{fallback}"
        self.outbox.enqueue(KIND, fallback, payload, now=item.created_at, dedup_key=key)
        self.outbox.mark_dead(item.id, error=f"forwarded to {fallback!r}: {why}")

    def enqueue(self, note: Notification, *, dedup_key: str, now: float) -> int | None:
        """Queue ``note`` (blocking: call off the loop). Returns None when already queued."""
        return self.outbox.enqueue(
            KIND, note.receiver, note.to_json(), now=now, dedup_key=dedup_key
        )

    def enqueue_all(self, notes: Sequence[tuple[Notification, str]], *,
                    now: float) -> list[int | None]:
        """Queue ``(note, dedup_key)`` pairs in one transaction (blocking); per note its id,
        or None when already queued. If it raises, none of them was queued."""
        return self.outbox.enqueue_all(
            [(KIND, note.receiver, note.to_json(), key) for note, key in notes], now=now)

    def pending(self, now: float) -> dict[str, dict[str, Any]]:
        """Per receiver: queued items and the age of the oldest (blocking)."""
        out: dict[str, dict[str, Any]] = {}
        for receiver, (count, oldest) in self.outbox.pending_by_receiver(KIND).items():
            out[receiver] = {
                "pending": count,
                "oldest_age": max(0.0, now - oldest),
            }
        return out
