"""Slack in bot-token mode: one Block Kit message per incident, its chart and updates in the thread.

The first notification of an incident is posted with ``chat.postMessage``; its chart goes
into the thread with ``files_upload_v2`` (which needs the channel *ID* that postMessage
returned). Updates and repeats are thread replies, and the parent is rewritten with
``chat.update``; when the incident resolves the parent shows it resolved and a reply says
so. Each post carries ``metadata`` naming its outbox dedup key, so an attempt interrupted
between Slack accepting a message and the outbox recording it re-reads the channel (or
thread) and finds the message instead of posting it twice.

slack-sdk retries nothing but one connection error by default; retries are the outbox's
job, so every failure is translated here into a verdict (:func:`slack_errors`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError, SlackRequestError
from slack_sdk.web.async_client import AsyncWebClient

from agent.notify.base import Notification, Notifier, NotifyError, ReceiverBroken, SendContext
from agent.notify.render import blocks_for, fallback_text, thread_reply
from agent.secrets import scrub

__all__ = ["SlackNotifier", "slack_errors", "BROKEN_ERRORS", "EVENT_TYPE"]

log = logging.getLogger(__name__)

EVENT_TYPE = "mlwarden_notification"
BROKEN_ERRORS = {
    "invalid_auth": "the bot token is invalid",
    "not_authed": "no bot token was sent",
    "account_inactive": "the bot token belongs to a deactivated account",
    "token_revoked": "the bot token was revoked",
    "token_expired": "the bot token expired",
    "channel_not_found": "the channel does not exist or the bot cannot see it",
    "not_in_channel": "the bot is not a member of the channel (invite it with /invite)",
    "is_archived": "the channel is archived",
    "missing_scope": "the bot token lacks a scope (chat:write, files:write, channels:history)",
}
_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{6,}$")
# Charts: (note, now) -> PNG bytes or None; rendered off the event loop by the caller's executor.
ChartFn = Callable[[Notification, float], bytes | None]


@contextlib.contextmanager
def slack_errors(receiver: str, method: str) -> Iterator[None]:
    """Translate slack-sdk and aiohttp failures into a NotifyError verdict, ``from exc``."""
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
            ) from exc
        if status is not None and status >= 500:
            raise NotifyError(f"{where}: Slack answered HTTP {status}", retryable=True) from exc
        if error in BROKEN_ERRORS:
            raise ReceiverBroken(f"{where}: {error}: {BROKEN_ERRORS[error]}") from exc
        if error in ("internal_error", "fatal_error", "service_unavailable", "request_timeout"):
            raise NotifyError(f"{where}: Slack error {error}", retryable=True) from exc
        raise NotifyError(
            f"{where}: Slack refused the request: {error or status}", retryable=False
        ) from exc
    except (asyncio.TimeoutError, TimeoutError) as exc:
        raise NotifyError(f"{where}: timed out", retryable=True) from exc
    except (aiohttp.ClientError, OSError, SlackRequestError) as exc:
        raise NotifyError(
            f"{where}: {type(exc).__name__}: {scrub(str(exc))[:300]}", retryable=True
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
        text = fallback_text(note, ctx.now, ctx.late_note)
        if parent is None or note.event == "firing":
            if "ts" not in state:
                found = await self._find_posted(ctx, thread_ts=None) if ctx.previous else None
                if found is None:
                    found = await self._post(text=text, blocks=blocks, dedup=ctx.dedup_key)
                await record(channel=found[0], ts=found[1])
            if note.event == "firing" and not state.get("chart_done"):
                await self._upload_chart(note, ctx.now, state["channel"], state["ts"])
                await record(chart_done=True)
            return state
        # an update, repeat or resolution of a posted incident: reply in the thread, rewrite the parent
        channel, parent_ts = str(parent["channel"]), str(parent["ts"])
        if "reply_ts" not in state:
            found = (
                await self._find_posted(ctx, thread_ts=parent_ts, channel=channel)
                if ctx.previous
                else None
            )
            if found is None:
                found = await self._post(
                    text=thread_reply(note, ctx.now, ctx.late_note),
                    blocks=None,
                    dedup=ctx.dedup_key,
                    thread_ts=parent_ts,
                    channel=channel,
                )
            await record(channel=channel, reply_ts=found[1], thread_ts=parent_ts)
        with slack_errors(self.name, "chat.update"):
            await self._api().chat_update(channel=channel, ts=parent_ts, text=text, blocks=blocks)
        return state

    async def _post(
        self,
        *,
        text: str,
        blocks: list[dict[str, Any]] | None,
        dedup: str,
        thread_ts: str | None = None,
        channel: str | None = None,
    ) -> tuple[str, str]:
        with slack_errors(self.name, "chat.postMessage"):
            resp = await self._api().chat_postMessage(
                channel=channel or self._channel_id or self.channel,
                text=text,
                blocks=blocks,
                thread_ts=thread_ts,
                unfurl_links=False,
                unfurl_media=False,
                metadata={"event_type": EVENT_TYPE, "event_payload": {"dedup": dedup}},
            )
        channel_id = str(resp["channel"])
        self._channel_id = self._channel_id or channel_id
        return channel_id, str(resp["ts"])

    async def _upload_chart(self, note: Notification, now: float, channel_id: str, ts: str) -> None:
        """A chart is a courtesy: failing to draw or upload it never holds back the alert."""
        if self._chart is None:
            return
        try:
            png = await asyncio.get_running_loop().run_in_executor(None, self._chart, note, now)
        except Exception as exc:  # noqa: BLE001 - a broken chart must not block the message
            self.chart_errors += 1
            log.warning("slack receiver %r: chart rendering failed: %s", self.name, scrub(str(exc)))
            return
        if not png:
            return
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

    # -- idempotency ----------------------------------------------------------------------
    async def _resolve_channel_id(self) -> str:
        if self._channel_id:
            return self._channel_id
        name = self.channel.lstrip("#")
        cursor = None
        for _ in range(50):  # bounded paging
            with slack_errors(self.name, "conversations.list"):
                resp = await self._api().conversations_list(
                    types="public_channel,private_channel",
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
        raise ReceiverBroken(
            f"slack receiver {self.name!r}: channel_not_found: no channel named {self.channel!r}"
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
