"""End to end: `mlwarden run` as a real subprocess with a fast and a hanging check."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
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


def _reload_gauges(port: int) -> tuple[float, float]:
    code, body = http_get(f"http://127.0.0.1:{port}/metrics")
    assert code == 200
    values = {}
    for line in body.decode().splitlines():
        for name in ("mlwarden_config_last_reload_successful",
                     "mlwarden_config_last_reload_success_timestamp_seconds"):
            if line.startswith(name + "{") or line.startswith(name + " "):
                values[name] = float(line.rsplit(" ", 1)[1])
    return (values["mlwarden_config_last_reload_successful"],
            values["mlwarden_config_last_reload_success_timestamp_seconds"])


def test_sighup_reloads_good_config_and_keeps_running_on_bad(tmp_path):
    port = free_port()
    cfg = tmp_path / "agent.yaml"
    write_config(cfg, port)
    started = time.time()
    proc = start_agent(tmp_path, port)
    try:
        ok, loaded_at = wait_for(lambda: _reload_gauges(port), 10, what="reload gauges on /metrics")
        assert ok == 1.0 and started - 1 <= loaded_at <= time.time()  # the start's load counts

        write_config(cfg, port, extra_checks="  - {type: test_fast, name: fast2, interval: 1s}\n")
        proc.signal(signal.SIGHUP)
        wait_for(lambda: any(c["name"] == "fast2" for c in status(port)["checks"]), 10,
                 what="fast2 after reload")
        assert status(port)["agent"]["reloads"] == 1
        ok, reloaded_at = _reload_gauges(port)
        assert ok == 1.0 and reloaded_at > loaded_at

        cfg.write_text(cfg.read_text().replace("interval: 1s}", "interval: soon}"))
        proc.signal(signal.SIGHUP)
        wait_for(lambda: status(port)["agent"]["last_reload_error"], 10, what="reload error")
        doc = status(port)
        assert "checks[2].interval" in doc["agent"]["last_reload_error"]
        assert doc["agent"]["last_reload"]["successful"] is False
        assert doc["agent"]["last_reload"]["success_at"] == reloaded_at
        assert any(c["name"] == "fast2" for c in doc["checks"])  # the running config goes on
        runs = check_state(port, "fast2")["runs"]
        wait_for(lambda: check_state(port, "fast2")["runs"] > runs, 5, what="fast2 still running")
        assert _reload_gauges(port) == (0.0, reloaded_at)  # like prometheus_config_last_reload_*

        out = subprocess.run([sys.executable, "-m", "agent.cli", "status", "--url",
                              f"http://127.0.0.1:{port}"], capture_output=True, text=True,
                             timeout=30, cwd=REPO)
        assert out.returncode == 0, out.stderr
        reload_line = next(line for line in out.stdout.splitlines() if line.startswith("  reload"))
        assert "LAST RELOAD REJECTED" in reload_line and "checks[2].interval" in reload_line
    finally:
        proc.stop()
    log = [json.loads(line) for line in (tmp_path / "agent.log").read_text().splitlines()]
    rejected = [r["msg"] for r in log if r["msg"].startswith("reload rejected")]
    assert rejected and f"the server stays on http://127.0.0.1:{port}" in rejected[0]


def test_listen_changed_in_the_file_is_said_truthfully_on_reload(tmp_path):
    """The Dockerfile's `--listen 0.0.0.0:9464` beside a file that says 127.0.0.1: a reload
    keeps the command line's address and says nothing is changing; a real change in the
    file is said to wait for a restart, naming the address the server keeps."""
    port = free_port()
    cfg = tmp_path / "agent.yaml"
    write_config(cfg, free_port())  # the file names another port than --listen
    proc = Proc("agent", [sys.executable, str(RUNNER), "run", "--config", str(cfg), "--listen",
                          f"127.0.0.1:{port}"], cwd=tmp_path, log_dir=tmp_path).start()
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", timeout=20, proc=proc)
        proc.signal(signal.SIGHUP)
        wait_for(lambda: status(port)["agent"]["reloads"] == 1, 10, what="reload")
        assert status(port)["agent"]["listen"] == f"127.0.0.1:{port}"
    finally:
        proc.stop()
    log = (tmp_path / "agent.log").read_text()
    assert "stays on" not in log  # --listen outlives reloads: nothing to warn about

    other = free_port()
    cfg2 = tmp_path / "two" / "agent.yaml"
    cfg2.parent.mkdir()
    write_config(cfg2, port)
    proc = Proc("agent2", [sys.executable, str(RUNNER), "run", "--config", str(cfg2)],
                cwd=cfg2.parent, log_dir=cfg2.parent).start()
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", timeout=20, proc=proc)
        write_config(cfg2, other)
        proc.signal(signal.SIGHUP)
        wait_for(lambda: status(port)["agent"]["reloads"] == 1, 10, what="reload")
        assert status(port)["agent"]["listen"] == f"127.0.0.1:{port}"  # /status tells the truth
    finally:
        proc.stop()
    log = (cfg2.parent / "agent2.log").read_text()
    assert (f"agent.listen is 127.0.0.1:{other} in {cfg2}, but the server stays on "
            f"http://127.0.0.1:{port} until a restart") in log


def test_status_command_prints_a_running_agent_readably(tmp_path):
    port = free_port()
    cfg = tmp_path / "agent.yaml"
    write_config(cfg, port)
    text = cfg.read_text().replace("  self_check_interval: 1s\n",
                                   "  self_check_interval: 1s\n  auth_token: ${MLW_TEST_TOKEN}\n")
    cfg.write_text(text)
    proc = Proc("agent", [sys.executable, str(RUNNER), "run", "--config", str(cfg)], cwd=tmp_path,
                log_dir=tmp_path, env={"MLW_TEST_TOKEN": "t0ken-from-env"}).start()
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", timeout=20, proc=proc)
        wait_for(lambda: check_state_auth(port, "fast")["runs"] > 0, 10, what="a run of fast")
        # the store flushes on its own timer: wait for one, so "last flush" has a value to show
        wait_for(lambda: status_auth(port)["components"]["history"].get("last_flush") is not None,
                 20, what="a history flush")
        env = {**os.environ, "MLW_TEST_TOKEN": "t0ken-from-env"}
        env.pop("MLWARDEN_AUTH_TOKEN", None)
        # the token comes from the config the agent runs with; the URL from its agent.listen
        out = subprocess.run([sys.executable, str(RUNNER), "status", "-c", str(cfg)],
                             capture_output=True, text=True, timeout=30, cwd=REPO, env=env)
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        assert lines[0].startswith("mlwarden ") and " up " in lines[0]
        assert any(line.startswith("  reload     none since start") for line in lines)
        fast = next(line for line in lines if line.startswith("  fast [test_fast]"))
        assert " OK " in fast and "ran " in fast and " ago" in fast and "next in" in fast
        history = next(line for line in lines if line.lstrip().startswith("history"))
        assert "last flush " in history and " ago" in history
        assert not re.search(r"\b1[7-9]\d{8}(\.\d+)?\b", out.stdout), "a raw UNIX time is shown"

        env.pop("MLW_TEST_TOKEN")
        out = subprocess.run([sys.executable, "-m", "agent.cli", "status", "--url",
                              f"http://127.0.0.1:{port}"], capture_output=True, text=True,
                             timeout=30, cwd=REPO, env=env)
        assert out.returncode == 1 and "wants a bearer token" in out.stderr
    finally:
        proc.stop()


def status_auth(port: int) -> dict:
    code, body = http_get(f"http://127.0.0.1:{port}/status",
                          headers={"Authorization": "Bearer t0ken-from-env"})
    assert code == 200
    return json.loads(body)


def check_state_auth(port: int, name: str) -> dict:
    return next(c for c in status_auth(port)["checks"] if c["name"] == name)


def test_status_command_without_agent_is_a_clear_error():
    port = free_port()
    out = subprocess.run([sys.executable, "-m", "agent.cli", "status", "--url", f"http://127.0.0.1:{port}"],
                         capture_output=True, text=True, timeout=30, cwd=REPO)
    assert out.returncode == 1
    assert "no agent answered" in out.stderr
