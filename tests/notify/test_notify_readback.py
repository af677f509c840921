"""Bot mode never loses a notification: a read-back that cannot be done (a scope the token
lacks, a method Slack does not know, a rate limit, a 5xx, a timeout) leads to posting, and
a notification is given up only when posting itself is impossible, then loudly.

Slack is the strict fake of fake_slack.py (Slack cannot run here); it answers read-back
methods the way Slack does (``missing_scope`` with ``needed``/``provided``,
``unknown_method``, ``X-OAuth-Scopes``). Time is the dispatcher's injected clock, so the
two-minute outage keeps its shape without the test sleeping for minutes; the same outage
with a real SIGKILL of the real daemon is tests/faults/test_slack_readback.py.
"""

from __future__ import annotations

import json
import logging

import pytest
from sqlalchemy import func, select

from agent.alerting.config import AlertingConfig
from agent.alerting.dispatch import Dispatcher
from agent.history.tables import outbox
from agent.samples import Status
from tests.alerting.helpers import Clock, fire, resolve, store
from tests.notify.fake_slack import ALL_SCOPES, DOCUMENTED_BEFORE, TOKEN, FakeSlack

pytestmark = pytest.mark.integration

READ_BACK = {"conversations.history", "conversations.replies", "conversations.list"}


def cfg(base_url: str, **slack: object) -> AlertingConfig:
    return AlertingConfig.model_validate(
        {
            "slack": {
                "token": TOKEN,
                "default_channel": "#ml-alerts",
                "base_url": base_url,
                "timeout": 1,
                "charts": False,
                **slack,
            },
            "group_by": ["alertname"],
            "group_wait": 0,
            "group_interval": 5,
            "repeat_interval": 3600,
            "delivery": {"retry_initial": 2, "retry_max": 30, "pace": 1, "late_after": 60},
        }
    )


def states(engine) -> dict[str, int]:
    with engine.connect() as conn:
        query = select(outbox.c.state, func.count()).group_by(outbox.c.state)
        return dict(conn.execute(query).all())


def names(slack: FakeSlack) -> list[str]:
    return [m.text.split("]")[1].split(":")[0].strip() for m in slack.top_level()]


# How the read-back fails: the token's scopes, methods Slack does not know, or a failure
# injected on the read-back methods only.
READBACK_CASES = {
    "works": dict(scopes=ALL_SCOPES),
    "missing_scope": dict(scopes=frozenset({"chat:write", "files:write"})),
    "documented_scopes": dict(scopes=DOCUMENTED_BEFORE),  # no channels:read for the name
    "unknown_method": dict(scopes=ALL_SCOPES, forget=READ_BACK),
    "rate_limited": dict(scopes=ALL_SCOPES, fail="429"),
    "server_error": dict(scopes=ALL_SCOPES, fail="500"),
    "timeout": dict(scopes=ALL_SCOPES, fail="timeout"),
}


@pytest.mark.parametrize("case", list(READBACK_CASES))
async def test_a_read_back_that_cannot_be_done_never_loses_the_notification(tmp_path, case):
    """Slack stores the post but its answer is lost; the retry must read back. Where it can,
    the message is found (exactly once); where it cannot, it is posted again (at least once)."""
    spec = READBACK_CASES[case]
    slack = await FakeSlack(scopes=spec["scopes"], forget=spec.get("forget")).start()
    slack.hang_seconds = 2
    clock = Clock()
    engine = store(tmp_path)
    d = Dispatcher(cfg(slack.base_url), engine, clock=clock)
    try:
        slack.fail("lost_response", {"chat.postMessage"}, times=1)
        d.alerts_changed([fire("AlphaDown", {"model": "a"}, clock.now)], clock.now)
        await d.tick(clock.now)
        assert len(slack.top_level()) == 1  # Slack has it; the agent does not know
        if "fail" in spec:
            slack.fail(spec["fail"], READ_BACK)
        for _ in range(40):
            clock.advance(1)
            await d.tick(clock.now)
        status = d.status()
    finally:
        await d.stop()
        await slack.stop()
    assert states(engine) == {"sent": 1}, "delivered, never dead"
    assert status["receivers"]["slack"]["broken"] is None and status["status"] == "ok"
    assert not slack.refused, slack.refused
    if case == "works":
        assert names(slack) == ["AlphaDown"], "read back: found, not posted twice"
    else:
        assert names(slack) == ["AlphaDown", "AlphaDown"], "read-back impossible: posted again"
        assert d.notifiers["slack"].readback_failures >= 1


