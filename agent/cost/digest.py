"""The weekly cost digest: the report's top lines and its chart, to a Slack receiver.

At each time of ``cost.digest.schedule`` the report over the ``period`` before it is built
from history and queued in the outbox as a notification for the receiver
``cost-digest:<receiver>`` (dedup key: the receiver and the due time, so a restart or a
second agent on a shared store queues it once). It is drained through the alerting
delivery stages and the Slack notifier (retries with backoff, nothing lost while Slack is
down, read-back instead of a duplicate after a crash), with this module's chart function:
the bars travel inside the queued notification, so the picture is the one of the due time.

A digest that fell due while the agent was down is still sent when the agent comes back
within ``catch_up``; an older one is skipped and logged.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from agent.alert import Alert
from agent.alerting.config import AlertingConfig
from agent.cost.chart import chart_bars, render_bars
from agent.cost.config import CostConfig, digest_target
from agent.cost.format import top_lines
from agent.cost.report import build_report, hour_window
from agent.history.config import RetentionConfig
from agent.history.query import HistoryReader
from agent.notify.base import Notification, Notifier
from agent.notify.stages import Delivery
from agent.history.outbox import Outbox
from agent.tasks import cancel_and_wait

__all__ = ["CostDigest", "RULE"]

log = logging.getLogger(__name__)
RULE = "GPU cost digest"


class CostDigest:
    """Component: schedules, queues and delivers the digest."""

    name = "cost-digest"

    def __init__(self, cost: CostConfig, alerting: AlertingConfig, retention: RetentionConfig,
                 engine: Engine, *, clock: Callable[[], float] = time.time, tick: float = 15.0,
                 notifier: Notifier | None = None) -> None:
        """``cost`` (with a ``digest``); ``alerting`` names its receiver and delivery settings;
        ``retention`` is the store's, which the report reads through."""
        assert cost.digest is not None
        self.cost = cost
        self.digest = cost.digest
        self.clock = clock
        self.tick = tick
        target = digest_target(alerting, self.digest.receiver)
        self.receiver = f"cost-digest:{target.receiver}"
        self.reader = HistoryReader(engine, retention, clock)
        self.notifier = notifier or _notifier(self.receiver, target, self.chart)
        self.delivery = Delivery(Outbox(engine), {self.receiver: self.notifier},
                                 config=alerting.delivery)
        from apscheduler.triggers.cron import CronTrigger

        self.zone = ZoneInfo(self.digest.timezone)
        self.trigger = CronTrigger.from_crontab(self.digest.schedule, timezone=self.zone)
        self.next_due: float | None = None
        self.queued: list[float] = []   # due times queued by this agent (bounded)
        self.last_error: str | None = None
        self._task: asyncio.Task[None] | None = None

    # -- component ----------------------------------------------------------------------
    async def start(self) -> None:
        self.next_due = self._after(self.clock() - self.digest.catch_up)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="cost-digest")
        log.info("cost digest to %s on %r (%s); next at %s", self.receiver, self.digest.schedule,
                 self.digest.timezone, self._when(self.next_due))

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        await self.notifier.close()

    def status(self) -> dict[str, Any]:
        stats = self.delivery.stats[self.receiver]
        return {"receiver": self.receiver, "schedule": self.digest.schedule,
                "next_due": self.next_due, "queued": list(self.queued), "sent": stats.sent,
                "failed_attempts": stats.failed_attempts, "last_error": self.last_error or stats.last_error}

    # -- work ---------------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            try:
                await self.step(self.clock())
            except Exception as exc:  # noqa: BLE001 - a bad week must not stop next week's
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("cost digest failed; trying again in %gs", self.tick)
            await asyncio.sleep(self.tick)

    async def step(self, now: float) -> None:
        """Queue every digest that fell due by ``now``, then deliver what is queued."""
        while self.next_due is not None and self.next_due <= now:
            due = self.next_due
            if now - due <= self.digest.catch_up:
                await self._queue(due, now)  # raises: retried next tick, the due time kept
            else:
                log.warning("cost digest due %s skipped: the agent was down until %s (catch_up %gs)",
                            self._when(due), self._when(now), self.digest.catch_up)
            self.next_due = self._after(due + 0.001)  # cron times are whole seconds: strictly after
        await self.delivery.run_once(now)

    async def _queue(self, due: float, now: float) -> None:
        loop = asyncio.get_running_loop()
        since, until = hour_window(due, self.digest.period)
        report = await loop.run_in_executor(None, build_report, self.reader, self.cost, since, until)
        lines = top_lines(report, self.digest.top)
        key = f"{self.receiver}:{int(due)}"
        note = Notification(
            receiver=self.receiver, group_key=key, group_labels={}, event="firing", incident=key,
            alerts=[Alert(fingerprint=key, rule=RULE, labels={}, state="firing", severity="info",
                          annotations={"summary": lines[0],
                                       "description": "\n".join(f"• {x}" for x in lines[1:]),
                                       "chart": json.dumps(chart_bars(report))})],
            created_at=now)
        queued = await loop.run_in_executor(
            None, partial(self.delivery.enqueue, note, dedup_key=key, now=now))
        self.queued = (self.queued + [due])[-10:]
        log.info("cost digest for %s %s", self._when(due), "queued" if queued is not None
                 else "was already queued (by another agent, or before a restart)")

    def chart(self, note: Notification, now: float) -> bytes | None:
        """The Slack notifier's chart function: the bars queued with the digest."""
        raw = note.alerts[0].annotations.get("chart") if note.alerts else None
        return render_bars(json.loads(raw)) if raw else None

    def _after(self, ts: float) -> float | None:
        nxt = self.trigger.get_next_fire_time(None, datetime.fromtimestamp(ts, self.zone))
        return nxt.timestamp() if nxt is not None else None

    def _when(self, ts: float | None) -> str:
        return "never" if ts is None else datetime.fromtimestamp(ts, self.zone).strftime("%Y-%m-%d %H:%M %Z")


def _notifier(name: str, target: Any, chart: Callable[[Notification, float], bytes | None]) -> Notifier:
    if target.kind == "console":
        from agent.notify.console import ConsoleNotifier

        return ConsoleNotifier(name)
    from agent.notify.config import SlackSettings
    from agent.notify.receivers import slack_bot

    api = SlackSettings(base_url=target.base_url, timeout=target.timeout)
    return slack_bot(name, api, token=target.token, channel=target.channel, chart=chart,
                     footer="mlwarden · weekly GPU cost")
