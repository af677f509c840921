"""Slack actions inside the agent (``agent.app.Agent`` as `mlwarden run` builds it: store,
dispatcher, Slack notifier, the slack_actions component), alerts handed to its dispatcher
so their resolution comes when the test says.

Slack is the strict Web API fake (tests/notify/fake_slack.py) and the Socket Mode stand-in
(tests/slackapp/socket_stand_in.py): Slack cannot run here.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest

from agent.app import Agent
from agent.config import parse_config
from tests.alerting.helpers import fire, resolve
from tests.notify.fake_slack import TOKEN, FakeSlack
from tests.slackapp.socket_stand_in import APP_TOKEN, SocketModeStandIn, block_actions_payload
from tests.support.procs import free_port

pytestmark = pytest.mark.integration
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


@pytest.fixture
async def slack() -> AsyncIterator[tuple[FakeSlack, SocketModeStandIn]]:
    web = await FakeSlack().start()
    web.ts_base = int(time.time())
    socket = await SocketModeStandIn(ack_timeout=2.0).start()
    yield web, socket
    await socket.stop()
    await web.stop()
    assert socket.errors == [] and web.refused == []


def _config(history: str, web: FakeSlack, actions: str) -> Any:
    return parse_config(f"""
agent: {{history: "{history}", listen: "127.0.0.1:{free_port()}", self_check: false}}
alerting:
  slack: {{token: "{TOKEN}", default_channel: "#ml-alerts", base_url: "{web.base_url}",
          timeout: 2s, charts: false}}
  group_by: [alertname, model]
  group_wait: 0s
  group_interval: 200ms
  delivery: {{tick: 100ms, retry_initial: 200ms, retry_max: 1s, pace: 0s}}
