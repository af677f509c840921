"""Ephemeral answers to the person who pressed a button, through the press's ``response_url``.

Slack gives every interactive payload a ``response_url`` (valid 30 minutes, 5 uses) that
posts into the same conversation; with ``response_type: ephemeral`` and
``replace_original: false`` only the person sees the answer and the alert message stays as
it is. It needs no OAuth scope and works the same in Socket Mode and HTTP mode. slack-sdk's
``AsyncWebhookClient`` sends it; an answer that cannot be delivered is logged, never
retried into a second copy.
"""

from __future__ import annotations

import logging

import aiohttp
from slack_sdk.webhook.async_client import AsyncWebhookClient

from agent.secrets import scrub

__all__ = ["Replier"]

log = logging.getLogger(__name__)


class Replier:
    """Posts ephemeral answers; counts what it sent and what failed."""

    def __init__(self, *, timeout: float = 10.0,
                 session: aiohttp.ClientSession | None = None) -> None:
        self.timeout = timeout
        self.session = session
        self.sent = 0
        self.failed = 0

    async def ephemeral(self, response_url: str | None, text: str) -> bool:
        if not response_url:
            return False
        client = AsyncWebhookClient(response_url, timeout=int(max(1, self.timeout)),
                                    session=self.session)
        try:
            resp = await client.send(text=text, response_type="ephemeral",
                                     replace_original=False)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            self.failed += 1
            log.warning("slack actions: could not answer the person who pressed (%s)",
                        scrub(f"{type(exc).__name__}: {exc}"))
            return False
        if resp.status_code != 200:
            self.failed += 1
            log.warning("slack actions: Slack refused the answer to a press: HTTP %s %s",
                        resp.status_code, scrub(str(resp.body))[:200])
            return False
        self.sent += 1
        return True
