"""End to end: `mlwarden run` as a real subprocess with a fast and a hanging check."""

from __future__ import annotations

import json
import signal
import socket
import sys
import time
from pathlib import Path

import pytest

from tests.support.procs import REPO, Proc, free_port, http_get, wait_for, wait_http

pytestmark = pytest.mark.integration
RUNNER = REPO / "tests" / "support" / "testchecks.py"


def write_config(path: Path, port: int, extra_checks: str = "", shutdown: str = "8s") -> None:
    path.write_text(f"""
agent:
  listen: 127.0.0.1:{port}
  history: sqlite:///{path.parent}/history.db
  shutdown_timeout: {shutdown}
  self_check_interval: 1s
checks:
  - {{type: test_fast, name: fast, interval: 500ms}}
  - {{type: test_hang, name: hang, interval: 1s, timeout: 30s}}
{extra_checks}""")


def start_agent(tmp_path: Path, port: int) -> Proc:
    proc = Proc("agent", [sys.executable, str(RUNNER), "run", "--config", str(tmp_path / "agent.yaml")],
                cwd=tmp_path, log_dir=tmp_path).start()
    wait_http(f"http://127.0.0.1:{port}/readyz", timeout=20, proc=proc)
    return proc


def status(port: int) -> dict:
    code, body = http_get(f"http://127.0.0.1:{port}/status")
    assert code == 200
    return json.loads(body)


def check_state(port: int, name: str) -> dict:
    return next(c for c in status(port)["checks"] if c["name"] == name)


def test_fast_check_keeps_rhythm_beside_a_hanging_one_and_sigterm_exits_cleanly(tmp_path):
    port = free_port()
    write_config(tmp_path / "agent.yaml", port)
    proc = start_agent(tmp_path, port)
    try:
        first = check_state(port, "fast")["runs"]
        time.sleep(4.0)
        fast = check_state(port, "fast")
        hang = check_state(port, "hang")
        # 4 s at 500 ms is 8 runs; a loaded CI machine gets half
        assert fast["runs"] - first >= 4, fast
        assert fast["status"] == "OK"
        assert hang["running"] is True and hang["runs"] == 0
        assert hang["skipped_overlap"] >= 1

        code, body = http_get(f"http://127.0.0.1:{port}/metrics")
        text = body.decode()
        assert code == 200
        me = socket.gethostname()  # the `agent` tag (agent.hostname) of local-scope checks
        assert f'mlwarden_check_status{{agent="{me}",check="fast",check_type="test_fast"}} 0.0' in text
        assert "# TYPE mlwarden_check_runs_total counter" in text
        assert f'mlwarden_agent_memory_rss_bytes{{agent="{me}",check="agent"}}' in text

        started = time.monotonic()
        proc.signal(signal.SIGTERM)
        # the hanging check is in flight: shutdown waits for it, then cancels it
        assert proc.wait(timeout=10) == 0
        assert time.monotonic() - started < 10
    finally:
        proc.stop()
    log = (tmp_path / "agent.log").read_text()
    assert "SIGTERM received: stopping" in log and "mlwarden stopped" in log
    for line in log.splitlines():
        json.loads(line)  # structured: every line is JSON when not a terminal


def test_second_signal_exits_at_once(tmp_path):
    port = free_port()
    write_config(tmp_path / "agent.yaml", port, shutdown="60s")
    proc = start_agent(tmp_path, port)
    try:
        wait_for(lambda: check_state(port, "hang")["running"], 5, what="hang check in flight")
        proc.signal(signal.SIGTERM)
        time.sleep(0.5)
        assert proc.poll() is None  # waiting for the in-flight check (60 s deadline)
        proc.signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 128 + signal.SIGTERM
    finally:
        proc.stop()


def test_sighup_reloads_good_config_and_keeps_running_on_bad(tmp_path):
    port = free_port()
    cfg = tmp_path / "agent.yaml"
    write_config(cfg, port)
    proc = start_agent(tmp_path, port)
    try:
        write_config(cfg, port, extra_checks="  - {type: test_fast, name: fast2, interval: 1s}\n")
        proc.signal(signal.SIGHUP)
        wait_for(lambda: any(c["name"] == "fast2" for c in status(port)["checks"]), 10,
                 what="fast2 after reload")
        assert status(port)["agent"]["reloads"] == 1

        cfg.write_text(cfg.read_text().replace("interval: 1s}", "interval: soon}"))
        proc.signal(signal.SIGHUP)
        wait_for(lambda: status(port)["agent"]["last_reload_error"], 10, what="reload error")
        doc = status(port)
        assert "checks[2].interval" in doc["agent"]["last_reload_error"]
        assert any(c["name"] == "fast2" for c in doc["checks"])  # the running config goes on
        runs = check_state(port, "fast2")["runs"]
        wait_for(lambda: check_state(port, "fast2")["runs"] > runs, 5, what="fast2 still running")
    finally:
        proc.stop()


def test_status_command_prints_a_running_agent(tmp_path):
    port = free_port()
    write_config(tmp_path / "agent.yaml", port)
    proc = start_agent(tmp_path, port)
    try:
        import subprocess

        out = subprocess.run([sys.executable, "-m", "agent.cli", "status", "--url",
                              f"http://127.0.0.1:{port}"], capture_output=True, text=True,
                             timeout=30, cwd=REPO)
        assert out.returncode == 0, out.stderr
        assert "fast" in out.stdout and "test_fast" in out.stdout and "CHECK" in out.stdout
    finally:
        proc.stop()


def test_status_command_without_agent_is_a_clear_error():
    import subprocess

    port = free_port()
    out = subprocess.run([sys.executable, "-m", "agent.cli", "status", "--url", f"http://127.0.0.1:{port}"],
                         capture_output=True, text=True, timeout=30, cwd=REPO)
    assert out.returncode == 1
    assert "no agent answered" in out.stderr
