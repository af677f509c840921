"""Slack actions in the real `mlwarden run`: its own rule fires, its Slack message carries
the buttons, presses arrive over Socket Mode, and what they do shows in Slack, in the
reminders, in `mlwarden alerts history`, in `mlwarden silence list` and in /status.

Slack cannot run here: its Web API is the strict fake of tests/notify/fake_slack.py and
its Socket Mode side the stand-in of tests/slackapp/socket_stand_in.py (both check what
Slack documents: tokens, parameters, Block Kit through slack-sdk's models, envelopes and
acks). Both run on one event loop in a thread, as the daemon is a subprocess.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from typing import Any

import pytest

from tests.faults.daemon import RUNNER, Daemon
from tests.faults.threaded_slack import ThreadedSlack
from tests.notify.fake_slack import TOKEN
from tests.slackapp.socket_stand_in import APP_TOKEN, SocketModeStandIn
from tests.support.procs import http_get, wait_for

pytestmark = pytest.mark.integration

CONFIG = """
agent:
  listen: 127.0.0.1:{{port}}
  history: sqlite:///{{db}}
  self_check: false
  log_format: json
rules:
  - {{{{alert: ModelDown, metric: mlwarden.check.status, where: {{{{check: m1}}}}, op: ">=",
      threshold: 2, group_by: [check], severity: critical, summary: "{{{{check}}}} is down"}}}}
alerting:
  slack: {{{{token: "{token}", default_channel: "#ml-alerts", base_url: "{web}", timeout: 2s,
          charts: false}}}}
  group_by: [alertname, check]
  group_wait: 0s
  group_interval: 500ms
  repeat_interval: 1500ms
  delivery: {{{{tick: 100ms, retry_initial: 200ms, retry_max: 1s, pace: 0s}}}}
slack_actions:
  app_token: "{app}"
  base_url: "{socket}"
  allow:
    default: {{{{users: [U0ANA]}}}}
    chart: {{{{anyone: true}}}}
checks:
  - {{{{type: test_down_at, name: m1, interval: 300ms, down_at: {down_at}}}}}
