"""The agent killed with SIGKILL at random points while alerts fire: every alert reaches
Slack exactly once after the restarts.

The real daemon runs rules over checks that go CRITICAL one after another (``test_down_at``
in tests/faults/runner.py); Slack is the strict fake (it cannot run here) and "loses" the
answer to some posts (the message is stored, the agent never hears back), the case where a
kill or a timeout between sending and recording could post twice. The kill points are drawn
from a seeded generator, printed, so a failure can be replayed.
"""

from __future__ import annotations

import os
import random
import signal
import time

import pytest

from tests.faults.daemon import Daemon
from tests.faults.threaded_slack import ThreadedSlack
from tests.notify.fake_slack import TOKEN
from tests.support.procs import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

N_ALERTS = 6
SPACING = 1.5  # seconds between two checks going down


def config(slack_url: str, t0: float) -> str:
    checks = "\n".join(
        f"  - {{{{type: test_down_at, name: m{i}, interval: 300ms, down_at: {t0 + 1 + i * SPACING}}}}}"
        for i in range(N_ALERTS))
    return f"""
agent:
  listen: 127.0.0.1:{{port}}
  history: sqlite:///{{db}}
  self_check: false
  log_format: json
  shutdown_timeout: 1s
history:
  batch_interval: 100ms
rules_engine:
  evaluation_interval: 500ms
rules:
  - {{{{alert: ModelDown, metric: mlwarden.check.status, where: {{{{check: "m*"}}}}, op: ">=", threshold: 2,
      group_by: [check], severity: critical, summary: "{{{{check}}}} is down"}}}}
alerting:
  slack: {{{{token: "{TOKEN}", default_channel: "#ml-alerts", base_url: "{slack_url}", timeout: 1s, charts: false}}}}
  group_by: [alertname, check]
  group_wait: 0s
  send_resolved: false
  delivery: {{{{tick: 100ms, retry_initial: 200ms, retry_max: 1s, pace: 0s}}}}
checks:
{checks}
"""


@pytest.mark.parametrize("seed", [int(os.environ.get("MLWARDEN_FAULT_SEED", "11"))])
def test_sigkill_at_random_points_while_alerts_fire_delivers_each_once(tmp_path, seed):
    rng = random.Random(seed)
    t0 = time.time() + 3  # after the first start-up
    window = 1 + N_ALERTS * SPACING + 1
    kills = sorted(rng.uniform(0, window) for _ in range(5))
    print(f"seed {seed}: SIGKILL at t0+{[round(k, 2) for k in kills]}")
    with ThreadedSlack() as slack:
        slack.fake.hang_seconds = 2.0
        # two posts are stored by Slack but their answers are lost
        slack.call(slack.fake.fail, "lost_response", methods={"chat.postMessage"}, times=2)
        agent = Daemon(tmp_path, config(slack.fake.base_url, t0)).start()
        restarts = 0
        try:
            for at in kills:
                time.sleep(max(0.0, t0 + at - time.time()))
                assert agent.alive(), agent.log()[-2000:]
                agent.proc.signal(signal.SIGKILL)
                agent.proc.wait(timeout=10)
                agent.start()
                restarts += 1

            def all_delivered() -> bool:
                return len(slack.call(slack.fake.top_level)) >= N_ALERTS

            try:
                wait_for(all_delivered, 60, what=f"{N_ALERTS} alerts at Slack")
            except AssertionError as exc:  # say what did arrive and what the agent logged
                posted = slack.call(lambda: [m.text for m in slack.fake.top_level()])
                raise AssertionError(f"{exc}; Slack has {posted}; agent log ends:\n"
                                     f"{agent.log()[-3000:]}") from None
            time.sleep(2.0)  # room for a duplicate, if one were coming
            alerting = agent.status()["components"]["alerting"]
            assert agent.alive()
        finally:
            agent.stop()
        messages = slack.call(lambda: [m.text for m in slack.fake.top_level()])
        refused = slack.call(lambda: list(slack.fake.refused))
    assert restarts == len(kills)
    names = sorted(next(f"m{i}" for i in range(N_ALERTS) if f"m{i} is down" in text) for text in messages)
    assert names == [f"m{i}" for i in range(N_ALERTS)], (seed, messages)
    assert not refused, refused
    assert alerting["receivers"]["slack"]["dropped"] == 0, alerting
