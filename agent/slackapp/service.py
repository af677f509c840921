"""The ``slack_actions`` component: hears button presses, applies them, answers the presser.

One press flows: Socket Mode envelope or signed HTTP request -> :func:`requests_from_payload`
-> :class:`~agent.slackapp.policy.Gate` (may this person?) -> :func:`handlers.apply` in a
worker thread (the store is blocking) -> acknowledged to Slack -> an ephemeral answer to
the person (``response_url``) and, for an applied action, ``on_outcome``: the seam where the
notifier redraws the message (``chat.update``), posts the thread line and the chart
(agent/slackapp/echo.py; agent/slackapp/wiring.py ties it to the daemon's alerting).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import Engine

from agent.alerting.silences import SilenceStore
from agent.slackapp import handlers
from agent.slackapp.config import SlackActionsConfig
from agent.slackapp.http import HttpReceiver
from agent.slackapp.model import BadPayload, Outcome, requests_from_payload
from agent.slackapp.policy import Gate, Usergroups
from agent.slackapp.respond import Replier
from agent.slackapp.socket import LeaveUnacked, SocketModeClient
from agent.slackapp.store import ActionStore

if TYPE_CHECKING:
    from agent.slackapp.echo import MessageEcho
    from agent.slackapp.wiring import AlertActions

__all__ = ["SlackActions"]

log = logging.getLogger(__name__)
OutcomeHook = Callable[[Outcome], Awaitable[None]]


class SlackActions:
    """Receives and applies alert actions from Slack (Socket Mode or HTTP mode)."""

    name = "slack_actions"

    def __init__(self, config: SlackActionsConfig, engine: Engine, *,
                 bot_token: str | None = None, silences: SilenceStore | None = None,
                 store: ActionStore | None = None, clock: Callable[[], float] = time.time,
                 on_outcome: OutcomeHook | None = None, **socket_options: Any) -> None:
        self.config = config
        self.clock = clock
        self.store = store or ActionStore(engine)
        self.silences = silences or SilenceStore(engine)
        self.on_outcome = on_outcome
        token = bot_token or (config.bot_token.get_secret_value() if config.bot_token else None)
        web = AsyncWebClient(token=token, base_url=config.base_url,
                             timeout=int(max(1, config.timeout))) if token else None
        self.gate = Gate(config.allow, Usergroups(web) if web is not None else None)
        self.replier = Replier(timeout=config.timeout)
        self.receiver: SocketModeClient | HttpReceiver
        if config.mode == "socket":
            assert config.app_token is not None  # the config says so
            self.receiver = SocketModeClient(
                config.app_token.get_secret_value(), self._socket_request,
                base_url=config.base_url, timeout=config.timeout,
                backoff_max=config.reconnect_max, **socket_options)
        else:
            assert config.http is not None
            self.receiver = HttpReceiver(config.http, self.handle_payload, clock=clock)
        self._after: set[asyncio.Task[None]] = set()
        self.counts: dict[str, int] = {}
        # set by agent.slackapp.wiring.build_slack_actions in the daemon
        self.hooks: AlertActions | None = None
        self.echo: MessageEcho | None = None

    async def start(self) -> None:
        await self.receiver.start()

    async def stop(self) -> None:
        await self.receiver.stop()
        if self._after:
            await asyncio.wait(list(self._after), timeout=5)

    def status(self) -> dict[str, Any]:
        doc = {**self.receiver.status(), "outcomes": dict(self.counts),
               "answers_sent": self.replier.sent, "answers_failed": self.replier.failed}
        if self.hooks is not None:
            doc["buttons_on"] = list(self.hooks.receivers)
            doc["store_errors"] = self.hooks.errors
        if self.echo is not None:
            doc.update(self.echo.status())
        return doc

    async def _socket_request(self, request: SocketModeRequest) -> dict[str, Any] | None:
        if request.type != "interactive":
            return None  # events and slash commands: acknowledged, not used (yet)
        return await self.handle_payload(request.payload, "slack-socket")

    async def handle_payload(self, payload: Mapping[str, Any],
                             source: str) -> dict[str, Any] | None:
        """Apply every mlwarden press in ``payload``; returns once the store has them.

        Raises what the store raised, or LeaveUnacked while another agent is applying the
        same press (either way the press is not acknowledged and Slack delivers it again);
        a payload that is not a press of ours is acknowledged and ignored.
        """
        try:
            requests = requests_from_payload(payload, source)
        except BadPayload as exc:
            log.warning("slack actions: ignored an interactive payload: %s", exc)
            return None
        for req in requests:
            permission = await self.gate.check(req.action, req.user_id)
            try:
                outcome = await asyncio.to_thread(
                    handlers.apply, req, permission=permission, store=self.store,
                    silences=self.silences, now=self.clock(),
                    until_resolved_max=self.config.until_resolved_max)
            except Exception:
                log.exception("slack actions: could not apply %s by %s", req.action, req.who)
                raise
            self.counts[outcome.status] = self.counts.get(outcome.status, 0) + 1
            log.info("slack actions: %s %s by %s on %s: %s", req.action, req.arg, req.who,
                     req.target_id, outcome.status)
            task = asyncio.create_task(self._after_apply(outcome))
            self._after.add(task)
            task.add_done_callback(self._after.discard)
            if outcome.status == "busy" and source == "slack-socket":
                # another agent is applying it: should it fail, a later delivery takes over
                raise LeaveUnacked(f"another agent is applying {req.action} by {req.who}")
        return None

    async def _after_apply(self, outcome: Outcome) -> None:
        """What follows an applied press, after Slack has its ack: answer, then the hook."""
        if outcome.status in ("duplicate", "busy"):
            return  # the first delivery answered
        if outcome.reply:
            await self.replier.ephemeral(outcome.request.response_url, outcome.reply)
        if self.on_outcome is not None and outcome.status == "applied":
            try:
                await self.on_outcome(outcome)
            except Exception:  # noqa: BLE001 - the action is applied; its echo is a courtesy
                log.exception("slack actions: the message update after %s failed",
                              outcome.request.action)
