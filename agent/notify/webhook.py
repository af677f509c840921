"""Slack incoming webhooks: the same Block Kit content, without threads, updates or files.

A text sparkline of the metric's recent values stands in for the chart. ``WebhookClient``
never raises on an HTTP error (see notes/clients.md): the status and body are checked here.
A webhook cannot be re-read, so an attempt interrupted after Slack accepted it may repeat
once; the window is one HTTP round trip (the outbox records the attempt just before it).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import aiohttp
from slack_sdk.webhook.async_client import AsyncWebhookClient

from agent.notify.base import Notification, Notifier, NotifyError, ReceiverBroken, SendContext
from agent.notify.render import blocks_for, fallback_text
from agent.secrets import scrub

__all__ = ["WebhookNotifier"]

log = logging.getLogger(__name__)
SparkFn = Callable[[Notification, float], dict[str, str]]
_BROKEN = {
    "invalid_token",
    "no_service",
    "no_service_id",
    "no_team",
    "team_disabled",
    "channel_not_found",
    "channel_is_archived",
    "action_prohibited",
    "posting_to_general_channel_denied",
}


class WebhookNotifier(Notifier):
    type = "webhook"

    def __init__(
        self,
        name: str,
        *,
        url: str,
        timeout: float = 10.0,
        sparklines: SparkFn | None = None,
        footer: str = "mlwarden",
    ) -> None:
        self.name = name
        self.pace_key = f"webhook:{name}"
        self.description = "Slack incoming webhook"
        self._url = url
        self._timeout = timeout
        self._sparklines = sparklines
        self._footer = footer
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, note: Notification, ctx: SendContext) -> dict[str, Any]:
        sparks: dict[str, str] = {}
        if self._sparklines is not None:
            try:
                sparks = await asyncio.get_running_loop().run_in_executor(
                    None, self._sparklines, note, ctx.now
                )
            except Exception as exc:  # noqa: BLE001 - the message goes out without its sparkline
                log.warning("webhook receiver %r: sparkline failed: %s", self.name, scrub(str(exc)))
        if self._session is None:
            self._session = aiohttp.ClientSession()
        client = AsyncWebhookClient(
            self._url, timeout=int(max(1, self._timeout)), session=self._session
        )
        where = f"webhook receiver {self.name!r}"
        try:
            resp = await client.send(
                text=fallback_text(note, ctx.now, ctx.late_note),
                blocks=blocks_for(
                    note, ctx.now, late_note=ctx.late_note, sparklines=sparks, footer=self._footer
                ),
                unfurl_links=False,
                unfurl_media=False,
            )
        except (asyncio.TimeoutError, TimeoutError) as exc:
            raise NotifyError(f"{where}: timed out", retryable=True, reason="timeout") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise NotifyError(
                f"{where}: {type(exc).__name__}: {scrub(str(exc))[:300]}", retryable=True,
                reason="network",
            ) from exc
        status, body = resp.status_code, (resp.body or "").strip()
        if status == 200:
            return {"status": status}
        if status == 429:
            after = resp.headers.get("Retry-After") or resp.headers.get("retry-after")
            raise NotifyError(
                f"{where}: rate limited (Retry-After {after}s)",
                retryable=True,
                retry_after=float(after) if after else None,
                reason="rate_limited",
                status=status,
            )
        if status >= 500:
            raise NotifyError(f"{where}: the Slack incoming webhook answered HTTP {status}",
                              retryable=True, reason="server_error", status=status)
        if body in _BROKEN or status in (401, 403, 404, 410):
            raise ReceiverBroken(
                f"{where}: HTTP {status} {scrub(body)[:100]}: the webhook URL is revoked or wrong: "
                "create a new incoming webhook for the channel and set its URL"
            )
        raise NotifyError(
            f"{where}: Slack refused the message: HTTP {status} {scrub(body)[:200]}",
            retryable=False,
            reason="rejected",
            status=status,
        )
