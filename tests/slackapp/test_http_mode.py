"""HTTP mode: Slack's signed requests to the agent's Request URL, over a real socket.

The requests are what Slack sends for a button press (``application/x-www-form-urlencoded``
with ``payload=<JSON>``, ``X-Slack-Request-Timestamp`` and ``X-Slack-Signature`` =
``v0=`` HMAC-SHA256 of ``v0:{timestamp}:{body}``); the signature is computed here from the
published scheme, independently of the code under test. Answers to the presser go to the
stand-in's response_url.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import time
from urllib.parse import urlencode

import aiohttp
import pytest

from agent.slackapp.config import SlackActionsConfig
from agent.slackapp.http import Refused, SignedRequests
from agent.slackapp.service import SlackActions
from tests.slackapp.helpers import engine_for, incident, message
from tests.slackapp.socket_stand_in import SocketModeStandIn, block_actions_payload

pytestmark = [pytest.mark.integration]
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


def signed(body: bytes, ts: int, secret: str = SECRET) -> dict[str, str]:
    base = b"v0:" + str(ts).encode() + b":" + body
    sig = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": str(ts), "X-Slack-Signature": sig,
            "Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
async def slack():
    stand_in = await SocketModeStandIn().start()
    yield stand_in
    await stand_in.stop()
    assert stand_in.errors == []


@contextlib.asynccontextmanager
async def agent(slack, tmp_path, tolerance="5m"):
    config = SlackActionsConfig(
        mode="http", base_url=slack.base_url, allow={"default": {"users": ["U0ANA"]}},
        http={"signing_secret": SECRET, "listen": "127.0.0.1:0", "timestamp_tolerance": tolerance})
    engine = engine_for(f"sqlite:///{tmp_path / 'h.db'}")
    actions = SlackActions(config, engine)
    await actions.start()
    try:
        yield actions, f"http://127.0.0.1:{actions.receiver.bound_port}/slack/actions"
    finally:
        await actions.stop()
        engine.dispose()


def press_body(actions, slack, action_id, user="U0ANA"):
    target = incident(actions.store, now=time.time())
    blocks = message(target, actions.store, actions.silences, time.time())
    payload = block_actions_payload(
        blocks, action_id, user=user,
        response_url=f"http://127.0.0.1:{slack.port}/actions/T0MLTEAM01/1/secret")
    return target, urlencode({"payload": json.dumps(payload)}).encode()


async def post(url, body, headers):
    async with aiohttp.ClientSession() as s:
        async with s.post(url, data=body, headers=headers) as r:
            return r.status, await r.text()


async def test_a_signed_press_is_applied_and_answered(slack, tmp_path):
    async with agent(slack, tmp_path) as (actions, url):
        target, body = press_body(actions, slack, "mlwarden:silence:1h")
        assert await post(url, body, signed(body, int(time.time()))) == (200, "")
        (silence,) = actions.silences.list(now=time.time())
        assert silence.created_by == "u0ana (Slack U0ANA)"
        await slack.wait(lambda: slack.replies, 10, "the ephemeral answer")
        assert slack.replies[0].body["response_type"] == "ephemeral"
        assert actions.store.actions(target_id=target.id)[0].source == "slack-http"


async def test_bad_signature_old_timestamp_and_replay_are_refused(slack, tmp_path):
    async with agent(slack, tmp_path) as (actions, url):
        _, body = press_body(actions, slack, "mlwarden:silence:1h")
        now = int(time.time())
        status, text = await post(url, body, signed(body, now, secret="not-the-secret"))
        assert (status, text) == (401, "bad signature (is http.signing_secret the app's "
                                       "Signing Secret?)")
        tampered = body.replace(b"silence", b"SILENCE", 1)
        assert (await post(url, tampered, signed(body, now)))[0] == 401
        status, text = await post(url, body, signed(body, now - 301))
        assert status == 401 and "an old request, refused as a replay" in text
        status, text = await post(url, body, {"Content-Type": "application/x-www-form-urlencoded"})
        assert status == 401 and text.startswith("unsigned")
        assert actions.silences.list(now=time.time()) == []  # nothing got through
        headers = signed(body, now)
        assert (await post(url, body, headers))[0] == 200
        status, text = await post(url, body, headers)  # the very same request again
        assert (status, text) == (401, "replayed: this signed request was accepted before")
        assert len(actions.silences.list(now=time.time())) == 1
        assert actions.receiver.status()["refused"] == 5


async def test_the_tolerance_is_configurable_down_from_five_minutes(slack, tmp_path):
    async with agent(slack, tmp_path, tolerance="1m") as (actions, url):
        _, body = press_body(actions, slack, "mlwarden:acknowledge")
        status, _ = await post(url, body, signed(body, int(time.time()) - 90))
        assert status == 401
        assert (await post(url, body, signed(body, int(time.time()) - 30)))[0] == 200


def test_remembered_signatures_are_forgotten_past_the_tolerance_and_bounded():
    clock = [1000.0]
    signed_requests = SignedRequests(SECRET, tolerance=60, clock=lambda: clock[0], remember=3)
    for i in range(5):
        body = f"payload={i}".encode()
        signed_requests.verify(body, signed(body, int(clock[0])))
    assert len(signed_requests._seen) == 3
    clock[0] += 61
    body = b"payload=late"
    signed_requests.verify(body, signed(body, int(clock[0])))
    assert len(signed_requests._seen) == 1
    with pytest.raises(Refused, match="malformed timestamp"):
        signed_requests.verify(body, {"X-Slack-Request-Timestamp": "soon",
                                      "X-Slack-Signature": "v0=00"})
