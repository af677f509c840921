"""Slack in bot-token mode: one Block Kit message per incident, its chart and updates in the thread.

The first notification of an incident is posted with ``chat.postMessage``; its chart goes
into the thread with ``files_upload_v2`` (which needs the channel *ID* that postMessage
returned). Updates and repeats are thread replies, and the parent is rewritten with
``chat.update``; when the incident resolves the parent shows it resolved and a reply says
so. Each post carries ``metadata`` naming its outbox dedup key, so an attempt interrupted
between Slack accepting a message and the outbox recording it re-reads the channel (or
thread) and finds the message instead of posting it twice.

The read-back only *helps avoid a duplicate*; it can never *cause a loss*. When it cannot be
done (a scope the token lacks, a method Slack does not know, a rate limit, a 5xx, a
timeout, a channel name that cannot be resolved to an ID) the message is posted anyway:
at least once, never zero, and its metadata still lets a later read-back collapse a
duplicate. A notification is given up only when *posting* is impossible (``invalid_auth``,
``channel_not_found``, ``not_in_channel``, ``account_inactive``, ...): the receiver then
stops with a message that says what to fix, and its notifications go to its fallback.
Content Slack refuses (blocks it cannot render) is sent again as plain text, an update of
the parent that Slack refuses leaves the delivered reply delivered, and a reply whose
thread is gone becomes a message of its own.

At start and on reload :meth:`SlackNotifier.preflight` asks ``auth.test`` for the token's
scopes (``X-OAuth-Scopes``) and says which scope is missing and which feature is off because
of it (:mod:`agent.notify.slack_scopes`); features known to be off are not tried.

slack-sdk retries nothing but one connection error by default; retries are the outbox's
job, so every failure is translated here into a verdict (:func:`slack_errors`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError, SlackRequestError
from slack_sdk.web.async_client import AsyncWebClient

from agent.notify.base import (
    MessageActions,
    Notification,
    Notifier,
    NotifyError,
    ReceiverBroken,
    SendContext,
)
from agent.notify.render import blocks_for, fallback_text, thread_reply
from agent.notify.slack_scopes import ScopeReport, scopes_from_headers
from agent.secrets import scrub

__all__ = ["SlackNotifier", "SlackRefused", "slack_errors", "BROKEN_ERRORS", "EVENT_TYPE"]

log = logging.getLogger(__name__)

EVENT_TYPE = "mlwarden_notification"
# Slack's answers that no retry can help with, each with what a person must do about it
BROKEN_ERRORS = {
    "invalid_auth": "the bot token is invalid: set the receiver's token (alerting.slack.token) "
    "to the app's Bot User OAuth Token (xoxb-...)",
    "not_authed": "no bot token was sent: set alerting.slack.token (e.g. ${SLACK_BOT_TOKEN})",
    "account_inactive": "the token belongs to a deactivated user or app: reinstall the Slack "
    "app and use its new bot token",
    "token_revoked": "the bot token was revoked: reinstall the Slack app and use its new token",
    "token_expired": "the bot token expired: rotate it and set the new one",
    "channel_not_found": "the channel does not exist or the bot cannot see it: check the "
    "channel's name (or give its ID, e.g. C0123ABCD) and invite the bot to it",
    "not_in_channel": "the bot is not a member of the channel: invite it (/invite @your-bot "
    "in the channel) or give the app the chat:write.public scope",
    "is_archived": "the channel is archived: unarchive it or route to another channel",
    "missing_scope": "the bot token lacks a scope it needs to post",
}
# refusals of a message's content (not of the receiver): it is sent again as plain text
_CONTENT_ERRORS = frozenset({
    "invalid_blocks", "invalid_blocks_format", "msg_too_long", "too_many_attachments",
    "invalid_attachments", "invalid_metadata_format", "invalid_metadata_schema",
    "metadata_too_large", "metadata_must_be_sent_from_app", "invalid_arguments",
})
_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{6,}$")
# Charts: (note, now) -> PNG bytes or None; rendered off the event loop by the caller's executor.
ChartFn = Callable[[Notification, float], bytes | None]


class SlackRefused(NotifyError):
    """Slack answered ``ok: false`` with ``error`` (a code such as ``invalid_blocks``)."""

    def __init__(self, message: str, *, error: str) -> None:
        super().__init__(message, retryable=False)
        self.error = error


def _missing_scope(resp: Any) -> str:
    needed = provided = ""
    with contextlib.suppress(Exception):
        needed = str(resp.get("needed") or "")
        provided = str(resp.get("provided") or "")
    what = f"the bot token lacks {needed or 'a scope'}"
    if provided:
        what += f" (it has {provided})"
    return f"{what}: add it under OAuth & Permissions > Bot Token Scopes and reinstall the app"


@contextlib.contextmanager
def slack_errors(receiver: str, method: str) -> Iterator[None]:
    """Translate slack-sdk and aiohttp failures into a NotifyError verdict, ``from exc``.

    ``ReceiverBroken`` for the answers in :data:`BROKEN_ERRORS` (its message says what to
    fix); a retryable ``NotifyError`` for 429 (with ``retry_after``), 5xx, Slack's own
    internal errors, timeouts and network errors; :class:`SlackRefused` for the rest.
    """
    where = f"slack receiver {receiver!r}: {method}"
    try:
        yield
    except SlackApiError as exc:
        resp = exc.response
        status = getattr(resp, "status_code", None)
        error = ""
        with contextlib.suppress(Exception):
            error = str(resp.get("error") or "")
        if status == 429 or error == "ratelimited":
            after = None
            with contextlib.suppress(Exception):
                after = float(resp.headers.get("Retry-After") or resp.headers.get("retry-after"))
            raise NotifyError(
                f"{where}: rate limited by Slack (Retry-After {after}s)",
                retryable=True,
                retry_after=after,
                reason="rate_limited",
                status=status,
            ) from exc
        if status is not None and status >= 500:
            raise NotifyError(f"{where}: Slack answered HTTP {status}", retryable=True,
                              reason="server_error", status=status) from exc
        if error == "missing_scope":
            raise ReceiverBroken(f"{where}: missing_scope: {_missing_scope(resp)}") from exc
        if error in BROKEN_ERRORS:
            raise ReceiverBroken(f"{where}: {error}: {BROKEN_ERRORS[error]}") from exc
        if error in ("internal_error", "fatal_error", "service_unavailable", "request_timeout"):
            raise NotifyError(f"{where}: Slack error {error}", retryable=True,
                              reason="server_error", status=status) from exc
        raise SlackRefused(
            f"{where}: Slack refused the request: {error or status}", error=error or str(status)
        ) from exc
    except (asyncio.TimeoutError, TimeoutError) as exc:
        raise NotifyError(f"{where}: timed out", retryable=True, reason="timeout") from exc
    except (aiohttp.ClientError, OSError, SlackRequestError) as exc:
        raise NotifyError(
            f"{where}: {type(exc).__name__}: {scrub(str(exc))[:300]}", retryable=True,
            reason="network",
        ) from exc
    except SlackClientError as exc:
        raise NotifyError(f"{where}: {scrub(str(exc))[:300]}", retryable=False) from exc


class SlackNotifier(Notifier):
    """Posts to one channel with a bot token."""

    type = "slack"

    def __init__(
        self,
        name: str,
        *,
        token: str,
        channel: str,
        base_url: str = "https://slack.com/api/",
        timeout: float = 10.0,
        chart: ChartFn | None = None,
        footer: str = "mlwarden",
    ) -> None:
        self.name = name
        self.channel = channel
        self.pace_key = f"slack:{channel}"
        self.description = f"Slack channel {channel}"
        self._token = token
        self._base_url = base_url if base_url.endswith("/") else base_url + "/"
        self._timeout = timeout
        self._chart = chart
        self._footer = footer
        self._client: AsyncWebClient | None = None
        self._session: aiohttp.ClientSession | None = None
        self._channel_id: str | None = channel if _CHANNEL_ID.match(channel) else None
        self.chart_errors = 0
        self.readback_failures = 0
        self.scopes: ScopeReport | None = None  # None until Slack named the token's scopes
        # Slack actions' buttons (agent.slackapp.wiring.AlertActions), when configured
        self.actions: MessageActions | None = None

    def client(self) -> AsyncWebClient:
        """This receiver's Web API client (its token), for edits after a button press."""
        return self._api()

    def _api(self) -> AsyncWebClient:
        if self._client is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout)
            )
            self._client = AsyncWebClient(
                token=self._token,
                base_url=self._base_url,
                timeout=int(max(1, self._timeout)),
                session=self._session,
            )
        return self._client

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        self._client = None
        self._session = None

    # -- scopes ---------------------------------------------------------------------------
    async def preflight(self) -> None:
        """Ask Slack which scopes the token has; log each missing one with the features it
        turns off. Without the scopes to post at all the receiver is broken from the start."""
        with slack_errors(self.name, "auth.test"):
            resp = await self._api().auth_test()
        scopes = scopes_from_headers(getattr(resp, "headers", None))
        if scopes is None:
            log.info("slack receiver %r: Slack did not name the token's scopes "
                     "(no X-OAuth-Scopes); features are tried as they are used", self.name)
            return
        report = ScopeReport(scopes, by_name=self._channel_id is None)
        self.scopes = report
        where = f"slack receiver {self.name!r}"
        if not report.can_post:
            raise ReceiverBroken(f"{where}: missing_scope: {report.problems()[0]}")
        for problem in report.problems():
            log.warning("%s: %s", where, problem)
        for note in report.partial():
            log.info("%s: %s", where, note)
        if not report.off():
            log.info("%s: the token's scopes allow every feature (%s)", where,
                     ",".join(sorted(scopes)))

    def setup(self) -> dict[str, Any] | None:
        if self.scopes is None:
            return None
        return {
            "scopes": sorted(self.scopes.scopes),
            "features_off": {f.name: f"needs {' or '.join(f.scopes)}"
                             for f in self.scopes.off()},
        }

    def _allows(self, feature: str) -> bool:
        return self.scopes is None or self.scopes.allows(feature)

    # -- sending ------------------------------------------------------------------------
    async def send(self, note: Notification, ctx: SendContext) -> dict[str, Any]:
        state: dict[str, Any] = dict(ctx.previous or {})
        state.pop("sending", None)
        parent = ctx.parent if ctx.parent and ctx.parent.get("ts") else None

        async def record(**kv: Any) -> None:
            state.update(kv)
            if ctx.record is not None:
                await ctx.record(dict(state))

        blocks = blocks_for(note, ctx.now, late_note=ctx.late_note, footer=self._footer)
        if self.actions is not None:  # the buttons and who acknowledged or silenced it
            blocks = await self.actions.message_blocks(note, blocks, ctx.now)
        text = fallback_text(note, ctx.now, ctx.late_note)
        if parent is None or note.event == "firing":
            await self._send_message(note, ctx, state, record, text=text, blocks=blocks)
            return state
        # an update, repeat or resolution of a posted incident: reply in the thread, rewrite the parent
        channel, parent_ts = str(parent["channel"]), str(parent["ts"])
        if "reply_ts" not in state:
            found = (
                await self._read_back(ctx, thread_ts=parent_ts, channel=channel)
                if ctx.previous
                else None
            )
            if found is None:
                reply = thread_reply(note, ctx.now, ctx.late_note)
                try:
                    found = await self._post(
                        text=reply, blocks=None, dedup=ctx.dedup_key, thread_ts=parent_ts,
                        channel=channel,
                    )
                except SlackRefused as exc:
                    if exc.error != "thread_not_found":
                        raise
                    # the incident's message was deleted: the news goes out on its own
                    log.warning("%s; posting it as a message of its own", exc)
                    found = await self._post(text=text, blocks=blocks, dedup=ctx.dedup_key,
                                             channel=channel)
            await record(channel=channel, reply_ts=found[1], thread_ts=parent_ts)
        await self._update_parent(channel, parent_ts, text, blocks)
        return state

    async def _send_message(
        self, note: Notification, ctx: SendContext, state: dict[str, Any],
        record: Callable[..., Awaitable[None]], *, text: str, blocks: list[dict[str, Any]],
    ) -> None:
        """A message of its own (a new incident, or one whose first message is unknown),
        then its chart; ``state`` says which of these steps an earlier attempt did."""
        if "ts" not in state:
            found = await self._read_back(ctx, thread_ts=None) if ctx.previous else None
            if found is None:
                found = await self._post(text=text, blocks=blocks, dedup=ctx.dedup_key)
            if self.actions is not None or self._charts_follow(note, state):
                await record(channel=found[0], ts=found[1])  # before the next step
            else:  # nothing else goes to Slack: the final result is this record
                state.update(channel=found[0], ts=found[1])
            if self.actions is not None:
                await self.actions.posted(note, found[0], found[1], ctx.now)
        if note.event == "firing" and not state.get("chart_done"):
            if await self._upload_chart(note, ctx.now, state["channel"], state["ts"]):
                await record(chart_done=True)  # a retry must not upload it twice
            else:
                state["chart_done"] = True  # nothing went to Slack: nothing to record yet

    async def _update_parent(
        self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]]
    ) -> None:
        """Rewrite the incident's message. The reply carrying the news is already delivered,
        so a refusal is logged, not held against the notification; an outage is retried."""
        try:
            with slack_errors(self.name, "chat.update"):
                await self._api().chat_update(channel=channel, ts=ts, text=text, blocks=blocks)
        except NotifyError as exc:
            if exc.retryable:
                raise
            log.warning("%s; the thread reply was delivered, the incident's message keeps its "
                        "earlier text", scrub(str(exc)))

    async def _post(
        self,
        *,
        text: str,
        blocks: list[dict[str, Any]] | None,
        dedup: str,
        thread_ts: str | None = None,
        channel: str | None = None,
    ) -> tuple[str, str]:
        metadata: dict[str, Any] | None = {
            "event_type": EVENT_TYPE, "event_payload": {"dedup": dedup}
        }
        try:
            with slack_errors(self.name, "chat.postMessage"):
                resp = await self._api().chat_postMessage(
                    channel=channel or self._channel_id or self.channel, text=text,
                    blocks=blocks, thread_ts=thread_ts, unfurl_links=False, unfurl_media=False,
                    metadata=metadata,
                )
        except SlackRefused as exc:
            if exc.error not in _CONTENT_ERRORS:
                raise
            # Slack refused the content, not the receiver: the words still go out
            log.warning("%s; sending it again as plain text", scrub(str(exc)))
            if "metadata" in exc.error:
                metadata = None
            with slack_errors(self.name, "chat.postMessage"):
                resp = await self._api().chat_postMessage(
                    channel=channel or self._channel_id or self.channel, text=text,
                    thread_ts=thread_ts, unfurl_links=False, unfurl_media=False,
                    metadata=metadata,
                )
        channel_id = str(resp["channel"])
        self._channel_id = self._channel_id or channel_id
        return channel_id, str(resp["ts"])

    def _charts_follow(self, note: Notification, state: Mapping[str, Any]) -> bool:
        """Whether a chart upload follows the message (so its ts must be recorded first)."""
        return (note.event == "firing" and not state.get("chart_done")
                and self._chart is not None and self._allows("charts"))

    async def _upload_chart(self, note: Notification, now: float, channel_id: str, ts: str) -> bool:
        """A chart is a courtesy: failing to draw or upload it never holds back the alert.
        Returns whether an upload was tried (so a retry must not try it again)."""
        if self._chart is None or not self._allows("charts"):
            return False
        try:
            png = await asyncio.get_running_loop().run_in_executor(None, self._chart, note, now)
        except Exception as exc:  # noqa: BLE001 - a broken chart must not block the message
            self.chart_errors += 1
            log.warning("slack receiver %r: chart rendering failed: %s", self.name, scrub(str(exc)))
            return False
        if not png:
            return False
        alert = note.firing[0] if note.firing else note.alerts[0]
        try:
            with slack_errors(self.name, "files_upload_v2"):
                await self._api().files_upload_v2(
                    channel=channel_id,
                    thread_ts=ts,
                    file=png,
                    filename=f"{alert.rule}.png",
                    title=f"{alert.rule}: recent history",
                )
        except ReceiverBroken as exc:
            self.chart_errors += 1
            log.warning("%s (charts need the files:write scope)", exc)
        except NotifyError as exc:
            self.chart_errors += 1
            log.warning("%s; the alert was sent without its chart", exc)
        return True

    # -- idempotency ----------------------------------------------------------------------
    async def _read_back(
        self, ctx: SendContext, *, thread_ts: str | None, channel: str | None = None
    ) -> tuple[str, str] | None:
        """What an interrupted attempt already posted, or None: also when the read-back
        itself cannot be done, because then posting (maybe twice) beats posting never."""
        channel = channel or (ctx.previous or {}).get("channel")
        if not self._allows("read-back"):
            self.readback_failures += 1
            log.info("slack receiver %r: the token cannot read the channel back, so %s is "
                     "posted (at least once: Slack may show it twice)", self.name, ctx.dedup_key)
            return None
        try:
            return await self._find_posted(ctx, thread_ts=thread_ts, channel=channel)
        except (NotifyError, KeyError, TypeError, ValueError) as exc:
            self.readback_failures += 1
            log.warning(
                "%s; cannot tell whether an interrupted attempt already posted %s, so it is "
                "posted (at least once: Slack may show it twice)", scrub(str(exc)), ctx.dedup_key,
            )
            return None

    async def _resolve_channel_id(self) -> str:
        if self._channel_id:
            return self._channel_id
        name = self.channel.lstrip("#")
        types = "public_channel,private_channel"
        if self.scopes is not None:  # ask only for what the token may list
            types = ",".join(t for t, scope in (("public_channel", "channels:read"),
                                               ("private_channel", "groups:read"))
                             if scope in self.scopes.scopes)
            if not types:
                raise NotifyError(
                    f"slack receiver {self.name!r}: the token lacks channels:read and "
                    f"groups:read, so {self.channel!r} cannot be turned into a channel ID "
                    "before the first post (give the channel's ID instead of its name)",
                    retryable=False,
                )
        cursor = None
        for _ in range(50):  # bounded paging
            with slack_errors(self.name, "conversations.list"):
                resp = await self._api().conversations_list(
                    types=types,
                    exclude_archived=True,
                    limit=200,
                    cursor=cursor,
                )
            for ch in resp.get("channels", []):
                if ch.get("name") == name:
                    self._channel_id = str(ch["id"])
                    return self._channel_id
            cursor = (resp.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                break
        # not a verdict on the receiver: only the read-back needs the ID (posting takes a name)
        raise NotifyError(
            f"slack receiver {self.name!r}: conversations.list: no channel named "
            f"{self.channel!r} is visible to the token",
            retryable=False,
        )

    async def _find_posted(
        self, ctx: SendContext, *, thread_ts: str | None, channel: str | None = None
    ) -> tuple[str, str] | None:
        """After an interrupted attempt: the message Slack already has for this dedup key, if any."""
        channel_id = channel or await self._resolve_channel_id()
        with slack_errors(
            self.name, "conversations.replies" if thread_ts else "conversations.history"
        ):
            if thread_ts:
                resp = await self._api().conversations_replies(
                    channel=channel_id, ts=thread_ts, include_all_metadata=True, limit=200
                )
            else:
                # messages since the notification was queued (Slack ts are epoch seconds)
                resp = await self._api().conversations_history(
                    channel=channel_id,
                    include_all_metadata=True,
                    limit=200,
                    oldest=f"{ctx.queued_at - 300:.6f}",
                )
        for msg in resp.get("messages", []):
            meta: Mapping[str, Any] = msg.get("metadata") or {}
            if (
                meta.get("event_type") == EVENT_TYPE
                and (meta.get("event_payload") or {}).get("dedup") == ctx.dedup_key
            ):
                log.info(
                    "slack receiver %r: %s was already posted (ts %s); not posting it again",
                    self.name,
                    ctx.dedup_key,
                    msg.get("ts"),
                )
                return channel_id, str(msg["ts"])
        return None
