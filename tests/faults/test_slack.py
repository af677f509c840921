"""Slack down (500), slow (no answer before the timeout) and rate limiting (429 with
Retry-After) while alerts fire, inside the real agent (``agent.app.Agent``: store,
dispatcher, Slack notifier and HTTP server, all as ``mlwarden run`` builds them).

Slack is the strict fake of tests/notify/fake_slack.py (Slack cannot run here). The first
test hands alerts to the dispatcher one per phase (so their order is known); the second runs
the real `mlwarden run`, whose own rules fire the alerts. After each phase the agent runs
and /status names the failure; afterwards every alert arrived exactly once.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from agent.app import Agent
from agent.config import parse_config
from tests.alerting.helpers import fire
from tests.notify.fake_slack import TOKEN, FakeSlack
from tests.support.procs import free_port

pytestmark = pytest.mark.integration


async def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


async def test_slack_down_slow_and_rate_limiting_while_alerts_fire(tmp_path, caplog):
    caplog.set_level("WARNING")
    slack = await FakeSlack().start()
    slack.hang_seconds = 2.0
    port = free_port()
    config = parse_config(f"""
agent: {{history: "sqlite:///{tmp_path / 'h.db'}", listen: "127.0.0.1:{port}", self_check: false}}
alerting:
  slack: {{token: "{TOKEN}", default_channel: "#ml-alerts", base_url: "{slack.base_url}", timeout: 1s,
          charts: false}}
  group_by: [alertname]
  group_wait: 0s
  delivery: {{tick: 100ms, retry_initial: 200ms, retry_max: 1s, pace: 0s}}
""")
    agent = Agent(config)
    await agent.start()
    try:
        async with aiohttp.ClientSession() as http:
            async def receiver() -> dict:
                async with http.get(f"http://127.0.0.1:{port}/status") as resp:
                    assert resp.status == 200
                    return (await resp.json())["components"]["alerting"]["receivers"]["slack"]

            phases = (("500", ("500",)), ("timeout", ("timed out", "timeout")), ("429", ("rate", "429")))
            seen = {}
            for i, (mode, words) in enumerate(phases):
                slack.fail(mode, retry_after=1)
                attempts = (await receiver())["failed_attempts"]
                now = time.time()
                agent.alerting.alerts_changed([fire(f"Alert{i}", {"model": f"m{i}"}, now)], now)

                async def says() -> bool:
                    r = await receiver()
                    text = (r["last_error"] or "").lower()
                    return r["failed_attempts"] > attempts and any(w in text for w in words)

                try:
                    await wait_until(says, 20, f"/status to say {words} while Slack is in mode {mode}")
                except AssertionError as exc:
                    raise AssertionError(f"{exc}: {await receiver()}") from None
                seen[mode] = (await receiver())["last_error"]
                assert not slack.top_level(), "nothing may arrive while Slack fails"
            slack.recover()

            async def all_sent() -> bool:
                return (await receiver())["sent"] >= 3

            await wait_until(all_sent, 30, "the three notifications after Slack recovers")
            await asyncio.sleep(1.0)  # room for a duplicate to show up, if one were coming
            status = await receiver()
    finally:
        await agent.stop()
        await slack.stop()
    names = [m.text.split("]")[1].split(":")[0].strip() for m in slack.top_level()]
    assert names == ["Alert0", "Alert1", "Alert2"], names
    assert status["dropped"] == 0 and status["broken"] is None, status
    assert not slack.refused, slack.refused
    logged = " ".join(r.getMessage() for r in caplog.records).lower()
    for mode, text in seen.items():  # what /status said is in the log too
        assert text.lower() in logged, (mode, text)


DAEMON_CONFIG = """
agent:
  listen: 127.0.0.1:{{port}}
  history: sqlite:///{{db}}
  self_check: false
  log_format: json
rules:
  - {{{{alert: ModelDown, metric: mlwarden.check.status, where: {{{{check: "m*"}}}}, op: ">=",
      threshold: 2, group_by: [check], severity: critical, summary: "{{{{check}}}} is down"}}}}
alerting:
  slack: {{{{token: "{token}", default_channel: "#ml-alerts", base_url: "{url}", timeout: 1s,
          charts: false}}}}
  group_by: [alertname, check]
  group_wait: 0s
  delivery: {{{{tick: 100ms, retry_initial: 200ms, retry_max: 1s, pace: 0s}}}}
checks:
{checks}
"""


def test_the_daemon_rides_out_slack_down_slow_and_rate_limiting(tmp_path):
    """The same three faults under the real `mlwarden run`, alerts fired by its own rules."""
    from tests.faults.daemon import Daemon
    from tests.faults.threaded_slack import ThreadedSlack
    from tests.support.procs import wait_for

    down_at = time.time() + 2
    checks = "\n".join(f"  - {{{{type: test_down_at, name: m{i}, interval: 300ms, down_at: {down_at}}}}}"
                       for i in range(3))
    with ThreadedSlack() as slack:
        slack.fake.hang_seconds = 2.0
        slack.call(slack.fake.fail, "500")
        body = DAEMON_CONFIG.format(token=TOKEN, url=slack.fake.base_url, checks=checks)
        with Daemon(tmp_path, body) as agent:
            def receiver() -> dict:
                return agent.status()["components"]["alerting"]["receivers"]["slack"]

            seen = {}
            for mode, words in (("500", ("500",)), ("timeout", ("timed out", "timeout")),
                                ("429", ("rate", "429"))):
                slack.call(slack.fake.fail, mode, retry_after=1)
                attempts = receiver()["failed_attempts"]

                def says() -> bool:
                    r = receiver()
                    text = (r["last_error"] or "").lower()
                    return r["failed_attempts"] > attempts and any(w in text for w in words)

                wait_for(says, 30, what=f"/status to say {words} while Slack is in mode {mode}")
                seen[mode] = receiver()["last_error"]
                assert agent.alive()
                assert not slack.call(slack.fake.top_level)
            slack.call(slack.fake.recover)
            wait_for(lambda: receiver()["sent"] >= 3, 30, what="three notifications after recovery")
            time.sleep(1.0)  # room for a duplicate, if one were coming
            final = receiver()
            assert agent.alive()
        texts = slack.call(lambda: [m.text for m in slack.fake.top_level()])
        refused = slack.call(lambda: list(slack.fake.refused))
    assert sorted(t.split(": ", 1)[1] for t in texts) == [f"m{i} is down" for i in range(3)], texts
    assert final["dropped"] == 0 and final["broken"] is None, final
    assert not refused, refused
    log = agent.log()
    for text in seen.values():
        assert text.split(":")[-1].strip() in log, text
