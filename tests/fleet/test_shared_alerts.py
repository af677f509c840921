"""The same firing alert seen by three agents that share PostgreSQL is one Slack message.

Three alerting dispatchers (issue 8's component), each with its own engine as three agent
processes would have, receive the same firing alert and tick at the same moments against
one database and one Slack. Slack is the strict fake of tests/notify (Slack cannot run
here; the fake checks tokens, parameters and Block Kit limits). The alert events are built
by hand: the rules engine that produces them in a running agent is another issue's part.
"""

from __future__ import annotations

import asyncio

import pytest

from agent.alerting.config import AlertingConfig
from agent.alerting.dispatch import Dispatcher
from agent.history.db import make_engine
from tests.alerting.helpers import Clock, fire, resolve
from tests.notify.fake_slack import TOKEN, FakeSlack

pytestmark = pytest.mark.integration


@pytest.fixture
async def slack():
    fake = await FakeSlack().start()
    yield fake
    await fake.stop()


def _config(fake: FakeSlack) -> AlertingConfig:
    return AlertingConfig.model_validate({
        "slack": {"token": TOKEN, "default_channel": "#ml-alerts", "base_url": fake.base_url,
                  "timeout": 2, "charts": False},
        "group_wait": 0, "group_interval": 10, "repeat_interval": 3600,
        "delivery": {"retry_initial": 5, "retry_max": 60, "pace": 1, "late_after": 60},
    })


async def _tick_all(agents: list[Dispatcher], now: float, together: bool,
                    errors: list[str]) -> None:
    """One tick of every agent; a failed tick is kept, as the dispatcher's loop keeps it."""
    async def tick(d: Dispatcher) -> None:
        try:
            await d.tick(now)
        except Exception as exc:  # noqa: BLE001 - recorded like Dispatcher._run does
            errors.append(f"{type(exc).__name__}: {str(exc).splitlines()[0]}")

    if together:
        await asyncio.gather(*(tick(d) for d in agents))
    else:
        for d in agents:
            await tick(d)


@pytest.mark.parametrize("together", [
    pytest.param(False, id="agents-tick-in-turn"),
    pytest.param(True, id="agents-tick-at-once"),
])
async def test_three_agents_one_firing_alert_one_slack_message(pg_url, pg_engine, slack, together):
    clock = Clock()
    engines = [make_engine(pg_url) for _ in range(3)]
    agents = [Dispatcher(_config(slack), e, clock=clock) for e in engines]
    errors: list[str] = []
    try:
        event = fire("EndpointDown", {"model": "ranker"}, clock.now, severity="critical")
        for d in agents:
            d.alerts_changed([event], clock.now)
        for _ in range(3):
            await _tick_all(agents, clock.now, together, errors)
            clock.advance(1)
        posts = slack.top_level()
        assert len(posts) == 1, f"{len(posts)} Slack messages for one alert; tick errors: {errors}"
        assert "EndpointDown" in str(posts[0].text) + str(posts[0].blocks)

        # the resolution, also seen by all three, is one more notice in the same thread
        done = resolve(event, clock.advance(30))
        for d in agents:
            d.alerts_changed([done], clock.now)
        for _ in range(12):
            await _tick_all(agents, clock.now, together, errors)
            clock.advance(1)
        assert len(slack.top_level()) == 1
        replies = slack.replies(posts[0].ts)
        assert len(replies) == 1, f"{len(replies)} replies for one resolution; tick errors: {errors}"
        assert not errors
    finally:
        for d in agents:
            await d.stop()
        for e in engines:
            e.dispose()
