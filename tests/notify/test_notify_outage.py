"""Slack is down for two minutes while alerts fire and resolve and the agent restarts:
afterwards every notification has arrived exactly once, in order, saying it was late.

Time is the dispatcher's injected clock (the shape of the outage is kept: 120 s of
failures, retries with backoff, a restart at 60 s), so the test does not sleep for minutes.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from agent.alerting.config import AlertingConfig
from agent.alerting.dispatch import Dispatcher
from agent.history.tables import outbox
from tests.alerting.helpers import Clock, fire, resolve, store
from tests.notify.fake_slack import TOKEN

pytestmark = pytest.mark.integration


def cfg(base_url: str) -> AlertingConfig:
    return AlertingConfig.model_validate(
        {
            "slack": {
                "token": TOKEN,
                "default_channel": "#ml-alerts",
                "base_url": base_url,
                "timeout": 1,
                "charts": False,
            },
            "group_by": ["alertname"],
            "group_wait": 0,
            "group_interval": 5,
            "repeat_interval": 3600,
            "delivery": {"retry_initial": 2, "retry_max": 30, "pace": 1, "late_after": 60},
        }
    )


@pytest.mark.parametrize("mode", ["500", "timeout"])
async def test_two_minute_outage_with_restart_delivers_each_once_in_order(tmp_path, slack, mode):
    slack.hang_seconds = 2
    clock = Clock()
    t0 = clock.now
    engine = store(tmp_path)
    d = Dispatcher(cfg(slack.base_url), engine, clock=clock)
    slack.fail(mode)
    a = fire("AlphaDown", {"model": "a"}, t0)
    events = {
        0: [a],
        20: [fire("BetaDown", {"model": "b"}, t0 + 20)],
        40: [fire("GammaDown", {"model": "c"}, t0 + 40)],
        70: [resolve(a, t0 + 70)],
    }
    restarted = False
    while clock.now < t0 + 420:
        elapsed = round(clock.now - t0)
        if elapsed == 60 and not restarted:  # the agent restarts in the middle of the outage
            await d.stop()
            d = Dispatcher(cfg(slack.base_url), engine, clock=clock)
            restarted = True
        if elapsed == 120:
            slack.recover()
        for ev in events.pop(elapsed, []):
            d.alerts_changed([ev], clock.now)
        await d.tick(clock.now)
        clock.advance(1)
    await d.stop()

    top = slack.top_level()
    assert [m.text.split("]")[1].split(":")[0].strip() for m in top] == [
        "AlphaDown",
        "BetaDown",
        "GammaDown",
    ]
    assert all(m.metadata for m in top)
    alpha = top[0]
    assert [r.text.splitlines()[0] for r in slack.replies(alpha.ts)] == [
        ":white_check_mark: Resolved after 1 min."
    ]
    assert "[RESOLVED] AlphaDown" in json.dumps(alpha.updates[-1]["blocks"])
    assert slack.messages.index(slack.replies(alpha.ts)[0]) > slack.messages.index(
        top[2]
    ), "queue order kept"
    for m in top:
        assert "Slack was unreachable" in json.dumps(m.blocks) and "delayed" in json.dumps(m.blocks)
    assert len(slack.messages) == 4
    with engine.connect() as conn:
        states = dict(
            conn.execute(select(outbox.c.state, func.count()).group_by(outbox.c.state)).all()
        )
    assert states == {"sent": 4}
