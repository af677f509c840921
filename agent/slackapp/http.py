"""HTTP mode: Slack posts each button press to a Request URL the agent serves.

For teams that can expose a URL (behind their HTTPS ingress). Every request must be
signed by Slack (docs.slack.dev, "Verifying requests from Slack"): ``X-Slack-Signature`` is
``v0=`` + HMAC-SHA256 of ``v0:{X-Slack-Request-Timestamp}:{body}`` under the app's signing
secret. A request is refused (401) when the signature is missing or wrong, when its
timestamp is further than ``timestamp_tolerance`` from now (an old request replayed), or
when the same signed request was already accepted (a replay within the tolerance: the
agent remembers what it accepted for that long). The signature is checked before anything
is remembered, so unsigned traffic cannot fill the memory.

A press is applied before the answer, within Slack's 3 seconds: the answer (200) follows
as soon as it is applied, or at ``ack_deadline`` while it goes on.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Mapping
from typing import Any
from urllib.parse import parse_qs

from aiohttp import web
from slack_sdk.signature import SignatureVerifier

from agent.slackapp.config import HttpModeConfig

__all__ = ["HttpReceiver", "Refused", "SignedRequests"]

log = logging.getLogger(__name__)
PayloadHandler = Callable[[Mapping[str, Any], str],
                          Coroutine[Any, Any, dict[str, Any] | None]]
MAX_BODY = 1 << 20  # Slack's interactive payloads are a few KB


class Refused(Exception):
    """A request that is not an authentic, fresh Slack request; the message says which."""


class SignedRequests:
    """Checks Slack's request signatures and refuses replays."""

    def __init__(self, signing_secret: str, *, tolerance: float = 300.0,
                 clock: Callable[[], float] = time.time, remember: int = 10_000) -> None:
        self._verifier = SignatureVerifier(signing_secret)
        self.tolerance = tolerance
        self.clock = clock
        self.remember = remember
        self._seen: OrderedDict[str, float] = OrderedDict()  # signature -> its timestamp

    def verify(self, body: bytes, headers: Mapping[str, str]) -> None:
        """Raises :class:`Refused` unless ``body`` is a fresh, first-seen Slack request."""
        lower = {k.lower(): v for k, v in headers.items()}
        stamp, signature = lower.get("x-slack-request-timestamp"), lower.get("x-slack-signature")
        if not stamp or not signature:
            raise Refused("unsigned: no X-Slack-Signature / X-Slack-Request-Timestamp")
        try:
            when = int(stamp)
        except ValueError:
            raise Refused(f"malformed timestamp {stamp[:20]!r}") from None
        now = self.clock()
        if abs(now - when) > self.tolerance:
            raise Refused(f"timestamp {when} is {abs(now - when):.0f}s from now (more than "
                          f"{self.tolerance:g}s): an old request, refused as a replay")
        expected = self._verifier.generate_signature(timestamp=stamp, body=body)
        if expected is None or not hmac.compare_digest(expected, signature):
            raise Refused("bad signature (is http.signing_secret the app's Signing Secret?)")
        self._forget(now)
        if signature in self._seen:
            raise Refused("replayed: this signed request was accepted before")
        self._seen[signature] = float(when)
        while len(self._seen) > self.remember:
            self._seen.popitem(last=False)

    def _forget(self, now: float) -> None:
        # past the tolerance the timestamp check refuses a replay on its own
        for sig, when in list(self._seen.items()):
            if now - when <= self.tolerance:
                break
            del self._seen[sig]


class HttpReceiver:
    """The Request URL: ``POST {path}`` on its own listener (or on the agent's, by routes())."""

    def __init__(self, config: HttpModeConfig, handler: PayloadHandler, *,
                 clock: Callable[[], float] = time.time, ack_deadline: float = 2.0) -> None:
        self.config = config
        self.handler = handler
        self.ack_deadline = ack_deadline
        self.signed = SignedRequests(config.signing_secret.get_secret_value(),
                                     tolerance=config.timestamp_tolerance, clock=clock)
        self._runner: web.AppRunner | None = None
        self._work: set[asyncio.Task[Any]] = set()
        self.bound_port: int | None = None
        self.refused = 0
        self.accepted = 0
        self._said: set[str] = set()

    def routes(self) -> list[web.RouteDef]:
        return [web.post(self.config.path, self._post)]

    async def start(self) -> None:
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_routes(self.routes())
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        host, _, port = self.config.listen.rpartition(":")
        site = web.TCPSite(self._runner, host.strip("[]"), int(port))
        await site.start()
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        self.bound_port = sockets[0].getsockname()[1] if sockets else int(port)
        log.info("slack actions: HTTP mode listening on %s:%s%s", host, self.bound_port,
                 self.config.path)

    async def stop(self, timeout: float = 5.0) -> None:
        if self._work:
            await asyncio.wait(list(self._work), timeout=timeout)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def status(self) -> dict[str, Any]:
        return {"mode": "http", "listen": self.config.listen, "path": self.config.path,
                "accepted": self.accepted, "refused": self.refused}

    async def _post(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            self.signed.verify(body, request.headers)
        except Refused as exc:
            self.refused += 1
            reason = str(exc)
            kind = reason.split(":", 1)[0]
            if kind not in self._said:  # once per kind: a scanner must not flood the log
                self._said.add(kind)
                log.warning("slack actions: refused a request from %s: %s", request.remote,
                            reason)
            return web.Response(status=401, text=reason)
        self.accepted += 1
        form = parse_qs(body.decode("utf-8", "replace"))
        raw = form.get("payload", [""])[0]
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            return web.Response(status=400, text="expected a form field `payload` holding a "
                                                 "JSON object (an interactive request)")
        work = asyncio.create_task(self.handler(payload, "slack-http"))
        self._work.add(work)
        work.add_done_callback(self._work.discard)
        try:
            answer = await asyncio.wait_for(asyncio.shield(work), self.ack_deadline)
        except asyncio.TimeoutError:
            answer = None
        except Exception:  # noqa: BLE001 - logged by the handler; Slack shows the person an error
            return web.Response(status=500, text="could not apply the action")
        if answer:
            return web.json_response(answer)
        return web.Response(status=200)
