"""A container's view of `mlwarden run`: stdout and stderr piped into one log, an alert firing
on the console receiver, and every line one JSON object (a log pipeline parses each line)."""

from __future__ import annotations

import json
import signal
import sys

import pytest

from tests.support.procs import Proc, free_port, wait_for, wait_http

pytestmark = pytest.mark.integration


def test_a_firing_console_alert_with_stdout_piped_is_json_lines(tmp_path):
    port, dead = free_port(), free_port()  # nothing listens on `dead`: the endpoint is down
    cfg = tmp_path / "mlwarden.yaml"
    cfg.write_text(f"""
agent:
  history: sqlite:///{tmp_path}/history.db
  listen: 127.0.0.1:{port}
checks:
  - {{type: model_endpoint, name: ranker, url: "http://127.0.0.1:{dead}", protocol: v2,
     model: ranker, interval: 1s, timeout: 1s}}
rule_files: [builtin:agent]
rules:
  - {{alert: RankerDown, metric: mlwarden.endpoint.up, op: "<", threshold: 1, severity: critical,
     summary: "{{model}} is down"}}
alerting:
  group_wait: 0s
  delivery: {{tick: 200ms}}
""")
    # the console script's own code path, its stdout and stderr into one pipe (a file here)
    proc = Proc("agent", [sys.executable, "-m", "agent.cli", "run", "-c", str(cfg)],
                cwd=tmp_path, log_dir=tmp_path).start()
    log = tmp_path / "agent.log"
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", timeout=30, proc=proc)
        wait_for(lambda: "[FIRING:1] RankerDown" in log.read_text(), 30, what="the console alert")
        proc.signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        proc.stop()
    lines = log.read_text().splitlines()
    records = []
    for n, line in enumerate(lines, start=1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"line {n} of the piped output is not JSON: {line!r}")
    assert all(isinstance(r, dict) and {"ts", "level", "logger", "msg"} <= set(r) for r in records)
    alerts = [r for r in records if r["logger"] == "mlwarden.alerts"]
    assert alerts, "no alert record"
    first = alerts[0]
    assert first["msg"] == "[FIRING:1] RankerDown" and first["level"] == "error"
    alert = first["alerts"][0]
    assert alert["labels"]["model"] == "ranker" and alert["labels"]["check"] == "ranker"
    assert alert["annotations"]["summary"] == "ranker is down" and alert["state"] == "firing"
    started = next(r["msg"] for r in records if r["msg"].startswith("mlwarden "))
    from agent.config import parse_config

    pack = len(parse_config("rule_files: ['builtin:agent']\n").rules)
    assert f"and {pack + 1} rules (builtin:agent)" in started  # the pack's and the inline one