"""


class Slack:
    """The fake Web API and the Socket Mode stand-in on one loop in a thread."""

    def __init__(self) -> None:
        self.web = ThreadedSlack()
        self.socket: SocketModeStandIn | None = None

    def __enter__(self) -> "Slack":
        self.web.__enter__()
        self.socket = self.run(SocketModeStandIn(ack_timeout=3.0).start())
        return self

    def __exit__(self, *exc: object) -> None:
        if self.socket is not None:
            self.run(self.socket.stop())
        self.web.__exit__(*exc)

    def run(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.web.loop).result(timeout=timeout)

    def call(self, fn: Any, *args: Any) -> Any:
        return self.web.call(fn, *args)

    def alert_message(self) -> Any:
        tops = self.call(lambda: [m for m in self.web.fake.top_level()
                                  if "ModelDown" in (m.text or "")])
        return tops[0] if tops else None

    def shown(self, ts: str) -> list[dict[str, Any]]:
        """The blocks of message ``ts`` as Slack shows it now (its last edit)."""
        def blocks() -> list[dict[str, Any]]:
            msg = next(m for m in self.web.fake.messages if m.ts == ts)
            edits = [u["blocks"] for u in msg.updates if u.get("blocks")]
            return edits[-1] if edits else msg.blocks
        return self.call(blocks)

    def replies(self, ts: str) -> list[str]:
        return self.call(lambda: [m.text for m in self.web.fake.replies(ts)])

    def press(self, ts: str, action_id: str, user: str, name: str, **how: Any) -> Any:
        assert self.socket is not None
        return self.run(self.socket.press(self.shown(ts), action_id, user=user, name=name,
                                          message_ts=ts, **how))


def cli(daemon: Daemon, *args: str) -> str:
    out = subprocess.run([sys.executable, str(RUNNER), *args, "-c", str(daemon.config)],
                         capture_output=True, text=True, timeout=60, cwd=daemon.dir)
    assert out.returncode == 0, out.stderr
    return out.stdout


def buttons(blocks: list[dict[str, Any]]) -> set[str]:
    return {e.get("action_id", "") for b in blocks if b.get("type") == "actions"
            for e in b["elements"] if str(e.get("action_id", "")).startswith("mlwarden:")}


def test_the_daemon_takes_an_acknowledgement_and_a_silence_from_slack(tmp_path):
    with Slack() as slack:
        assert slack.socket is not None
        body = CONFIG.format(token=TOKEN, web=slack.web.fake.base_url, app=APP_TOKEN,
                             socket=slack.socket.base_url, down_at=time.time() + 1)
        with Daemon(tmp_path, body) as agent:
            # the Socket Mode connection is up and /status says so
            wait_for(lambda: agent.status()["components"]["slack_actions"]["state"]
                     == "connected", 30, what="the Socket Mode connection")
            status = agent.status()["components"]["slack_actions"]
            assert status["mode"] == "socket" and status["buttons_on"] == ["slack"], status

            # the rule fires: one message, with the buttons
            msg = wait_for(slack.alert_message, 30, what="the ModelDown message")
            assert buttons(msg.blocks) == {
                "mlwarden:acknowledge", "mlwarden:silence:1h", "mlwarden:silence:4h",
                "mlwarden:silence:resolved", "mlwarden:chart:24h"}, msg.blocks
            # unacknowledged, it is repeated in its thread
            wait_for(lambda: any("Still firing" in t for t in slack.replies(msg.ts)), 15,
                     what="a reminder before anyone acknowledged")

            # someone not on the list presses Acknowledge: told so, nothing changes
            eve = slack.press(msg.ts, "mlwarden:acknowledge", "U0EVE", "eve")
            slack.run(slack.socket.wait(lambda: eve.acked.is_set() and slack.socket.replies,
                                        15, "the answer to eve"))
            assert "not allowed" in slack.socket.replies[-1].body["text"]
            assert slack.socket.replies[-1].body["response_type"] == "ephemeral"

            # ana acknowledges: the message is edited for everyone, the reminders stop
            ana = slack.press(msg.ts, "mlwarden:acknowledge", "U0ANA", "ana")
            slack.run(slack.socket.wait(lambda: ana.acked.is_set(), 15, "the ack of ana's press"))

            def acknowledged() -> bool:
                text = json.dumps(slack.shown(msg.ts))
                return "Acknowledged by <@U0ANA>" in text
            wait_for(acknowledged, 15, what="chat.update with 'Acknowledged by <@U0ANA>'")
            assert "mlwarden:acknowledge" not in buttons(slack.shown(msg.ts))
            wait_for(lambda: any("Acknowledged by <@U0ANA>" in t for t in slack.replies(msg.ts)),
                     15, what="the acknowledgement in the thread")
            repeats = sum("Still firing" in t for t in slack.replies(msg.ts))
            time.sleep(4.5)  # three repeat intervals
            assert sum("Still firing" in t for t in slack.replies(msg.ts)) == repeats

            # the status page's Acknowledged column says who took it
            code, page = http_get(agent.url("/"), timeout=5)
            assert code == 200 and "@ana" in page.decode(), page[-3000:]

            # ana silences it for an hour; the agent's ack is lost with its connection, so
            # Slack delivers the press again (on the next connection): applied once
            silenced = slack.press(msg.ts, "mlwarden:silence:1h", "U0ANA", "ana",
                                   fate="lose_ack")
            wait_for(lambda: "mlwarden:unsilence" in buttons(slack.shown(msg.ts)), 15,
                     what="the message to offer Unsilence")
            shown = json.dumps(slack.shown(msg.ts))
            assert "Silenced by <@U0ANA>, until" in shown and "Acknowledged by <@U0ANA>" in shown
            wait_for(lambda: any("Silenced by <@U0ANA> for 1h, until" in t
                                 for t in slack.replies(msg.ts)), 15,
                     what="the silence's end in the thread")
            slack.run(slack.socket.wait(lambda: silenced.acked.is_set(), 20,
                                        "the redelivered silence press to be acked"))
            assert len(silenced.attempts) == 2 and len(slack.socket.conns) >= 2
            (silence,) = json.loads(cli(agent, "silence", "list", "--json"))
            assert silence["created_by"] == "ana (Slack U0ANA)"
            assert {"name": "alertname", "op": "=", "value": "ModelDown"} in silence["matchers"]
            assert 3590 < silence["ends_at"] - silence["starts_at"] <= 3600

            # the chart of the last 24 hours, in the thread, for anyone
            slack.press(msg.ts, "mlwarden:chart:24h", "U0EVE", "eve")
            wait_for(lambda: slack.call(lambda: [f for f in slack.web.fake.files
                                                 if f["thread_ts"] == msg.ts]), 30,
                     what="the chart in the thread")

            history = cli(agent, "alerts", "history", "ModelDown")
            status = agent.status()["components"]["slack_actions"]
            assert agent.alive()
        assert agent.proc is not None and agent.proc.poll() == 0, agent.log()[-2000:]
        errors = [line for line in agent.log_lines() if line.get("level") in ("error", "critical")]
        assert errors == [] and "Traceback" not in agent.log(), errors or agent.log()[-3000:]
        refused = slack.call(lambda: list(slack.web.fake.refused))
        assert slack.socket.errors == [] and not refused, (slack.socket.errors, refused)
    lines = history.splitlines()
    assert any("-> firing" in line for line in lines), history
    assert any("acknowledged by ana" in line for line in lines), history
    assert any("silenced 1h by ana" in line for line in lines), history
    assert any("acknowledged by eve (refused: not allowed)" in line for line in lines), history
    assert sum("silenced 1h" in line for line in lines) == 1, history
    assert status["outcomes"] == {"refused": 1, "applied": 3, "duplicate": 1}, status
    assert status["connections"] >= 2, status
    assert status["message_updates"] == 2 and status["charts"] == 1, status
