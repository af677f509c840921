"""Where the buttons meet the alert chain: the hooks the dispatcher and the Slack notifier
call, and :func:`build_slack_actions`, which ties them to the ``slack_actions`` component.

The alert chain keeps no knowledge of actions: the dispatcher (agent/alerting/dispatch.py)
asks :meth:`AlertActions.repeat_stopped` before a reminder and tells
:meth:`AlertActions.incident_closed` when an incident resolves; a Slack notifier in bot
mode (agent/notify/slack.py) passes each message's blocks through
:meth:`AlertActions.message_blocks` (which records the message's target and adds the
action area) and says where it posted it (:meth:`AlertActions.posted`). After a press,
:class:`~agent.slackapp.echo.MessageEcho` edits the message for everyone.

Buttons are a courtesy to the alert, never a condition of it: when the action store
cannot be read, the message goes out without them (and the failure is logged).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from agent.alert import Alert
from agent.alerting.silences import SilenceStore
from agent.notify.base import Notification, Notifier
from agent.slackapp import handlers
from agent.slackapp.blocks import with_action_blocks
from agent.slackapp.model import AlertRef, target_id_for
from agent.slackapp.store import ActionStore

if TYPE_CHECKING:
    from agent.alerting.dispatch import Dispatcher
    from agent.notify.config import SlackSettings
    from agent.slackapp.config import SlackActionsConfig
    from agent.history.protocol import SeriesReader
    from agent.slackapp.service import SlackActions

__all__ = ["AlertActions", "alert_ref", "build_slack_actions"]

log = logging.getLogger(__name__)


def alert_ref(alert: Alert) -> AlertRef:
    """What a target keeps of an alert: its labels to silence, its series to chart."""
    return AlertRef(
        alert.fingerprint, alert.rule, dict(alert.labels), alert.chart_metric,
        tuple(dict(s) for s in alert.series), threshold=alert.threshold,
        summary=alert.annotations.get("summary", ""), fired_at=alert.fired_at,
        active_since=alert.active_since)


def effect_refs(note: Notification) -> list[AlertRef]:
    """The alerts a message says under their cause (issue 22, ``Notification.causes``): its
    buttons act on them too, so silencing the message silences what it says."""
    if not note.causes:
        return []
    from agent.notify.linked import explanations

    have = {a.fingerprint for a in note.alerts}
    out = []
    for x, _ in explanations(note):
        for item in x.links:
            effect = item.effect
            if str(effect.key) not in have and effect.until is None:
                have.add(str(effect.key))
                out.append(AlertRef(str(effect.key), effect.rule, dict(effect.labels),
                                    summary=effect.summary, active_since=effect.since))
    return out


class AlertActions:
    """The dispatcher's and the Slack notifiers' side of the buttons (one per agent)."""

    def __init__(self, store: ActionStore, silences: SilenceStore) -> None:
        self.store = store
        self.silences = silences
        self.receivers: list[str] = []  # the Slack receivers whose messages carry buttons
        self.errors = 0

    # -- the dispatcher's side (blocking: called in its flush thread) ------------------------
    def attach(self, notifiers: Mapping[str, Notifier]) -> None:
        """Give the buttons to every Slack receiver in bot mode (a webhook cannot carry them:
        Slack sends the presses of a webhook's message to no app)."""
        self.receivers = []
        for name, notifier in notifiers.items():
            if notifier.type == "slack" and hasattr(notifier, "actions"):
                notifier.actions = self  # type: ignore[attr-defined]
                self.receivers.append(name)

    def repeat_stopped(self, receiver: str, incident: str) -> bool:
        """Someone acknowledged this incident of ``receiver``: its reminders stop."""
        try:
            return self.store.acknowledged(target_id_for(receiver, incident)) is not None
        except Exception:  # noqa: BLE001 - a store hiccup must not stop the reminder
            self.errors += 1
            log.exception("slack actions: could not read whether %s was acknowledged", incident)
            return False

    def incident_closed(self, receiver: str, incident: str, now: float) -> None:
        """The incident resolved: close its target and end its 'until resolved' silences
        (also when the receiver sends no resolved message)."""
        try:
            ended = handlers.on_resolved(target_id_for(receiver, incident), store=self.store,
                                         silences=self.silences, now=now)
        except Exception:  # noqa: BLE001 - the resolution goes out regardless
            self.errors += 1
            log.exception("slack actions: could not close the target of %s", incident)
            return
        if ended:
            log.info("slack actions: %s resolved; ended its silence(s) %s", incident,
                     ", ".join(s[:8] for s in ended))

    # -- the notifier's side (async) -------------------------------------------------------
    async def message_blocks(self, note: Notification, blocks: list[dict[str, Any]],
                             now: float) -> list[dict[str, Any]]:
        """``blocks`` of the incident's message with the action area: who acknowledged or
        silenced it, and its buttons while it fires (none once it resolved)."""
        try:
            state = await asyncio.to_thread(self._state, note, now)
        except Exception:  # noqa: BLE001 - the alert goes out without its buttons
            self.errors += 1
            log.exception("slack actions: the message of %s goes out without buttons",
                          note.incident)
            return blocks
        return with_action_blocks(blocks, state)

    def _state(self, note: Notification, now: float) -> Any:
        target = self.store.register(
            receiver=note.receiver, group_key=note.group_key, incident=note.incident,
            group_labels=note.group_labels,
            alerts=[alert_ref(a) for a in note.alerts] + effect_refs(note), now=now)
        # a resolved incident was closed by the dispatcher before its message was queued
        return handlers.state_of(target, self.store, self.silences, now)

    async def posted(self, note: Notification, channel: str, ts: str, now: float) -> None:
        """The incident's message is ``ts`` in ``channel``: presses and edits go there."""
        try:
            await asyncio.to_thread(self.store.posted, target_id_for(note.receiver, note.incident),
                                    channel=channel, ts=ts, now=now)
        except Exception:  # noqa: BLE001 - the press carries the channel and ts too
            self.errors += 1
            log.exception("slack actions: could not record where %s was posted", note.incident)


def build_slack_actions(section: SlackActionsConfig, slack: SlackSettings | None,
                        dispatcher: Dispatcher, *, reader: SeriesReader | None) -> SlackActions:
    """The ``slack_actions`` component of an agent, wired to its dispatcher: the buttons on
    its Slack messages, the reminders, the silences and the message edits after a press.
    ``slack`` (``alerting.slack``) lends its bot token when the section names none."""
    from agent.slackapp.echo import MessageEcho
    from agent.slackapp.service import SlackActions

    store = ActionStore(dispatcher.engine)
    hooks = AlertActions(store, dispatcher.silences)
    dispatcher.set_actions(hooks)
    echo = MessageEcho(lambda: dispatcher.notifiers, store, dispatcher.silences, reader=reader)
    bot = section.bot_token or (slack.token if slack is not None else None)
    service = SlackActions(section, dispatcher.engine,
                           bot_token=bot.get_secret_value() if bot is not None else None,
                           silences=dispatcher.silences, store=store, on_outcome=echo)
    service.hooks = hooks
    service.echo = echo
    return service