@pytest.mark.parametrize("case", ["works", "missing_scope", "documented_scopes", "unknown_method"])
async def test_two_minute_outage_with_restart_delivers_every_notification(tmp_path, case):
    """Slack answers 500 for two minutes while three alerts fire and one resolves; the agent
    restarts in the middle; the first post after the outage loses its answer. Every
    notification arrives: exactly once where the read-back works, at least once where not."""
    spec = READBACK_CASES[case]
    slack = await FakeSlack(scopes=spec["scopes"], forget=spec.get("forget")).start()
    slack.hang_seconds = 2
    clock = Clock()
    t0 = clock.now
    engine = store(tmp_path)
    d = Dispatcher(cfg(slack.base_url), engine, clock=clock)
    slack.fail("500")
    a = fire("AlphaDown", {"model": "a"}, t0)
    events = {
        0: [a],
        20: [fire("BetaDown", {"model": "b"}, t0 + 20)],
        40: [fire("GammaDown", {"model": "c"}, t0 + 40)],
        70: [resolve(a, t0 + 70)],
    }
    try:
        restarted = False
        while clock.now < t0 + 420:
            elapsed = round(clock.now - t0)
            if elapsed == 60 and not restarted:
                await d.stop()
                d = Dispatcher(cfg(slack.base_url), engine, clock=clock)
                restarted = True
            if elapsed == 120:  # Slack is back, but the first answer gets lost
                slack.fail("lost_response", {"chat.postMessage"}, times=1)
            for ev in events.pop(elapsed, []):
                d.alerts_changed([ev], clock.now)
            await d.tick(clock.now)
            clock.advance(1)
        status = d.status()
    finally:
        await d.stop()
        await slack.stop()
    assert states(engine) == {"sent": 4}, "every notification delivered, none dead"
    assert status["status"] == "ok" and status["receivers"]["slack"]["dropped"] == 0
    assert not slack.refused, slack.refused
    top = names(slack)
    if case == "works":
        assert top == ["AlphaDown", "BetaDown", "GammaDown"]
        assert len(slack.messages) == 4, "exactly once"
    else:
        assert top == ["AlphaDown", "AlphaDown", "BetaDown", "GammaDown"], "at least once"
        assert len(slack.messages) == 5
    alpha = slack.top_level()[-3]  # the one the agent recorded: the resolution threads under it
    assert [r.text.splitlines()[0] for r in slack.replies(alpha.ts)] == [
        ":white_check_mark: Resolved after 1 min."
    ]


@pytest.mark.parametrize(
    "error, fix",
    [
        ("channel_not_found", "invite the bot"),
        ("not_in_channel", "/invite"),
        ("invalid_auth", "Bot User OAuth Token"),
        ("account_inactive", "reinstall the Slack app"),
    ],
)
async def test_posting_impossible_is_loud_and_the_console_gets_it(
    tmp_path, slack, caplog, capsys, error, fix
):
    caplog.set_level(logging.WARNING)
    clock = Clock()
    engine = store(tmp_path)
    d = Dispatcher(cfg(slack.base_url), engine, clock=clock)
    slack.fail(error, {"chat.postMessage"})
    d.alerts_changed([fire("AlphaDown", {"model": "a"}, clock.now)], clock.now)
    for _ in range(3):
        await d.tick(clock.now)
        clock.advance(1)
    d.alerts_changed([fire("BetaDown", {"model": "b"}, clock.now)], clock.now)
    for _ in range(3):
        await d.tick(clock.now)
        clock.advance(1)
    status = d.status()
    result = d.metrics(clock.now)
    await d.stop()
    posts = [c for c in slack.calls if c[0] == "chat.postMessage"]
    assert len(posts) == 1, "one clear refusal, then the receiver stops trying"
    assert status["status"] == "critical"
    assert status["receivers"]["slack"]["fallback"] == "console"
    assert error in status["problems"][0] and fix in status["problems"][0]
    assert result.status is Status.CRITICAL and fix in result.message
    logged = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(error in m and fix in m and "go to 'console'" in m for m in logged), logged
    out = capsys.readouterr().out
    assert "[FIRING:1] AlphaDown" in out and "[FIRING:1] BetaDown" in out, out
    assert states(engine) == {"dead": 2, "sent": 2}, "dead at Slack, delivered on the console"
    assert TOKEN not in json.dumps(status) + caplog.text


