"""Delivery claims each notification before sending it: a notification another agent is
sending holds its receiver back, and one whose claimer died is sent after the claim expires,
still in order. (SQLite, one process: the other agent is a second Outbox with its own name;
the race between real agents is in tests/fleet/test_outbox_claim.py, on PostgreSQL.)"""

from __future__ import annotations

import pytest

from agent.alerting.config import AlertingConfig
from agent.alerting.dispatch import Dispatcher
from agent.notify.stages import KIND
from agent.outbox import Outbox
from tests.alerting.helpers import Clock, fire, store
from tests.notify.fake_slack import TOKEN

pytestmark = pytest.mark.integration


def cfg(base_url: str) -> AlertingConfig:
    return AlertingConfig.model_validate({
        "slack": {"token": TOKEN, "default_channel": "#ml-alerts", "base_url": base_url,
                  "timeout": 1, "charts": False},
        "group_by": ["alertname"], "group_wait": 0, "group_interval": 5,
        "repeat_interval": 3600,
        "delivery": {"retry_initial": 2, "retry_max": 30, "pace": 0},
    })


async def test_a_claimed_notification_holds_the_receiver_until_its_claim_expires(tmp_path, slack):
    clock = Clock()
    engine = store(tmp_path)
    d = Dispatcher(cfg(slack.base_url), engine, clock=clock)
    other = Outbox(engine, owner="agent-b")
    try:
        d.alerts_changed([fire("AlphaDown", {"model": "a"}, clock.now)], clock.now)
        assert d.flush(clock.now) == 1
        (alpha,) = other.due(KIND, now=clock.now)
        # agent-b starts sending Alpha... and dies
        assert other.claim(alpha.id, now=clock.now, timeout=60)
        claimed_at = clock.now
        d.alerts_changed([fire("BetaDown", {"model": "b"}, clock.now)], clock.now)
        for _ in range(30):
            await d.tick(clock.now)
            clock.advance(1)
        assert slack.messages == []  # Alpha is agent-b's; Beta must not overtake it
        assert d.outbox.pending_count(KIND) == 2
        while clock.now <= claimed_at + 61:
            await d.tick(clock.now)
            clock.advance(1)
        names = [m.text.split("]")[1].split(":")[0].strip() for m in slack.top_level()]
        assert names == ["AlphaDown", "BetaDown"]
        assert d.outbox.pending_count(KIND) == 0
    finally:
        await d.stop()
        engine.dispose()
