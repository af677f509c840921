"""Security basics, end to end through the real daemon and CLI.

Secret values are planted in a config (Slack token, Datadog API key, Airflow passwords for
Airflow 2 and 3, the agent's own auth token, a basic-auth password of a model endpoint);
every component is made to fail against a target that repeats the credentials it was sent
in its error answers; then every output channel is searched for the planted values:
the daemon's stdout/stderr (its log), /status, /metrics, every call the fake Slack got,
every text cell of the history database, and the output of `mlwarden status`,
`mlwarden check NAME --json` and `mlwarden config validate`.
"""

from __future__ import annotations

import base64
import contextlib
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.export.fake_intake import FakeIntake
from tests.faults.daemon import Daemon
from tests.faults.echo_server import EchoCredentials
from tests.faults.threaded_slack import ThreadedSlack
from tests.notify.fake_slack import TOKEN as SLACK_TOKEN
from tests.support.procs import REPO, http_get, wait_for

pytestmark = pytest.mark.integration

DD_KEY = "5ec7e7dd0a91b2c3d4e5f60718293a4b"
AIRFLOW2_PW = "Af2-planted-Pw-8c1e"
AIRFLOW3_PW = "Af3-planted-Pw-77d0"
AUTH_TOKEN = "agent-planted-token-4f2b9"
BASIC_PW = "basic-planted-pw-13ab"
SECRETS = {"slack token": SLACK_TOKEN, "datadog api key": DD_KEY, "airflow 2 password": AIRFLOW2_PW,
           "airflow 3 password": AIRFLOW3_PW, "auth token": AUTH_TOKEN, "basic-auth password": BASIC_PW,
           # the same credentials as they travel in an Authorization header
           "basic-auth header": base64.b64encode(f"ml:{BASIC_PW}".encode()).decode(),
           "airflow 2 header": base64.b64encode(f"admin:{AIRFLOW2_PW}".encode()).decode()}

CONFIG = """
agent:
  listen: 127.0.0.1:{port}
  history: sqlite:///{db}
  self_check_interval: 1s
  log_format: json
  log_level: debug
  auth_token: "%(auth)s"
exporters:
  datadog: {{mode: api, api_key: "%(dd)s", api_url: "%(intake)s", flush_interval: 200ms, timeout: 1s,
            retry_initial: 200ms, retry_max: 1s}}
rules:
  - {{alert: TargetDown, metric: mlwarden.check.status, op: ">=", threshold: 2, group_by: [check],
      severity: critical, summary: "{{check}} is down ({{value}})"}}
alerting:
  slack: {{token: "%(slack)s", default_channel: "#ml-alerts", base_url: "%(slack_url)s", timeout: 1s,
          charts: false}}
  group_by: [alertname, check]
  group_wait: 0s
  delivery: {{tick: 100ms, retry_initial: 200ms, retry_max: 1s, pace: 0s}}
checks:
  - {{type: model_endpoint, name: model, protocol: http, url: "%(echo)s/v2/health/ready", interval: 1s,
      username: ml, password: "%(basic)s"}}
  - {{type: airflow, name: af2, scope: local, url: "%(echo)s", api_version: "1", interval: 1s,
      username: admin, password: "%(af2)s"}}
  - {{type: airflow, name: af3, scope: local, url: "%(echo)s", api_version: "2", interval: 1s,
      username: admin, password: "%(af3)s"}}
"""


def leaks(channel: str, text: str) -> list[str]:
    return [f"{what} in {channel}" for what, value in SECRETS.items() if value in text]


def db_text(db: Path) -> str:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)) as conn:
        return "\n".join(conn.iterdump())


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent.cli", *args], capture_output=True, text=True,
                          timeout=60, cwd=REPO, env={**os.environ, **(env or {})})


