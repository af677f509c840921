"""Slack's side of Socket Mode and of interactivity, on 127.0.0.1.

Why a stand-in: Slack cannot run on this machine and tests may only reach loopback. It is
strict where Slack is documented to be (docs.slack.dev: "Using Socket Mode",
"apps.connections.open", "Handling user interaction", "usergroups.users.list"):

- ``apps.connections.open`` takes only the app-level token (``xapp-``; a bot token gets
  ``not_allowed_token_type``, any other ``invalid_auth``) and only when the app's manifest
  has Socket Mode on; it answers a WebSocket URL whose ticket is good for one connection.
- Each connection gets ``hello`` (``num_connections``, ``debug_info``, ``connection_info``)
  first. Envelopes carry ``envelope_id``, ``type: interactive``, ``payload``,
  ``accepts_response_payload``, ``retry_attempt`` and ``retry_reason``. An ack must be a
  JSON object with the ``envelope_id`` of an envelope it was sent (and at most a
  ``payload`` object): anything else is recorded in ``errors``. An envelope not acked
  within ``ack_timeout`` (Slack: 3 s) is delivered again, to the next open connection,
  ``retry_attempt`` + 1, ``retry_reason: timeout``, at most ``max_retries`` times.
- ``disconnect`` (``refresh_requested``, ``warning``, ...) closes the socket a little later,
  as Slack does; ``drop`` ends it without a close frame (network loss).
- A press is made *from a rendered message*: the message's blocks must round-trip through
  slack-sdk's models, the button must exist with that ``action_id``, and the payload is a
  ``block_actions`` payload as Slack sends it for a message button (``user``, ``team``,
  ``container`` with ``message_ts``/``channel_id``, ``channel``, ``message``,
  ``response_url``, ``trigger_id``, ``actions[{action_id, block_id, text, value, type,
  action_ts}]``).
- ``response_url`` takes JSON with Slack's documented keys only; ``usergroups.users.list``
  needs the bot token and the ``usergroups:read`` scope, which the manifest must grant.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from aiohttp import WSMsgType, web

from tests.notify.fake_slack import validate_with_sdk

APP_TOKEN = "xapp-1-A0MLWARDEN-1-0123456789abcdef"
BOT_TOKEN = "xoxb-test-0123456789"
APP_ID = "A0MLWARDEN"
TEAM = {"id": "T0MLTEAM01", "domain": "mlteam"}
CHANNEL = {"id": "C0ALERTS01", "name": "ml-alerts"}
MANIFEST = Path(__file__).resolve().parents[2] / "deploy" / "slack" / "slack-app-manifest.yaml"
RESPONSE_KEYS = {"text", "blocks", "attachments", "response_type", "replace_original",
                 "delete_original", "thread_ts", "unfurl_links", "unfurl_media", "mrkdwn",
                 "metadata"}


@dataclass
class Conn:
    number: int
    ws: web.WebSocketResponse
    request: web.Request
    received: list[Any] = field(default_factory=list)
    closed: bool = False


@dataclass
class Delivery:
    envelope_id: str
    envelope: dict[str, Any]
    attempts: list[int] = field(default_factory=list)  # connection number of each delivery
    acked: asyncio.Event = field(default_factory=asyncio.Event)
    acked_on: int | None = None
    fate: str = "deliver"  # deliver | lose_envelope | lose_ack (first delivery only)


@dataclass
class Reply:
    path: str
    body: dict[str, Any]


class SocketModeStandIn:
    def __init__(self, *, manifest: Path = MANIFEST, ack_timeout: float = 3.0,
                 max_retries: int = 3, usergroups: dict[str, list[str]] | None = None,
                 close_after_disconnect: float = 0.5) -> None:
        self.manifest = yaml.safe_load(manifest.read_text())
        self.scopes = frozenset(self.manifest["oauth_config"]["scopes"]["bot"])
        self.ack_timeout = ack_timeout
        self.max_retries = max_retries
        self.usergroups = dict(usergroups or {})
        self.close_after_disconnect = close_after_disconnect
        self.conns: list[Conn] = []
        self.deliveries: dict[str, Delivery] = {}
        self.replies: list[Reply] = []
        self.errors: list[str] = []
        self.opened_urls = 0
        self.connections_open_failures = 0  # apps.connections.open answered with a failure
        self.fail_open: str | None = None  # "500": apps.connections.open fails
        self.usergroups_delay = 0.0  # seconds usergroups.users.list takes to answer
        self._tickets: set[str] = set()
        self._numbers = itertools.count(1)
        self._rr = itertools.count()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.changed = asyncio.Condition()

    # -- server ---------------------------------------------------------------------------
    async def start(self) -> "SocketModeStandIn":
        app = web.Application()
        app.router.add_post("/api/apps.connections.open", self._open)
        # slack-sdk calls it with GET, its query string holding the parameters
        app.router.add_route("*", "/api/usergroups.users.list", self._usergroup)
        app.router.add_get("/link/", self._link)
        app.router.add_post("/actions/{team}/{id}/{secret}", self._response_url)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for conn in self.conns:
            if not conn.closed:
                await conn.ws.close()
        await self._runner.cleanup()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    def open_conns(self) -> list[Conn]:
        return [c for c in self.conns if not c.closed]

    async def _notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    async def wait(self, predicate: Any, timeout: float, what: str) -> None:
        """Until ``predicate()`` holds (checked on every change), else AssertionError."""
        async def until() -> None:
            async with self.changed:
                await self.changed.wait_for(predicate)
        try:
            await asyncio.wait_for(until(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"stand-in: {what} did not happen within {timeout}s") from None

    # -- Web API --------------------------------------------------------------------------
    @staticmethod
    async def _params(request: web.Request) -> dict[str, Any]:
        params = dict(request.query)
        if request.method == "POST":
            if request.content_type == "application/json":
                params.update(await request.json())
            else:
                params.update(await request.post())
        return params

    def _token(self, request: web.Request, params: dict[str, Any]) -> str:
        auth = request.headers.get("Authorization", "")
        return auth[7:] if auth.startswith("Bearer ") else str(params.get("token", ""))

    async def _open(self, request: web.Request) -> web.Response:
        params = await self._params(request)
        params.pop("token", None)
        if params:
            self.errors.append(f"apps.connections.open: unknown params {sorted(params)}")
            return web.json_response({"ok": False, "error": "invalid_arguments"})
        token = self._token(request, {})
        if self.fail_open == "500":
            self.connections_open_failures += 1
            await self._notify()
            return web.Response(status=500, text="upstream trouble")
        if token.startswith("xoxb-"):
            return web.json_response({"ok": False, "error": "not_allowed_token_type"})
        if token != APP_TOKEN:
            return web.json_response({"ok": False, "error": "invalid_auth"})
        if not self.manifest["settings"].get("socket_mode_enabled"):
            return web.json_response({"ok": False, "error": "socket_mode_not_enabled"})
        ticket = uuid.uuid4().hex
        self._tickets.add(ticket)
        self.opened_urls += 1
        return web.json_response({
            "ok": True, "url": f"ws://127.0.0.1:{self.port}/link/?ticket={ticket}&app_id={APP_ID}"})

    async def _usergroup(self, request: web.Request) -> web.Response:
        params = await self._params(request)
        if self._token(request, params) != BOT_TOKEN:
            return web.json_response({"ok": False, "error": "invalid_auth"})
        params.pop("token", None)
        unknown = set(params) - {"usergroup", "include_disabled", "team_id"}
        if unknown:
            self.errors.append(f"usergroups.users.list: unknown params {sorted(unknown)}")
            return web.json_response({"ok": False, "error": "invalid_arguments"})
        if "usergroups:read" not in self.scopes:
            return web.json_response({"ok": False, "error": "missing_scope",
                                      "needed": "usergroups:read",
                                      "provided": ",".join(sorted(self.scopes))})
        group = params.get("usergroup")
        await asyncio.sleep(self.usergroups_delay)
        if group not in self.usergroups:
            return web.json_response({"ok": False, "error": "no_such_subteam"})
        return web.json_response({"ok": True, "users": self.usergroups[group]})

    async def _response_url(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            self.errors.append("response_url: the body is not JSON")
            return web.Response(status=400, text="invalid_payload")
        unknown = set(body) - RESPONSE_KEYS
        if unknown or body.get("response_type", "ephemeral") not in ("ephemeral", "in_channel"):
            self.errors.append(f"response_url: unexpected {sorted(unknown) or body}")
            return web.Response(status=400, text="invalid_payload")
        if "blocks" in body:
            validate_with_sdk(body["blocks"])
        self.replies.append(Reply(request.path, body))
        await self._notify()
        return web.Response(text="ok")

    # -- Socket Mode ----------------------------------------------------------------------
    async def _link(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        if ticket not in self._tickets:
            self.errors.append("a WebSocket URL was used twice (or made up)")
            return web.Response(status=401, text="invalid ticket")
        self._tickets.discard(ticket)
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        conn = Conn(next(self._numbers), ws, request)
        self.conns.append(conn)
        await ws.send_json({
            "type": "hello", "num_connections": len(self.open_conns()),
            "debug_info": {"host": f"applink-stand-in-{conn.number}", "build_number": 1,
                           "approximate_connection_time": 18060},
            "connection_info": {"app_id": APP_ID},
        })
        await self._notify()
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await self._ack(conn, msg.data)
        finally:
            conn.closed = True
            await self._notify()
        return ws

    async def _ack(self, conn: Conn, text: str) -> None:
        try:
            doc = json.loads(text)
        except ValueError:
            self.errors.append(f"conn {conn.number}: a message that is not JSON: {text[:80]!r}")
            return
        conn.received.append(doc)
        if not isinstance(doc, dict) or set(doc) - {"envelope_id", "payload"}:
            self.errors.append(f"conn {conn.number}: not an ack: {doc!r}")
            return
        if "payload" in doc and not isinstance(doc["payload"], dict):
            self.errors.append(f"conn {conn.number}: ack payload is not an object")
        delivery = self.deliveries.get(str(doc.get("envelope_id")))
        if delivery is None:
            self.errors.append(f"conn {conn.number}: ack of unknown envelope {doc!r}")
            return
        if delivery.fate == "lose_ack" and len(delivery.attempts) == 1:
            # the connection dies with the ack in flight: Slack never hears it
            await self.drop(conn)
            return
        if not delivery.acked.is_set():
            delivery.acked_on = conn.number
            delivery.acked.set()
        await self._notify()

    async def disconnect(self, conn: Conn, reason: str = "refresh_requested") -> None:
        """Slack's recycling: ``disconnect``, then the socket closes a little later."""
        await conn.ws.send_json({"type": "disconnect", "reason": reason,
                                 "debug_info": {"host": f"applink-stand-in-{conn.number}"}})

        async def close_later() -> None:
            await asyncio.sleep(self.close_after_disconnect)
            await conn.ws.close()
        self._spawn(close_later())

    async def drop(self, conn: Conn) -> None:
        """Network loss: the TCP connection ends without a WebSocket close frame."""
        transport = conn.request.transport
        if transport is not None:
            transport.abort()
        conn.closed = True
        await self._notify()

    # -- presses --------------------------------------------------------------------------
    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def press(self, blocks: list[dict[str, Any]], action_id: str, *, user: str,
                    name: str = "", message_ts: str = "1700000000.000100",
                    fate: str = "deliver", to: int | None = None,
                    broadcast: bool = False) -> Delivery:
        """Press the button ``action_id`` of a message showing ``blocks``.

        ``fate``: ``lose_envelope`` (the first delivery never reaches the agent and its
        connection drops), ``lose_ack`` (the agent's first ack is lost as its connection
        drops). ``to``: deliver first on that connection (number). ``broadcast``: deliver
        the first time on every open connection at once (the race of a redelivery reaching
        a second agent while the first is still applying).
        """
        secret = uuid.uuid4().hex[:24]
        response_url = (f"http://127.0.0.1:{self.port}/actions/{TEAM['id']}/"
                        f"{uuid.uuid4().int % 10**12}/{secret}")
        payload = block_actions_payload(blocks, action_id, user=user, name=name,
                                        message_ts=message_ts, response_url=response_url)
        envelope_id = str(uuid.uuid4())
        envelope = {"envelope_id": envelope_id, "payload": payload, "type": "interactive",
                    "accepts_response_payload": False, "retry_attempt": 0, "retry_reason": ""}
        delivery = Delivery(envelope_id, envelope, fate=fate)
        self.deliveries[envelope_id] = delivery
        self._spawn(self._deliver(delivery, to, broadcast))
        return delivery

    async def _next_conn(self, avoid: int | None = None) -> Conn:
        await self.wait(lambda: self.open_conns(), 30, "an open Socket Mode connection")
        conns = self.open_conns()
        others = [c for c in conns if c.number != avoid] or conns
        return others[next(self._rr) % len(others)]

    async def _deliver(self, delivery: Delivery, to: int | None, broadcast: bool) -> None:
        last: int | None = None
        for attempt in range(self.max_retries + 1):
            doc = dict(delivery.envelope, retry_attempt=attempt,
                       retry_reason="" if attempt == 0 else "timeout")
            if attempt == 0 and broadcast:
                targets = self.open_conns()
            elif attempt == 0 and to is not None:
                targets = [c for c in self.conns if c.number == to]
            else:
                targets = [await self._next_conn(avoid=last)]
            for conn in targets:
                delivery.attempts.append(conn.number)
                last = conn.number
                if attempt == 0 and delivery.fate == "lose_envelope":
                    await self.drop(conn)
                    continue
                try:
                    await conn.ws.send_json(doc)
                except (ConnectionError, RuntimeError):
                    pass  # it went away: the timeout below delivers it again
            await self._notify()
            try:
                await asyncio.wait_for(delivery.acked.wait(), self.ack_timeout)
                return
            except asyncio.TimeoutError:
                continue


