"""`mlwarden config validate`: every problem of a file in one run, each with its path and the
YAML spelling of its key, plus what `run` would warn about; warnings that are true."""

from __future__ import annotations

import json
import signal
import sys

import pytest

from agent.cli import main
from agent.config import config_warnings, load_config, parse_config
from tests.support.procs import REPO, Proc, free_port, wait_for, wait_http

EVERY_KIND = REPO / "tests" / "fixtures" / "config" / "every-kind-of-problem.yaml"


def test_one_problem_of_each_kind_is_listed_in_one_run(monkeypatch, capsys):
    monkeypatch.delenv("MLWARDEN_TEST_UNSET_TOKEN", raising=False)
    assert main(["config", "validate", str(EVERY_KIND)]) == 78
    err = capsys.readouterr().err
    problems = [line[4:] for line in err.splitlines() if line.startswith("  - ")]
    kinds = {
        "unset variable": "alerting.slack.token: environment variable MLWARDEN_TEST_UNSET_TOKEN is not set",
        "wrong type": "agent.pipeline_queue: input should be a valid integer",
        "typo in a section": "agent.listn: unknown key (did you mean 'listen'?)",
        "bad URL": "agent.history: expected a SQLAlchemy URL",
        "typo in a check": "checks[0].intervl: unknown key (did you mean 'interval'?)",
        "missing key": "checks[1].url: missing required key",
        "unknown check type": "checks[2].type: unknown check type 'agnet'",
        "duplicate name": "checks[3].name: 'self' is already used by checks[0]",
        "bad duration": "checks[4].interval: expected a duration like '15s'",
        "unknown metric": "rules[0].metric: unknown metric (did you mean 'mlwarden.check.status'?)",
        "bad `for`": "rules[0].for: expected a duration",
        "unknown pack": "rule_files[0]: 'builtin:airflw' is not a builtin rule pack",
        "undefined receiver": "alerting.routes[0].receiver: 'nope' is not defined (have: console, slack)",
        "`continue`, not `continue_`": "alerting.routes[0].continue: input should be a valid boolean",
        "bad regex in matchers": "alerting.routes[1].matchers[0]: team=~'ml|(': invalid regex: "
                                 "missing ), unterminated subpattern at position 3",
        "undefined time interval": "alerting.routes[2].mute_time_intervals[0]: 'weekends' is not "
                                   "a defined time interval",
    }
    for kind, text in kinds.items():
        assert sum(p.startswith(text) for p in problems) == 1, f"{kind}: {text!r} not in {problems}"
    assert len(problems) == len(kinds) + 1  # the model_endpoint check also misses `protocol`
    assert f"{EVERY_KIND}: {len(problems)} config problems:" in err
    assert ("  warning: alerting: repeat_interval (5m) is shorter than group_interval (10m); "
            "repeats happen only every group_interval") in err
    assert "for_" not in err and "continue_" not in err  # the keys as the file spells them


def test_typos_are_matched_to_the_keys_as_written():
    with pytest.raises(Exception) as info:
        parse_config("rules:\n  - {alert: A, metric: mlwarden.check.status, op: '>', threshold: 1, fo: 1m}\n"
                     "alerting:\n  routes:\n    - {receiver: console, contine: true}\n")
    text = str(info.value)
    assert "rules[0].fo: unknown key (did you mean 'for'?)" in text
    assert "alerting.routes[0].contine: unknown key (did you mean 'continue'?)" in text


def test_a_valid_file_with_warnings_exits_0_and_prints_them(tmp_path, capsys):
    path = tmp_path / "mlwarden.yaml"
    path.write_text("agent: {listen: '0.0.0.0:9464'}\nalerting:\n  routes:\n"
                    "    - {receiver: console, group_interval: 1h, repeat_interval: 30m}\n")
    assert main(["config", "validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert "valid (0 check instances, 0 rules, 2 warnings)" in out
    assert "  warning: agent.listen is 0.0.0.0:9464, reachable from other hosts" in out
    assert "  warning: alerting.routes[0]: repeat_interval (30m) is shorter than group_interval (1h)" in out


# -- the world-readable warning: only for a secret written in the file -----------------------
@pytest.mark.parametrize(("text", "keys"), [
    ("agent: {auth_token: plain-secret}\n", "agent.auth_token"),
    ("agent: {auth_token: '${TOKEN:-fallback-secret}'}\n", "agent.auth_token"),  # the default is in the file
    ("agent: {auth_token: '${TOKEN}'}\n", None),                                # a reference is not
    ("alerting: {slack: {webhook_url: 'https://hooks.slack.com/services/${HOOK}'}}\n", None),
    ("heartbeat: {url: 'https://hc-ping.com/0f6b3a7c'}\n", "heartbeat.url"),
    ("checks:\n  - {type: airflow, name: af, url: 'http://af:8080', username: u, password: hunter2}\n",
     "checks[0].password"),
    ("checks:\n  - {type: airflow, name: af, url: 'http://af:8080', username: u, password: '${PW}'}\n", None),
])
def test_world_readable_warning_only_when_a_secret_is_in_the_file(tmp_path, text, keys):
    path = tmp_path / "mlwarden.yaml"
    path.write_text(text)
    path.chmod(0o644)
    env = {"TOKEN": "tok-from-env", "HOOK": "T000/B000/xyz", "PW": "pw-from-env"}
    config = load_config(path, env=env, warn=False)
    warnings = [w for w in config_warnings(config, path) if "world-readable" in w]
    if keys is None:
        assert warnings == []
    else:
        assert len(warnings) == 1 and f"has a secret written in it ({keys})" in warnings[0]
        assert "plain-secret" not in warnings[0] and "hunter2" not in warnings[0]
    path.chmod(0o600)
    assert not [w for w in config_warnings(config, path) if "world-readable" in w]


@pytest.mark.integration
def test_a_warning_is_said_once_per_start_not_again_on_reload(tmp_path):
    port = free_port()
    cfg = tmp_path / "mlwarden.yaml"
    cfg.write_text(f"agent: {{listen: '127.0.0.1:{port}', history: 'sqlite:///{tmp_path}/h.db', "
                   "auth_token: written-in-the-file}\n")
    cfg.chmod(0o644)
    proc = Proc("agent", [sys.executable, "-m", "agent.cli", "run", "-c", str(cfg)], cwd=tmp_path,
                log_dir=tmp_path).start()
    log = tmp_path / "agent.log"
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", timeout=30, proc=proc)
        for n in (1, 2):
            proc.signal(signal.SIGHUP)
            wait_for(lambda n=n: log.read_text().count("config reloaded") == n, 10, what=f"reload {n}")
    finally:
        proc.stop()
    records = [json.loads(line) for line in log.read_text().splitlines()]
    said = [r for r in records if "world-readable" in r["msg"]]
    assert len(said) == 1 and said[0]["level"] == "warning"
    assert "written-in-the-file" not in log.read_text()
