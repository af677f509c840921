"""The strict Slack fake is held to slack-sdk: what it accepts is what the official client
sends, what it refuses the client's models refuse, and it answers scopes and unknown methods
the way Slack's Web API does (documented answers, see fake_slack.py)."""

from __future__ import annotations

import inspect

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from tests.notify.fake_slack import ALLOWED, SCOPES, TOKEN, BlockError, FakeSlack, validate_blocks

pytestmark = pytest.mark.integration


def test_every_parameter_the_fake_accepts_is_one_slack_sdk_sends():
    for method, params in ALLOWED.items():
        fn = getattr(AsyncWebClient, method.replace(".", "_"))
        sdk = set(inspect.signature(fn).parameters) - {"self", "kwargs"}
        assert params <= sdk, (method, params - sdk)
    assert set(SCOPES) == set(ALLOWED)


@pytest.mark.parametrize(
    "block",
    [
        {"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}},
        {"type": "header", "text": {"type": "mrkdwn", "text": "headers are plain_text"}},
        {"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text",
                                                                      "text": "go"},
                                          "url": "https://x.example", "action_id": "a",
                                          "style": "loud"}]},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "ok", "colour": "red"}]},
    ],
)
def test_blocks_the_official_models_refuse_are_refused(block):
    with pytest.raises(BlockError):
        validate_blocks([block])


async def test_scopes_are_answered_as_slack_does():
    fake = await FakeSlack(scopes=frozenset({"chat:write"}), forget={"conversations.list"}).start()
    client = AsyncWebClient(token=TOKEN, base_url=fake.base_url)
    try:
        resp = await client.auth_test()
        assert resp.headers["X-OAuth-Scopes"] == "chat:write"
        with pytest.raises(SlackApiError) as missing:
            await client.conversations_history(channel="C0ALERTS01")
        assert missing.value.response["error"] == "missing_scope"
        assert missing.value.response["needed"] == "channels:history"
        assert missing.value.response["provided"] == "chat:write"
        assert missing.value.response.headers["X-Accepted-OAuth-Scopes"] == "channels:history"
        with pytest.raises(SlackApiError) as unknown:
            await client.conversations_list()
        assert unknown.value.response["error"] == "unknown_method"
        assert unknown.value.response["req_method"] == "conversations.list"
        posted = await client.chat_postMessage(
            channel="#ml-alerts", text="hi",
            metadata={"event_type": "mlwarden_notification", "event_payload": {"dedup": "k"}},
        )
        assert posted["channel"] == "C0ALERTS01"
        with pytest.raises(SlackApiError) as bad:
            await client.chat_postMessage(channel="#ml-alerts", text="hi",
                                          metadata={"event_type": "x"})
        assert bad.value.response["error"] == "invalid_metadata_format"
    finally:
        await client.session.close() if client.session else None
        await fake.stop()
