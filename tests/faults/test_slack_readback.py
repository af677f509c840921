"""Slack down (HTTP 500) while alerts fire, the real daemon SIGKILLed and restarted twice, and
a post whose answer is lost: every notification arrives, exactly once when the token can read
the channel back, at least once (never zero) when it cannot.

The real `mlwarden run` (tests/faults/runner.py) fires the alerts with its own rules; Slack is
the strict fake (tests/notify/fake_slack.py: Slack cannot run here), answering read-back
methods as Slack does, ``missing_scope`` included. The outage is seconds, not minutes, in
real time: the retries it causes are the same, only fewer (the two-minute shape runs on an
injected clock in tests/notify/test_notify_readback.py).
"""

from __future__ import annotations

import signal
import sqlite3
import time

import pytest

from tests.faults.daemon import Daemon
from tests.faults.threaded_slack import ThreadedSlack
from tests.notify.fake_slack import ALL_SCOPES, TOKEN
from tests.support.procs import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

N = 3


def config(slack_url: str, t0: float) -> str:
    checks = "\n".join(
        f"  - {{{{type: test_down_at, name: m{i}, interval: 300ms, down_at: {t0 + 1 + i}}}}}"
        for i in range(N))
    return f"""
agent:
  listen: 127.0.0.1:{{port}}
  history: sqlite:///{{db}}
  self_check: false
  log_format: json
  shutdown_timeout: 1s
history:
  batch_interval: 100ms
rules:
  - {{{{alert: ModelDown, metric: mlwarden.check.status, where: {{{{check: "m*"}}}}, op: ">=", threshold: 2,
      group_by: [check], severity: critical, summary: "{{{{check}}}} is down"}}}}
alerting:
  slack: {{{{token: "{TOKEN}", default_channel: "#ml-alerts", base_url: "{slack_url}", timeout: 1s,
          charts: false}}}}
  group_by: [alertname, check]
  group_wait: 0s
  send_resolved: false
  delivery: {{{{tick: 100ms, retry_initial: 200ms, retry_max: 1s, pace: 0s}}}}
checks:
{checks}
"""


def kill_and_restart(agent: Daemon) -> None:
    assert agent.alive(), agent.log()[-2000:]
    agent.proc.signal(signal.SIGKILL)
    agent.proc.wait(timeout=10)
    agent.start()


@pytest.mark.parametrize("scopes", ["all", "no_read_back"])
def test_outage_sigkill_and_lost_answer_deliver_every_alert(tmp_path, scopes):
    granted = ALL_SCOPES if scopes == "all" else frozenset({"chat:write", "files:write"})
    with ThreadedSlack(scopes=granted) as slack:
        slack.fake.hang_seconds = 3.0
        slack.call(slack.fake.fail, "500")
        t0 = time.time() + 2
        agent = Daemon(tmp_path, config(slack.fake.base_url, t0)).start()
        try:
            def receiver() -> dict:
                return agent.status()["components"]["alerting"]["receivers"]["slack"]

            # all three alerts fired and were tried against the failing Slack
            wait_for(lambda: agent.status()["components"]["alerting"]["notifications_queued"] >= N
                     and receiver()["failed_attempts"] >= N, 30, what="three failed sends")
            kill_and_restart(agent)  # killed in the middle of the outage
            time.sleep(1.0)
            # Slack is back, but it loses its answer to the first post
            slack.call(slack.fake.fail, "lost_response", methods={"chat.postMessage"}, times=1)
            wait_for(lambda: slack.call(lambda: len(slack.fake.messages)) >= 1, 20,
                     what="the post whose answer is lost")
            kill_and_restart(agent)  # killed while it waits for that answer
            slack.call(slack.fake.recover)

            def delivered() -> bool:
                return len({m.text for m in slack.call(slack.fake.top_level)}) >= N

            wait_for(delivered, 30, what=f"{N} alerts at Slack")
            time.sleep(2.0)  # room for a duplicate, if one were coming
            final = receiver()
            status = agent.status()
        finally:
            agent.stop()
        texts = slack.call(lambda: [m.text for m in slack.fake.top_level()])
        refused = slack.call(lambda: list(slack.fake.refused))
        readbacks = slack.call(lambda: [c[0] for c in slack.fake.calls
                                        if c[0].startswith("conversations.")])
    counts = {f"m{i}": sum(f"m{i} is down" in t for t in texts) for i in range(N)}
    assert not refused, refused
    assert final["dropped"] == 0 and final["broken"] is None, final
    assert status["agent"]["status"] == "ok"
    with sqlite3.connect(agent.db) as db:
        rows = dict(db.execute("select state, count(*) from outbox where kind='notification' "
                               "group by state").fetchall())
    assert rows == {"sent": N}, rows
    assert readbacks, "the restarts made the agent read the channel back"
    if scopes == "all":
        assert counts == {f"m{i}": 1 for i in range(N)}, texts  # exactly once
    else:
        assert all(n >= 1 for n in counts.values()), texts  # never zero
        assert sum(counts.values()) == N + 1, texts  # the lost answer's post, twice


async def test_a_channel_slack_cannot_post_to_turns_the_agent_critical(tmp_path, capsys):
    """In the real agent (as `mlwarden run` builds it): /status says CRITICAL and what to fix,
    and the console receiver prints the alert Slack could not take."""
    import aiohttp

    from agent.app import Agent
    from agent.config import parse_config
    from tests.alerting.helpers import fire
    from tests.faults.test_slack import wait_until
    from tests.notify.fake_slack import FakeSlack
    from tests.support.procs import free_port

    slack = await FakeSlack().start()
    port = free_port()
    agent = Agent(parse_config(f"""
agent: {{history: "sqlite:///{tmp_path / 'h.db'}", listen: "127.0.0.1:{port}", self_check: false}}
alerting:
  slack: {{token: "{TOKEN}", default_channel: "#gone", base_url: "{slack.base_url}", timeout: 1s,
          charts: false}}
  group_wait: 0s
  delivery: {{tick: 100ms}}
"""))
    await agent.start()
    try:
        now = time.time()
        agent.alerting.alerts_changed([fire("ModelDown", {"model": "ranker"}, now)], now)
        async with aiohttp.ClientSession() as http:
            async def status() -> dict:
                async with http.get(f"http://127.0.0.1:{port}/status") as resp:
                    return await resp.json()

            async def critical() -> bool:
                doc = await status()
                return (doc["agent"]["status"] == "critical"
                        and doc["components"]["alerting"]["receivers"]["console"]["sent"] == 1)

            await wait_until(critical, 10, "/status to turn critical and the console to print")
            doc = await status()
    finally:
        await agent.stop()
        await slack.stop()
    problems = doc["components"]["alerting"]["problems"]
    assert len(problems) == 1
    assert "channel_not_found" in problems[0] and "invite the bot" in problems[0]
    assert "[FIRING:1] ModelDown" in capsys.readouterr().out
