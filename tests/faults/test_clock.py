"""Wall-clock jumps (NTP step, VM resume, a wrong clock fixed by hand), injected through the
dispatcher's clock seam (``Dispatcher(clock=...)``, the same callable the running agent
passes ``time.time`` as). Forward: one repeat, not one per missed interval, nothing twice.
Backward: notifications and retries already scheduled are not held back for the size of
the jump. Slack is the strict fake (it cannot run here).

Not covered here: the scheduler (APScheduler reads the system clock itself; stepping the
machine's clock would disturb every other process on it) — see docs/operations.md.
"""

from __future__ import annotations

import pytest

from agent.alerting.config import AlertingConfig
from agent.alerting.dispatch import Dispatcher
from tests.alerting.helpers import Clock, fire, store
from tests.notify.fake_slack import TOKEN, FakeSlack

pytestmark = pytest.mark.integration

HOUR = 3600.0


@pytest.fixture
async def slack():
    fake = await FakeSlack().start()
    yield fake
    await fake.stop()


def dispatcher(tmp_path, slack: FakeSlack, clock: Clock) -> Dispatcher:
    config = AlertingConfig.model_validate({
        "slack": {"token": TOKEN, "default_channel": "#ml-alerts", "base_url": slack.base_url,
                  "timeout": 1, "charts": False},
        "group_by": ["alertname"], "group_wait": 0, "group_interval": 5, "repeat_interval": HOUR,
        "delivery": {"retry_initial": 2, "retry_max": 30, "pace": 0},
    })
    return Dispatcher(config, store(tmp_path), clock=clock)


async def run_for(d: Dispatcher, clock: Clock, seconds: int) -> None:
    for _ in range(seconds):
        await d.tick(clock.now)
        clock.advance(1)


async def test_backward_jump_does_not_hold_back_a_group_update(tmp_path, slack):
    clock = Clock()
    d = dispatcher(tmp_path, slack, clock)
    d.alerts_changed([fire("ModelDown", {"model": "a"}, clock.now)], clock.now)
    await run_for(d, clock, 3)
    assert len(slack.top_level()) == 1
    clock.advance(-HOUR)  # the clock is stepped back an hour
    d.alerts_changed([fire("ModelDown", {"model": "b"}, clock.now)], clock.now)
    await run_for(d, clock, 10)  # twice the group interval
    parent = slack.top_level()[0]
    assert len(slack.replies(parent.ts)) == 1, "the update waited for the clock to catch up"
    assert len(slack.top_level()) == 1
    await d.stop()


async def test_backward_jump_does_not_hold_back_a_retry(tmp_path, slack):
    clock = Clock()
    d = dispatcher(tmp_path, slack, clock)
    slack.fail("500")
    d.alerts_changed([fire("ModelDown", {"model": "a"}, clock.now)], clock.now)
    await run_for(d, clock, 1)
    assert "500" in d.status()["receivers"]["slack"]["last_error"]
    slack.recover()
    clock.advance(-HOUR)
    await run_for(d, clock, 35)  # longer than the longest backoff
    assert len(slack.top_level()) == 1, "the retry waited for the clock to catch up"
    await d.stop()


async def test_forward_jump_repeats_once_and_sends_nothing_twice(tmp_path, slack):
    clock = Clock()
    d = dispatcher(tmp_path, slack, clock)
    d.alerts_changed([fire("ModelDown", {"model": "a"}, clock.now)], clock.now)
    await run_for(d, clock, 3)
    assert len(slack.top_level()) == 1
    clock.advance(5 * HOUR)  # five repeat intervals pass at once
    await run_for(d, clock, 20)
    parent = slack.top_level()[0]
    replies = slack.replies(parent.ts)
    assert len(replies) == 1, [m.text for m in replies]  # one repeat, not five
    assert len(slack.top_level()) == 1
    await d.stop()


def test_rules_for_and_keep_firing_for_after_a_backward_jump():
    """Through the rules' clock seam (``now`` is passed down): a pending alert whose clock is
    stepped back an hour fires ``for`` after the jump, not an hour later; same for
    ``keep_firing_for``. (Stepped forward, the elapsed time is believed: the agent cannot tell
    a jump from time that passed, and firing early beats firing never.)"""
    from agent.rules.lifecycle import AlertRecord, AlertState, Timing, step

    timing = Timing(for_=60.0, keep_firing_for=60.0)
    rec = AlertRecord(fingerprint="f", rule="Down", labels={})
    t = 10_000.0
    step(rec, True, 1.0, t, timing)
    assert rec.state is AlertState.PENDING
    t -= HOUR  # stepped back
    step(rec, True, 1.0, t, timing)
    assert step(rec, True, 1.0, t + 61, timing) == (AlertState.PENDING, AlertState.FIRING)

    t += 100
    step(rec, False, 0.0, t, timing)  # clears: keep_firing_for starts
    t -= HOUR
    step(rec, False, 0.0, t, timing)
    assert step(rec, False, 0.0, t + 61, timing) == (AlertState.FIRING, AlertState.RESOLVED)