slack_actions:
{actions}
""")


def _socket_mode(socket: SocketModeStandIn) -> str:
    return (f'  app_token: "{APP_TOKEN}"\n  base_url: "{socket.base_url}"\n'
            '  allow: {default: {users: [U0ANA]}}')


@contextlib.asynccontextmanager
async def running(*configs: Any) -> AsyncIterator[list[Agent]]:
    agents = [Agent(c) for c in configs]
    try:
        for agent in agents:
            await agent.start()
        yield agents
    finally:
        for agent in agents:
            await agent.stop()


async def until(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def shown(web: FakeSlack, ts: str) -> list[dict[str, Any]]:
    msg = next(m for m in web.messages if m.ts == ts)
    edits = [u["blocks"] for u in msg.updates if u.get("blocks")]
    return edits[-1] if edits else list(msg.blocks or [])


def buttons(blocks: list[dict[str, Any]]) -> set[str]:
    return {e.get("action_id", "") for b in blocks if b.get("type") == "actions"
            for e in b["elements"] if str(e.get("action_id", "")).startswith("mlwarden:")}


async def press(socket: SocketModeStandIn, web: FakeSlack, ts: str, action_id: str,
                **how: Any) -> Any:
    delivery = await socket.press(shown(web, ts), action_id, user="U0ANA", name="ana",
                                  message_ts=ts, **how)
    await socket.wait(lambda: delivery.acked.is_set(), 10, f"the ack of {action_id}")
    return delivery


async def test_silence_until_resolved_ends_with_the_incident_and_the_buttons_go(tmp_path, slack):
    web, socket = slack
    config = _config(f"sqlite:///{tmp_path / 'h.db'}", web, _socket_mode(socket))
    async with running(config) as (agent,):
        await until(lambda: agent.slack_actions.receiver.state == "connected", 10, "Socket Mode")
        now = time.time()
        event = fire("EndpointDown", {"model": "ranker"}, now, severity="critical")
        agent.alerting.alerts_changed([event], now)
        msg = await until(lambda: web.top_level(), 10, "the alert message")
        ts = msg[0].ts
        silences = agent.alerting.silences

        # Silence until resolved, then Unsilence, then Silence until resolved again
        await press(socket, web, ts, "mlwarden:silence:resolved")
        await until(lambda: "mlwarden:unsilence" in buttons(shown(web, ts)), 10, "Unsilence")
        assert "until the alert resolves" in json.dumps(shown(web, ts))
        (first,) = silences.list(now=time.time())
        assert {str(m) for m in first.matchers} >= {'alertname=EndpointDown', 'model=ranker'}
        await press(socket, web, ts, "mlwarden:unsilence")
        await until(lambda: "mlwarden:silence:1h" in buttons(shown(web, ts)), 10,
                    "the silence buttons again")
        assert silences.list(now=time.time()) == []
        assert any("Unsilenced by <@U0ANA> (1 silence ended)" in m.text
                   for m in web.replies(ts))
        await press(socket, web, ts, "mlwarden:silence:resolved")
        await until(lambda: silences.list(now=time.time()), 10, "the second silence")

        # the incident resolves: the silence ends with it, the message loses its buttons
        # and keeps the line saying who silenced it
        done = time.time()
        agent.alerting.alerts_changed([resolve(event, done)], done)
        await until(lambda: any("Resolved" in m.text for m in web.replies(ts)), 10,
                    "the resolution in the thread")
        await until(lambda: "RESOLVED" in json.dumps(shown(web, ts)), 10, "the resolved message")
        assert buttons(shown(web, ts)) == set(), shown(web, ts)
        assert "Silenced by <@U0ANA> until the alert resolves" in json.dumps(shown(web, ts))
        assert silences.list(now=time.time()) == []
        (ended,) = [s for s in silences.list(now=time.time(), include_expired=True)
                    if s.expired_at is not None and s.id != first.id]
        assert ended.expired_at >= done - 1
        status = agent.status()["components"]["slack_actions"]
    assert status["outcomes"] == {"applied": 3} and status["store_errors"] == 0, status


async def test_two_agents_on_postgresql_one_press_one_acknowledgement(pg_url, slack):
    """Both agents hold a Socket Mode connection; Slack gives the press to both at once (a
    redelivery racing the first delivery): it is applied, answered and echoed once."""
    web, socket = slack
    configs = [_config(pg_url, web, _socket_mode(socket)) for _ in range(2)]
    async with running(*configs) as agents:
        await socket.wait(lambda: len(socket.open_conns()) == 2, 10, "two connections")
        now = time.time()
        event = fire("EndpointDown", {"model": "ranker"}, now, severity="critical")
        for agent in agents:
            agent.alerting.alerts_changed([event], now)
        msg = await until(lambda: web.top_level(), 10, "the alert message")
        ts = msg[0].ts
        await asyncio.sleep(0.5)  # room for a second message, were one coming
        assert len(web.top_level()) == 1
        delivery = await socket.press(shown(web, ts), "mlwarden:acknowledge", user="U0ANA",
                                      name="ana", message_ts=ts, broadcast=True)
        await socket.wait(lambda: delivery.acked.is_set(), 15, "the ack")
        await until(lambda: "Acknowledged by <@U0ANA>" in json.dumps(shown(web, ts)), 10,
                    "the message edit")
        await asyncio.sleep(1.0)  # room for a second edit, were one coming
        statuses = [a.status()["components"]["slack_actions"] for a in agents]
        store = agents[0].slack_actions.store
        acks = store.actions(rule="EndpointDown")
    edits = [u for m in web.messages if m.ts == ts for u in m.updates
             if "Acknowledged" in json.dumps(u["blocks"])]
    assert len(edits) == 1, edits
    assert sum("Acknowledged by" in m.text for m in web.replies(ts)) == 1
    assert sum(s["outcomes"].get("applied", 0) for s in statuses) == 1, statuses
    assert [(a.action, a.state, a.user_id) for a in acks] == [("acknowledge", "done", "U0ANA")]
    assert len([r for r in socket.replies if "Acknowledged" in r.body["text"]]) == 1


def _signed(body: str, ts: int) -> dict[str, str]:
    base = f"v0:{ts}:{body}".encode()
    sig = "v0=" + hmac.new(SECRET.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": str(ts), "X-Slack-Signature": sig,
            "Content-Type": "application/x-www-form-urlencoded"}


async def test_http_mode_in_the_agent(tmp_path, slack):
    """HTTP mode: the agent serves the Request URL; a signed press acknowledges the alert and
    the message is edited, an unsigned one changes nothing."""
    web, socket = slack
    port = free_port()
    actions = (f'  mode: http\n  http: {{signing_secret: "{SECRET}", listen: "127.0.0.1:{port}"}}'
               '\n  allow: {default: {users: [U0ANA]}}')
    config = _config(f"sqlite:///{tmp_path / 'h.db'}", web, actions)
    async with running(config) as (agent,):
        # a reload builds new notifiers: they carry the buttons too
        await agent.alerting.reconfigure(config.alerting)
        assert agent.alerting.notifiers["slack"].actions is agent.slack_actions.hooks
        now = time.time()
        agent.alerting.alerts_changed([fire("GpuIdle", {"model": "ranker"}, now)], now)
        msg = await until(lambda: web.top_level(), 10, "the alert message")
        ts = msg[0].ts
        payload = block_actions_payload(shown(web, ts), "mlwarden:acknowledge", user="U0ANA",
                                        name="ana", message_ts=ts,
                                        response_url=f"http://127.0.0.1:{socket.port}/actions/"
                                                     "T0MLTEAM01/1/abc")
        body = urlencode({"payload": json.dumps(payload)})
        url = f"http://127.0.0.1:{port}/slack/actions"
        async with aiohttp.ClientSession() as http:
            async with http.post(url, data=body, headers={
                    **_signed(body, int(time.time())), "X-Slack-Signature": "v0=" + "0" * 64}) as r:
                assert r.status == 401
            assert agent.slack_actions.store.actions(rule="GpuIdle") == []
            async with http.post(url, data=body, headers=_signed(body, int(time.time()))) as r:
                assert r.status == 200
        await until(lambda: "Acknowledged by <@U0ANA>" in json.dumps(shown(web, ts)), 10,
                    "the message edit")
        await socket.wait(lambda: socket.replies, 10, "the ephemeral answer")
        status = agent.status()["components"]["slack_actions"]
    assert status["mode"] == "http" and status["accepted"] == 1 and status["refused"] == 1