def block_actions_payload(blocks: list[dict[str, Any]], action_id: str, *, user: str,
                          name: str = "", message_ts: str = "1700000000.000100",
                          response_url: str = "https://hooks.slack.com/actions/T0/1/x",
                          action_ts: str | None = None) -> dict[str, Any]:
    """The ``block_actions`` payload Slack sends when ``user`` presses the button
    ``action_id`` of a message showing ``blocks`` (which must be valid Block Kit)."""
    validate_with_sdk(blocks)
    ids = [b.get("block_id") for b in blocks if b.get("block_id")]
    assert len(ids) == len(set(ids)), f"block_id values must be unique: {ids}"
    # Slack gives a block without one a block_id of its own, as the posted message shows
    blocks = [b if b.get("block_id") else {**b, "block_id": uuid.uuid4().hex[:5]}
              for b in blocks]
    found = [(b, e) for b in blocks if b.get("type") == "actions"
             for e in b["elements"] if e.get("action_id") == action_id]
    assert len(found) == 1, f"the message has {len(found)} buttons {action_id!r}"
    block, button = found[0]
    assert button.get("type") == "button" and len(button.get("value", "")) <= 2000
    action = {"type": "button", "action_id": action_id, "block_id": block["block_id"],
              "text": button["text"], "action_ts": action_ts or f"{time.time():.6f}"}
    for key in ("value", "style"):  # a link button carries no value
        if key in button:
            action[key] = button[key]
    return {
        "type": "block_actions",
        "user": {"id": user, "username": name or user.lower(), "name": name or user.lower(),
                 "team_id": TEAM["id"]},
        "api_app_id": APP_ID, "token": "legacy-verification-token",
        "container": {"type": "message", "message_ts": message_ts,
                      "channel_id": CHANNEL["id"], "is_ephemeral": False},
        "trigger_id": f"{int(time.time())}.{uuid.uuid4().int % 10**12}.{uuid.uuid4().hex}",
        "team": dict(TEAM), "enterprise": None, "is_enterprise_install": False,
        "channel": dict(CHANNEL),
        "message": {"type": "message", "subtype": "bot_message", "text": "an alert",
                    "ts": message_ts, "bot_id": "B0MLWARDEN", "blocks": blocks},
        "state": {"values": {}},
        "response_url": response_url,
        "actions": [action],
    }
