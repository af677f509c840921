"""Every row of the exit-code table (agent/cli/exitcodes.py, generated into the README) has a
case here, run through the command line as a user runs it. Check statuses own 0-3; usage
errors (64), bad data (65) and config errors (78) can never read as a check status."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.cli.exitcodes import TABLE
from tests.support.procs import REPO

RUNNER = REPO / "tests" / "support" / "testchecks.py"  # `mlwarden` with the test check types
FIXTURES = REPO / "tests" / "fixtures"


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    """The command in-process, as `sys.exit(main())` would end: its code and its output."""
    from agent.cli import main

    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.fixture(autouse=True)
def _no_env_config(monkeypatch):
    monkeypatch.delenv("MLWARDEN_CONFIG", raising=False)
    monkeypatch.delenv("DD_API_KEY", raising=False)
    monkeypatch.delenv("DD_APP_KEY", raising=False)


@pytest.fixture(scope="module", autouse=True)
def _test_check_types():
    """The test check types for this module only (other tests list the installed types)."""
    from agent import plugins
    from tests.support import testchecks

    before = dict(plugins._extra)
    testchecks.register_all()
    yield
    plugins._extra.clear()
    plugins._extra.update(before)


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("codes") / "mlwarden.yaml"
    path.write_text("""
checks:
  - {type: test_fast, name: ok}
  - {type: test_warn, name: warn}
  - {type: test_down, name: down}
  - {type: test_crash, name: crash}
""")
    return path


def _mismatching_rule_test(tmp: Path) -> Path:
    (tmp / "samples.csv").write_text((FIXTURES / "rules" / "samples.csv").read_text())
    path = tmp / "tests.yaml"
    path.write_text("rule_files: [builtin:agent]\ntests:\n  - data: samples.csv\n    alert_rule_test:\n"
                    "      - {eval_time: 4m, alertname: CheckCannotRun, exp_alerts: []}\n")
    return path


CASES = [
    # (code, why, argv builder, what stderr/stdout must say)
    (0, "check OK", lambda c, t: ["check", "ok", "-c", str(c)], "ok (test_fast): OK"),
    (1, "check WARNING", lambda c, t: ["check", "warn", "-c", str(c)], "WARNING"),
    (1, "rules test: expected alerts differ",
     lambda c, t: ["rules", "test", str(_mismatching_rule_test(t))], "0 of 1 expectations passed"),
    (1, "status: no agent answers", lambda c, t: ["status", "--url", "http://127.0.0.1:9"],
     "no agent answered"),
    (2, "check CRITICAL", lambda c, t: ["check", "down", "-c", str(c)], "CRITICAL"),
    (3, "check UNKNOWN", lambda c, t: ["check", "crash", "-c", str(c)], "UNKNOWN"),
    (64, "no check instance of that name", lambda c, t: ["check", "no-such-check", "-c", str(c)],
     "no check instance named 'no-such-check'"),
    (64, "unknown command", lambda c, t: ["bogus"], "invalid choice: 'bogus'"),
    (64, "missing argument", lambda c, t: ["rules", "test"], "the following arguments are required"),
    (64, "init over an existing file", lambda c, t: ["init", str(c)], "use --force"),
    (65, "rules test: malformed CSV",
     lambda c, t: ["rules", "test", str(REPO / "agent/data/rules/agent.yaml"), "--data", str(c)],
     "data problem"),
    (78, "config validate: invalid file",
     lambda c, t: ["config", "validate", str(FIXTURES / "config" / "invalid-unknown-key.yaml")],
     "agent.listn: unknown key"),
    (78, "check with an invalid config",
     lambda c, t: ["check", "ok", "-c", str(FIXTURES / "config" / "invalid-yaml.yaml")],
     "invalid YAML"),
    (78, "a setting the command needs is missing", lambda c, t: ["dashboards", "push", "--datadog"],
     "set DD_API_KEY and DD_APP_KEY"),
]


@pytest.mark.parametrize(("code", "why", "argv", "says"), CASES, ids=[c[1] for c in CASES])
def test_exit_code(config, tmp_path, capsys, code, why, argv, says):
    got, output = run_cli(argv(config, tmp_path), capsys)
    assert got == code, (why, output)
    assert says in output, (why, output)


def test_the_installed_command_exits_with_the_codes_too(tmp_path):
    """The console script's path (`sys.exit(main())`, argparse's own exit) in a process."""
    out = subprocess.run([sys.executable, "-m", "agent.cli", "check", "agent", "--bogus-flag"],
                         capture_output=True, text=True, timeout=60, cwd=tmp_path,
                         env={**__import__("os").environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 64 and "unrecognized arguments: --bogus-flag" in out.stderr


def test_without_a_config_the_error_says_where_it_looked(capsys):
    code, output = run_cli(["check", "my-endpoint"], capsys)
    assert code == 64
    assert ("no check instance named 'my-endpoint' (have: agent); config: no config file "
            "(no -c/--config given and $MLWARDEN_CONFIG is not set), so the embedded defaults; "
            "pass one with -c FILE or set MLWARDEN_CONFIG") in output


def test_ctrl_c_exits_130(tmp_path):
    """A command waiting on the network, interrupted: 130 (128 + SIGINT). `run` itself stops
    cleanly on SIGINT (0) and exits 128 + N on a second signal (test_daemon.py)."""
    with socket.socket() as server:  # accepts connections, never answers
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        # Ctrl-C's SIGINT as in a terminal: a suite started in the background (`cmd &` in a
        # script) ignores SIGINT, its children inherit that, and Python then never raises
        # KeyboardInterrupt
        proc = subprocess.Popen([sys.executable, str(RUNNER), "status", "--url",
                                 f"http://127.0.0.1:{port}"], cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:  # wait until it is connected and waiting
                server.settimeout(0.5)
                try:
                    conn, _ = server.accept()
                    break
                except OSError:
                    continue
            else:
                pytest.fail("the status command never connected")
            proc.send_signal(signal.SIGINT)
            _out, err = proc.communicate(timeout=10)
            assert proc.returncode == 130, err.decode(errors="replace")[-2000:]  # what it said instead
            conn.close()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=5)


def test_every_row_of_the_table_has_a_case():
    tested = {c[0] for c in CASES} | {130}
    assert {int(code) for code, _ in TABLE} == tested


def test_the_readme_shows_the_table():
    from agent.docs import exit_codes

    assert exit_codes() in (REPO / "README.md").read_text()