async def test_missing_chat_write_names_the_scope_and_the_fix(tmp_path, caplog, capsys):
    caplog.set_level(logging.WARNING)
    slack = await FakeSlack(scopes=frozenset({"files:write", "channels:history"})).start()
    clock = Clock()
    d = Dispatcher(cfg(slack.base_url), store(tmp_path), clock=clock)
    d.alerts_changed([fire("AlphaDown", {"model": "a"}, clock.now)], clock.now)
    for _ in range(3):
        await d.tick(clock.now)
        clock.advance(1)
    status = d.status()
    await d.stop()
    await slack.stop()
    assert status["status"] == "critical"
    problem = status["problems"][0]
    assert "missing_scope" in problem and "lacks chat:write" in problem
    assert "OAuth & Permissions" in problem
    assert "[FIRING:1] AlphaDown" in capsys.readouterr().out


async def test_a_configured_fallback_gets_what_slack_cannot_post(tmp_path, slack, capsys):
    clock = Clock()
    config = AlertingConfig.model_validate(
        {
            "slack": {"token": TOKEN, "base_url": slack.base_url, "charts": False,
                      "fallback": "hook"},
            "receivers": [{"name": "hook", "type": "webhook", "url": slack.webhook_url}],
            "group_wait": 0,
        }
    )
    d = Dispatcher(config, store(tmp_path), clock=clock)
    slack.fail("channel_not_found", {"chat.postMessage"})
    d.alerts_changed([fire("AlphaDown", {"model": "a"}, clock.now)], clock.now)
    for _ in range(3):
        await d.tick(clock.now)
        clock.advance(1)
    await d.stop()
    assert len(slack.webhook_posts) == 1 and "AlphaDown" in slack.webhook_posts[0]["text"]
    assert "AlphaDown" not in capsys.readouterr().out


async def test_refused_content_goes_out_as_plain_text(tmp_path, slack):
    clock = Clock()
    d = Dispatcher(cfg(slack.base_url), store(tmp_path), clock=clock)
    slack.fail("invalid_blocks", {"chat.postMessage"}, times=1)
    d.alerts_changed([fire("AlphaDown", {"model": "a"}, clock.now)], clock.now)
    await d.tick(clock.now)
    await d.stop()
    [msg] = slack.top_level()
    assert msg.blocks is None and "[FIRING:1] AlphaDown" in msg.text
    assert msg.metadata["event_payload"]["dedup"], "still findable by a later read-back"
    assert d.status()["receivers"]["slack"]["sent"] == 1


async def test_a_deleted_thread_and_a_refused_update_still_deliver(tmp_path, slack):
    clock = Clock()
    engine = store(tmp_path)
    d = Dispatcher(cfg(slack.base_url), engine, clock=clock)
    a = fire("AlphaDown", {"model": "a"}, clock.now)
    b = fire("AlphaDown", {"model": "b"}, clock.now)
    d.alerts_changed([a, b], clock.now)
    for _ in range(2):
        await d.tick(clock.now)
        clock.advance(1)
    [parent] = slack.top_level()
    slack.fail("cant_update_message", {"chat.update"})
    d.alerts_changed([resolve(a, clock.now)], clock.now)
    for _ in range(8):
        await d.tick(clock.now)
        clock.advance(1)
    assert len(slack.replies(parent.ts)) == 1 and not parent.updates
    slack.recover()
    slack.delete(parent.ts)  # someone deleted the incident's message
    d.alerts_changed([resolve(b, clock.now)], clock.now)
    for _ in range(8):
        await d.tick(clock.now)
        clock.advance(1)
    await d.stop()
    assert [m.text for m in slack.top_level()] == ["[RESOLVED] AlphaDown"]
    assert states(engine) == {"sent": 3}