def test_planted_secrets_appear_in_no_output_channel(tmp_path):
    found: list[str] = []
    with EchoCredentials() as echo, FakeIntake(api_key=DD_KEY) as intake, ThreadedSlack() as slack:
        intake.mode = "forbidden"  # Datadog refuses the key: an error about credentials
        slack.call(slack.fake.fail, "500", times=3)  # Slack fails first, then takes the alerts
        body = CONFIG % {"auth": AUTH_TOKEN, "dd": DD_KEY, "intake": intake.url, "slack": SLACK_TOKEN,
                         "slack_url": slack.fake.base_url, "echo": echo.url, "basic": BASIC_PW,
                         "af2": AIRFLOW2_PW, "af3": AIRFLOW3_PW}
        agent = Daemon(tmp_path, body, token=AUTH_TOKEN)
        os.chmod(agent.config, 0o644)  # world-readable, holding secrets
        with agent:
            def everything_failed() -> bool:
                s = agent.status()
                checks = {c["name"]: c for c in s["checks"]}
                return (all(checks[n]["runs"] >= 2 and checks[n]["status"] != "OK"
                            for n in ("model", "af2", "af3"))
                        and s["components"]["datadog"]["failures"] > 0
                        and len(slack.call(slack.fake.top_level)) >= 3)

            wait_for(everything_failed, 60, what="every component to fail and the alerts to reach Slack")
            time.sleep(1.0)
            code, _ = http_get(agent.url("/status"))
            assert code == 401  # the token is required
            status_text = http_get(agent.url("/status"), headers={"Authorization": f"Bearer {AUTH_TOKEN}"})[1]
            found += leaks("/status", status_text.decode())
            found += leaks("/metrics", agent.metrics())
            url = f"http://127.0.0.1:{agent.port}"
            out = cli("status", "--url", url, "--json", env={"MLWARDEN_AUTH_TOKEN": AUTH_TOKEN})
            assert out.returncode == 0, out.stderr
            found += leaks("`mlwarden status` output", out.stdout + out.stderr)
            for name in ("model", "af2", "af3"):
                out = cli("check", name, "--json", "--config", str(agent.config))
                assert out.returncode in (2, 3), (name, out.returncode, out.stderr[-2000:])
                found += leaks(f"`mlwarden check {name} --json` output", out.stdout + out.stderr)
            out = cli("config", "validate", str(agent.config))
            found += leaks("`mlwarden config validate` output", out.stdout + out.stderr)
            assert out.returncode == 0, out.stderr
        slack_calls = slack.call(lambda: repr(slack.fake.calls) + repr(slack.fake.messages))
        found += leaks("Slack", slack_calls)
    found += leaks("the daemon's stdout/stderr", agent.log())
    found += leaks("the history database", db_text(agent.db))
    assert not found, found
    # the channels did carry the failures, so the search above searched something
    log = agent.log()
    assert "403" in log and "model" in log and "af2" in log and "af3" in log
    assert "401" in log and "credentials" in log
    assert "TargetDown" in slack_calls
    # the config file's permissions are warned about, through the daemon's log
    assert f"{agent.config} is world-readable and has a secret written in it (" in log
    assert f"run: chmod 600 {agent.config}, or move the value to an environment variable" in log


def test_no_permission_warning_for_a_private_config(tmp_path):
    agent = Daemon(tmp_path, """
agent: {{listen: "127.0.0.1:{port}", history: "sqlite:///{db}", auth_token: "%s", log_format: json}}
""" % AUTH_TOKEN, token=AUTH_TOKEN)
    os.chmod(agent.config, 0o600)
    with agent:
        wait_for(lambda: agent.status()["agent"]["pid"], 10, what="status")
    log = agent.log()
    assert "mlwarden stopped" in log and "world-readable" not in log and AUTH_TOKEN not in log


def test_loopback_by_default_and_a_warning_when_bound_elsewhere_without_token(tmp_path):
    from agent.config import AgentSection, config_warnings, parse_config

    assert AgentSection().listen_host == "127.0.0.1"
    open_config = parse_config("agent: {listen: '0.0.0.0:9464'}")
    assert any("agent.auth_token is not set" in w for w in config_warnings(open_config))
    closed = parse_config(f"agent: {{listen: '0.0.0.0:9464', auth_token: {AUTH_TOKEN}}}")
    assert not any("auth_token" in w for w in config_warnings(closed))


def test_a_secret_of_the_wrong_type_is_not_echoed_by_config_validation(tmp_path):
    """An unquoted numeric password is a YAML number: the type error must not print it."""
    cfg = tmp_path / "agent.yaml"
    cfg.write_text("""
agent: {auth_token: 80808080808}
checks:
  - {type: airflow, name: af, scope: local, url: "http://127.0.0.1:1", username: a, password: 98765432101}
""")
    out = cli("config", "validate", str(cfg))
    assert out.returncode == 78  # a config error (agent/cli/exitcodes.py)
    said = out.stdout + out.stderr
    assert "checks[0].password: input should be a valid string, found a number (not shown" in said
    assert "agent.auth_token" in said
    assert "98765432101" not in said and "80808080808" not in said, said
