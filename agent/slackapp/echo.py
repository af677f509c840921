"""After a press: the alert message edited for everyone, the line in its thread, the chart.

:class:`MessageEcho` is the ``on_outcome`` of :class:`~agent.slackapp.service.SlackActions`:
it runs on the agent that applied the press (once, whichever agent Slack delivered it to),
after Slack has its ack. It speaks through the Slack receiver that posted the message (its
bot token, its client), so it needs no token of its own:

- ``chat.update``: the message as the press's payload showed it, its action area redrawn
  from the store (:func:`~agent.slackapp.blocks.with_action_blocks`): "Acknowledged by
  @ana at 10:42", the silence and its end, the buttons that still make sense;
- ``chat.postMessage`` in the thread: what was done (the silence's expiry among it);
- Chart 24h: the alert's chart (agent/notify/alert_chart.py) over the window, uploaded
  into the thread with ``files_upload_v2``.

A Slack outage is retried a few times (bounded); what still fails is logged: the action
itself is applied and recorded already.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from agent.alert import Alert
from agent.alerting.silences import SilenceStore
from agent.errors import NotifyError
from agent.notify.base import Notification, Notifier
from agent.secrets import scrub
from agent.slackapp import handlers
from agent.slackapp.blocks import with_action_blocks
from agent.slackapp.model import ChartRequest, Outcome, Target
from agent.slackapp.store import ActionStore

if TYPE_CHECKING:
    from agent.history.protocol import SeriesReader

__all__ = ["MessageEcho", "chart_note"]

log = logging.getLogger(__name__)
ATTEMPTS = 3  # per Slack call, on retryable failures (5xx, 429, timeouts)


def chart_note(target: Target, now: float) -> Notification:
    """The target's alerts as a notification, for :func:`agent.notify.alert_chart.chart_png`."""
    alerts = [Alert(a.fingerprint, a.rule, dict(a.labels), "firing",
                    severity=a.labels.get("severity", "warning"),
                    annotations={"summary": a.summary} if a.summary else {},
                    threshold=a.threshold, active_since=a.active_since,
                    fired_at=a.fired_at, metric=a.metric,
                    series=[dict(s) for s in a.series]) for a in target.alerts]
    return Notification(target.receiver, target.group_key, dict(target.group_labels), "firing",
                        target.incident, alerts, now)


class MessageEcho:
    """Shows an applied press in Slack (see the module's docstring)."""

    def __init__(self, notifiers: Callable[[], Mapping[str, Notifier]], store: ActionStore,
                 silences: SilenceStore, *, reader: SeriesReader | None,
                 retry_wait: float = 1.0, clock: Callable[[], float] = time.time) -> None:
        self.notifiers = notifiers
        self.store = store
        self.silences = silences
        self.reader = reader
        self.retry_wait = retry_wait
        self.clock = clock
        self.updates = 0
        self.thread_posts = 0
        self.charts = 0
        self.failed = 0

    def status(self) -> dict[str, int]:
        return {"message_updates": self.updates, "thread_posts": self.thread_posts,
                "charts": self.charts, "echo_failures": self.failed}

    async def __call__(self, outcome: Outcome) -> None:
        target, req = outcome.target, outcome.request
        if target is None:
            return
        notifier = self.notifiers().get(target.receiver)
        client = getattr(notifier, "client", None)
        if notifier is None or client is None:
            log.warning("slack actions: no Slack receiver %r on this agent to edit the message "
                        "of %s with", target.receiver, target.describe())
            return
        # the message pressed is the one to edit (the notifier's record says where it is
        # when a payload does not)
        channel = req.channel_id or target.channel
        ts = req.message_ts or target.ts
        if not channel or not ts:
            log.warning("slack actions: where the message of %s is, is unknown; it is not "
                        "edited", target.describe())
            return
        api = client()
        now = self.clock()
        if outcome.changed:
            message = req.message or {}
            blocks = message.get("blocks")
            if isinstance(blocks, list) and blocks:
                state = await asyncio.to_thread(self._state, target.id, now)
                text = str(message.get("text") or target.describe())
                if await self._call(notifier.name, "chat.update", lambda: api.chat_update(
                        channel=channel, ts=ts, text=text,
                        blocks=with_action_blocks(blocks, state))):
                    self.updates += 1
        if outcome.thread:
            thread = outcome.thread
            if await self._call(notifier.name, "chat.postMessage", lambda: api.chat_postMessage(
                    channel=channel, thread_ts=ts, text=thread, unfurl_links=False,
                    unfurl_media=False)):
                self.thread_posts += 1
        if outcome.chart is not None:
            await self._chart(notifier.name, api, outcome.chart, channel, ts, now)

    def _state(self, target_id: str, now: float) -> Any:
        target = self.store.target(target_id)
        assert target is not None  # a press on it was just applied
        return handlers.state_of(target, self.store, self.silences, now)

    async def _chart(self, receiver: str, api: Any, chart: ChartRequest, channel: str, ts: str,
                     now: float) -> None:
        from agent.charts import charts_available
        from agent.notify.alert_chart import chart_png
        from agent.notify.render import human_duration

        window = human_duration(chart.window)
        what = chart.target.describe()
        png = None
        if self.reader is None or not charts_available():
            text = (f"The chart of {what} cannot be drawn on this agent: the charts extra "
                    "(matplotlib) is not installed.")
        else:
            try:
                png = await asyncio.to_thread(chart_png, self.reader, chart_note(chart.target, now),
                                              now, chart.window)
            except Exception as exc:  # noqa: BLE001 - said in the thread instead
                log.warning("slack actions: the chart of %s failed: %s", what, scrub(str(exc)))
            text = f"No data for {what} over the last {window}; nothing to chart."
        if png is None:
            await self._call(receiver, "chat.postMessage", lambda: api.chat_postMessage(
                channel=channel, thread_ts=ts, text=text))
            return
        rule = chart.target.rules[0] if chart.target.rules else "alert"
        if await self._call(receiver, "files_upload_v2", lambda: api.files_upload_v2(
                channel=channel, thread_ts=ts, file=png, filename=f"{rule}-{window}.png",
                title=f"{what}: last {window}")):
            self.charts += 1

    async def _call(self, receiver: str, method: str,
                    call: Callable[[], Awaitable[Any]]) -> bool:
        from agent.notify.slack import slack_errors

        for attempt in range(1, ATTEMPTS + 1):
            try:
                with slack_errors(receiver, method):
                    await call()
                return True
            except NotifyError as exc:
                if not exc.retryable or attempt == ATTEMPTS:
                    self.failed += 1
                    log.warning("slack actions: %s (the action is applied and recorded)",
                                scrub(str(exc)))
                    return False
                await asyncio.sleep(max(exc.retry_after or 0.0, self.retry_wait * attempt))
        return False
