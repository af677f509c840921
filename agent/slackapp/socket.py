"""Socket Mode: the agent connects out to Slack over a WebSocket, so no public URL is needed.

The protocol (docs.slack.dev, "Using Socket Mode"): ``apps.connections.open`` with the
app-level token (``xapp-``) returns a one-time ``wss://`` URL; Slack says ``hello`` on it,
then sends envelopes (``{"envelope_id", "type", "payload", ...}``), each of which must be
acknowledged with ``{"envelope_id": ...}`` within 3 seconds or Slack delivers it again
(possibly on another connection: another agent). Slack recycles connections: it sends
``{"type": "disconnect", "reason": "refresh_requested"}`` (or ``warning``) and closes the
socket a few seconds later.

This client, on slack-sdk's Web API client (``AsyncWebClient.apps_connections_open``) and
its Socket Mode message types (``SocketModeRequest``/``SocketModeResponse``):

- **acknowledges after applying, within a deadline**: the handler gets ``ack_deadline``
  (2 s) to apply an envelope; the ack follows as soon as it is applied, or at the deadline
  while it goes on. A handler that *fails* is not acknowledged, so Slack delivers the
  envelope again (and the store's action key makes the second delivery a no-op if the
  first got further than it seemed).
- **overlaps on refresh**: on ``disconnect`` it opens the next connection at once and keeps
  reading the old one until the new one has said ``hello``, so nothing falls in between.
- **reconnects on loss with bounded backoff**: a lost connection (closed, reset, no pong
  within the heartbeat) is reopened at once; each failed attempt then waits
  1 s, 2 s, 4 s ... up to ``backoff_max``, with jitter, and always with a *new* URL
  (``apps.connections.open`` again: a URL is good for one connection).
- **bounds its work**: at most ``max_in_flight`` envelopes are handled at once; past that,
  an envelope is left unacknowledged for Slack to deliver again.

Why not slack-sdk's ``slack_sdk.socket_mode.aiohttp.SocketModeClient``: it retries a failed
connection every ``ping_interval`` forever with the URL it already used and without
backoff, closes the old connection before opening the new one on refresh, and leaves the
ack to the listener with no bound on concurrent listeners; the behaviour above is what the
issue asks for, and owning it keeps it testable (tests/slackapp/socket_stand_in.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

from agent.secrets import scrub
from agent.tasks import cancel_and_wait

__all__ = ["ConnectFailed", "Handler", "LeaveUnacked", "SocketModeClient"]

log = logging.getLogger(__name__)

# apps.connections.open errors no retry can fix, each with what to do
_CONFIG_ERRORS = {
    "invalid_auth": "the app-level token is invalid: set slack_actions.app_token to the app's "
                    "xapp-... token (Basic Information > App-Level Tokens)",
    "not_authed": "no app-level token was sent: set slack_actions.app_token",
    "not_allowed_token_type": "apps.connections.open needs the app-level token (xapp-...), "
                              "not a bot or user token",
    "missing_scope": "the app-level token lacks connections:write: create a token with it "
                     "under Basic Information > App-Level Tokens",
    "token_revoked": "the app-level token was revoked: create a new one",
}
# the answer of the handler: a payload to send with the ack (None: a bare ack)
Handler = Callable[[SocketModeRequest], Coroutine[Any, Any, dict[str, Any] | None]]


class ConnectFailed(Exception):
    """One attempt to open a Socket Mode connection failed (the message says why)."""


class LeaveUnacked(Exception):
    """Raised by a handler that wants Slack to deliver the envelope again later (another
    agent is applying the same action right now, and might fail)."""


@dataclass
class _Connection:
    ws: aiohttp.ClientWebSocketResponse
    number: int
    refresh: asyncio.Event = field(default_factory=asyncio.Event)
    reason: str = ""


class SocketModeClient:
    """Keeps one Socket Mode connection open and hands each envelope to ``handler``."""

    def __init__(
        self,
        app_token: str,
        handler: Handler,
        *,
        base_url: str = "https://slack.com/api/",
        timeout: float = 10.0,
        backoff_initial: float = 1.0,
        backoff_max: float = 60.0,
        ack_deadline: float = 2.0,
        hello_timeout: float = 10.0,
        heartbeat: float = 30.0,
        max_in_flight: int = 32,
        min_healthy: float = 10.0,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self._app_token = app_token
        self.handler = handler
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.timeout = timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.ack_deadline = ack_deadline
        self.hello_timeout = hello_timeout
        self.heartbeat = heartbeat
        self.rng = rng
        self.max_in_flight = max_in_flight
        self.min_healthy = min_healthy
        self._busy = 0
        self._streak = 0  # failed attempts and short-lived connections in a row: the backoff
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._work: set[asyncio.Task[Any]] = set()
        self._stopping = asyncio.Event()
        self._opened = 0
        # for /status and tests
        self.state = "stopped"  # stopped | connecting | connected | waiting
        self.connected = asyncio.Event()
        self.connections = 0  # connections that said hello
        self.failures = 0  # failed attempts since the last connection
        self.last_error: str | None = None
        self.envelopes = 0
        self.acks = 0
        self.unacked = 0  # envelopes left for Slack to deliver again
        self.hello: dict[str, Any] | None = None

    # -- life cycle ------------------------------------------------------------------------
    async def start(self) -> None:
        if self._task is None:
            self._stopping.clear()
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, connect=self.timeout,
                                              sock_connect=self.timeout))
            self._task = asyncio.create_task(self._run(), name="slack-socket-mode")

    async def stop(self, timeout: float = 5.0) -> None:
        """Close the connection; envelopes being applied get ``timeout`` seconds to finish."""
        self._stopping.set()
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None
        if self._work:
            _, pending = await asyncio.wait(list(self._work), timeout=timeout)
            for task in pending:
                task.cancel()
        if self._session is not None:
            await self._session.close()
            self._session = None
        self.state = "stopped"
        self.connected.clear()

    def status(self) -> dict[str, Any]:
        return {"mode": "socket", "state": self.state, "connections": self.connections,
                "failures": self.failures, "retry_streak": self._streak,
                "last_error": self.last_error,
                "envelopes": self.envelopes, "acks": self.acks, "unacked": self.unacked}

    # -- connecting ------------------------------------------------------------------------
    def backoff(self, failures: int) -> float:
        """Seconds to wait after ``failures`` failed attempts in a row: 1, 2, 4 ... capped,
        each drawn between half and all of it (agents restarted together spread out)."""
        if failures <= 0:
            return 0.0
        base = min(self.backoff_max, self.backoff_initial * 2 ** (failures - 1))
        return base * (0.5 + 0.5 * self.rng())

    async def _open_url(self) -> str:
        assert self._session is not None
        web = AsyncWebClient(base_url=self.base_url, timeout=int(max(1, self.timeout)),
                             session=self._session)
        try:
            resp = await web.apps_connections_open(app_token=self._app_token)
        except SlackApiError as exc:
            data = getattr(exc.response, "data", None)  # a 5xx answers text, not JSON
            error = str(data.get("error", "")) if isinstance(data, dict) else \
                f"HTTP {getattr(exc.response, 'status_code', '?')}"
            hint = _CONFIG_ERRORS.get(error)
            raise ConnectFailed(f"apps.connections.open: {error or exc}"
                                + (f" ({hint})" if hint else "")) from None
        except (SlackClientError, aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            raise ConnectFailed(f"apps.connections.open: {_why(exc)}") from None
        url = resp.get("url")
        if not isinstance(url, str) or not url.startswith(("wss://", "ws://")):
            raise ConnectFailed(f"apps.connections.open answered no WebSocket URL ({url!r})")
        return url

    async def _connect(self) -> _Connection:
        assert self._session is not None
        url = await self._open_url()
        try:
            ws = await self._session.ws_connect(url, heartbeat=self.heartbeat, autoping=True)
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            raise ConnectFailed(f"WebSocket connect: {_why(exc)}") from None
        try:
            first = await ws.receive(timeout=self.hello_timeout)
        except asyncio.TimeoutError:
            await ws.close()
            raise ConnectFailed(f"no hello within {self.hello_timeout:g}s of connecting") \
                from None
        hello = _json(first.data) if first.type == aiohttp.WSMsgType.TEXT else None
        if not hello or hello.get("type") != "hello":
            await ws.close()
            raise ConnectFailed(f"the first message was not hello ({first.type.name})")
        self.hello = hello
        self._opened += 1
        return _Connection(ws, self._opened)

    async def _run(self) -> None:
        previous: tuple[_Connection, asyncio.Task[None]] | None = None
        current: tuple[_Connection, asyncio.Task[None]] | None = None
        said: set[str] = set()
        try:
            while not self._stopping.is_set():
                self.state = "connecting"
                try:
                    conn = await self._connect()
                except ConnectFailed as exc:
                    self.failures += 1
                    self._streak += 1
                    self.last_error = scrub(str(exc))
                    if self.last_error not in said:  # once per distinct problem per outage
                        said.add(self.last_error)
                        log.warning("slack socket mode: %s; trying again (backoff up to %gs)",
                                    self.last_error, self.backoff_max)
                    self.state = "waiting"
                    await self._sleep(self.backoff(self._streak))
                    continue
                if self.failures:
                    log.info("slack socket mode: connected after %d failed attempt(s)",
                             self.failures)
                self.failures, said = 0, set()
                self.connections += 1
                self.state = "connected"
                self.connected.set()
                if previous is not None:  # the new one said hello: the old one may go
                    await _close(*previous)
                    previous = None
                opened = time.monotonic()
                reader = asyncio.create_task(self._read(conn), name=f"slack-socket-{conn.number}")
                current = (conn, reader)
                refresh = asyncio.create_task(conn.refresh.wait())
                try:
                    await asyncio.wait({reader, refresh}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    refresh.cancel()
                if conn.refresh.is_set() and not reader.done():
                    log.info("slack socket mode: Slack asked to reconnect (%s)", conn.reason)
                    self._streak = 0
                    previous, current = current, None  # read it while the next one opens
                    continue
                current = None
                self.connected.clear()
                if self._stopping.is_set():
                    break
                # a connection that dies young counts as a failed attempt, so a link that
                # drops right after each hello is retried with backoff, not in a tight loop
                self._streak = self._streak + 1 if time.monotonic() - opened < \
                    self.min_healthy else 0
                self.last_error = f"connection lost ({conn.reason or 'closed'})"
                log.info("slack socket mode: %s; reconnecting", self.last_error)
                await self._sleep(self.backoff(self._streak))
        finally:
            for pair in (previous, current):
                if pair is not None:
                    await _close(*pair)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    # -- reading ---------------------------------------------------------------------------
    async def _read(self, conn: _Connection) -> None:
        ws = conn.ws
        while True:
            msg = await ws.receive()
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING,
                            aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                conn.reason = conn.reason or f"{msg.type.name.lower()}" + (
                    f": {_why(msg.data)}" if msg.type == aiohttp.WSMsgType.ERROR else "")
                return
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            doc = _json(msg.data)
            if doc is None:
                log.warning("slack socket mode: a message that is not JSON was ignored")
                continue
            kind = doc.get("type")
            if kind == "disconnect":
                conn.reason = str(doc.get("reason") or "disconnect")
                if conn.reason == "link_disabled":
                    log.error("slack socket mode: Socket Mode was turned off in the app's "
                              "settings (Settings > Socket Mode); buttons do nothing until "
                              "it is on again")
                conn.refresh.set()
                continue
            if "envelope_id" in doc:
                self.envelopes += 1
                task = asyncio.create_task(self._envelope(conn, doc))
                self._work.add(task)
                task.add_done_callback(self._work.discard)
            elif kind != "hello":
                log.debug("slack socket mode: ignored a %r message", kind)

    async def _envelope(self, conn: _Connection, doc: dict[str, Any]) -> None:
        envelope_id = str(doc["envelope_id"])
        request = SocketModeRequest.from_dict(doc)
        if request is None:  # an envelope without a payload: nothing to do but say so
            await self._ack(conn, envelope_id, None)
            return
        if self._busy >= self.max_in_flight:
            self.unacked += 1
            log.warning("slack socket mode: %d envelopes are being handled; envelope %s is "
                        "left for Slack to deliver again", self._busy, envelope_id)
            return
        self._busy += 1
        work = asyncio.create_task(self.handler(request))
        self._work.add(work)
        work.add_done_callback(self._done)
        try:
            payload = await asyncio.wait_for(asyncio.shield(work), self.ack_deadline)
        except asyncio.TimeoutError:
            payload = None  # applying goes on; Slack must hear from us in time
        except LeaveUnacked as exc:
            self.unacked += 1
            log.info("slack socket mode: envelope %s left for Slack to deliver again (%s)",
                     envelope_id, exc)
            return
        except Exception as exc:  # noqa: BLE001 - the handler's failure is the verdict
            self.unacked += 1
            log.warning("slack socket mode: handling envelope %s failed (%s); left for "
                        "Slack to deliver again", envelope_id, scrub(_why(exc)))
            return
        await self._ack(conn, envelope_id, payload)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._busy -= 1
        self._work.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: _envelope reports a failure, the handler logs its own

    async def _ack(self, conn: _Connection, envelope_id: str,
                   payload: dict[str, Any] | None) -> None:
        text = json.dumps(SocketModeResponse(envelope_id=envelope_id, payload=payload).to_dict(),
                          separators=(",", ":"))
        try:
            await conn.ws.send_str(text)
        except (aiohttp.ClientError, ConnectionError, RuntimeError) as exc:
            # the connection went away: Slack delivers the envelope again, the store makes
            # the second application a no-op
            self.unacked += 1
            log.info("slack socket mode: could not acknowledge %s (%s)", envelope_id, _why(exc))
            return
        self.acks += 1


async def _close(conn: _Connection, reader: asyncio.Task[None]) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(conn.ws.close(), 5)
    await cancel_and_wait(reader)


def _json(data: Any) -> dict[str, Any] | None:
    try:
        doc = json.loads(data)
    except (TypeError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _why(exc: object) -> str:
    text = str(exc).strip()
    return scrub(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)
