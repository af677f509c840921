"""Delivery claims each notification before sending it: a notification another agent is
sending holds its receiver back, and one whose claimer died is sent after the claim expires,
still in order. (SQLite, one process: the other agent is a second Outbox with its own name;
the race between real agents is in tests/fleet/test_outbox_claim.py, on PostgreSQL.)"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from agent.alerting.config import AlertingConfig
from agent.alerting.dispatch import Dispatcher
from agent.notify.stages import KIND
from agent.history.outbox import Outbox
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


async def test_a_restarted_agent_resends_at_once_what_its_killed_predecessor_was_sending(tmp_path, slack):
    """SIGKILL mid-send leaves a row ``sending`` under the dead process's claim; the next
    process on this host takes it back when the store starts instead of waiting 300 s."""
    clock = Clock()
    engine = store(tmp_path)
    host = socket.gethostname()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    owners = {
        "dead process": f"{host}:{gone.pid}:0badc0de.000001",
        "this PID, an earlier life": f"{host}:{os.getpid()}:0badc0de.000002",
        "a live process": f"{host}:{os.getppid()}:0badc0de.000003",
        "another host": f"not-{host}:{gone.pid}:0badc0de.000004",
    }
    boxes = {why: Outbox(engine, owner=owner) for why, owner in owners.items()}
    for why, box in boxes.items():
        box.enqueue(KIND, why, {"n": why}, now=clock.now)
        (item,) = box.due(KIND, now=clock.now, receiver=why)
        assert box.claim(item.id, now=clock.now)
    # an Outbox of this process names itself: its claims are never taken back
    alive_here = Outbox(engine)
    alive_here.enqueue(KIND, "this process", {"n": 0}, now=clock.now)
    (mine,) = alive_here.due(KIND, now=clock.now, receiver="this process")
    assert alive_here.claim(mine.id, now=clock.now)

    assert Outbox(engine).release_orphans() == 2
    claimable = {i.receiver for i in Outbox(engine).due(KIND, now=clock.now)}
    assert claimable == {"dead process", "this PID, an earlier life"}

    d = Dispatcher(cfg(slack.base_url), engine, clock=clock)
    d.outbox.owner = f"{host}:{os.getpid()}:0badc0de.000005"  # as an earlier life of this PID
    try:
        d.alerts_changed([fire("AlphaDown", {"model": "a"}, clock.now)], clock.now)
        assert d.flush(clock.now) == 1
        (alpha,) = d.outbox.due(KIND, now=clock.now, receiver="slack")
        assert d.outbox.claim(alpha.id, now=clock.now)
        d.outbox.set_result(alpha.id, {"sending": True})
    finally:
        await d.stop()
    # the agent is killed here; the next one, on the same store, posts Alpha within a tick
    assert Outbox(engine).release_orphans() == 1
    d2 = Dispatcher(cfg(slack.base_url), engine, clock=clock)
    try:
        await d2.tick(clock.now)
        assert [m.text.split("]")[1].split(":")[0].strip() for m in slack.top_level()] == ["AlphaDown"]
        assert d2.outbox.pending_count(KIND) == 5  # the other receivers' rows: no notifier here
    finally:
        await d2.stop()
        engine.dispose()
