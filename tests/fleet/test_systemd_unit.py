"""deploy/mlwarden.service, the unit for hosts without Kubernetes: systemd's own verifier
accepts it, and the commands it runs work as written (with /opt/mlwarden pointing at this
venv: systemd-analyze checks that every Exec path is an executable)."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agent.cli import exitcodes
from agent.config import AgentSection
from agent.durations import parse_duration
from tests.support.procs import REPO

UNIT = REPO / "deploy" / "mlwarden.service"
PREFIX = Path(sys.executable).parent.parent  # this venv stands in for /opt/mlwarden


def unit() -> dict[str, list[str]]:
    """Key -> every value, across sections (the subset of the format the unit uses)."""
    out: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        out.setdefault(key.strip(), []).append(value.strip())
    return out


def local_copy(tmp_path: Path) -> Path:
    path = tmp_path / "mlwarden.service"
    path.write_text(UNIT.read_text().replace("/opt/mlwarden", str(PREFIX)))
    return path


def test_systemd_analyze_verify_accepts_the_unit(tmp_path):
    verify = shutil.which("systemd-analyze")
    if verify is None:
        pytest.skip("systemd-analyze is not installed; test_the_unit_runs_what_the_docs_say parses it")
    out = subprocess.run([verify, "verify", "--man=no", str(local_copy(tmp_path))],
                         capture_output=True, text=True, timeout=60)
    # systemd ignores a bad line with a message and still exits 0: the output must be empty
    assert out.returncode == 0 and not (out.stdout + out.stderr).strip(), out.stdout + out.stderr


def test_the_unit_runs_what_the_docs_say():
    u = unit()
    env = dict(v.split("=", 1) for v in u["Environment"])
    assert env["MLWARDEN_CONFIG"] == "/etc/mlwarden/mlwarden.yaml"
    assert u["ExecStart"] == ["/opt/mlwarden/bin/mlwarden run"]
    assert u["ExecStartPre"] == ["/opt/mlwarden/bin/mlwarden config validate ${MLWARDEN_CONFIG}"]
    assert u["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    # a bad command line or config is not retried: those exit codes mean a person must act
    assert set(u["RestartPreventExitStatus"][0].split()) == {str(exitcodes.USAGE), str(exitcodes.CONFIG)}
    # stop waits longer than the agent's own shutdown (in-flight checks, then a flush)
    default = AgentSection.model_fields["shutdown_timeout"].default
    assert parse_duration(u["TimeoutStopSec"][0]) > default + 5
    assert u["StateDirectory"] == ["mlwarden"] and u["WorkingDirectory"] == ["/var/lib/mlwarden"]
    assert u["User"] == ["mlwarden"] and u["NoNewPrivileges"] == ["yes"]


def test_the_units_commands_work_on_the_starter_config(tmp_path):
    """ExecStartPre as systemd would run it (${MLWARDEN_CONFIG} expanded) on `mlwarden init`'s
    file; then the same on a broken file exits with a code the unit does not restart on."""
    config = tmp_path / "mlwarden.yaml"
    env = {**os.environ, "MLWARDEN_CONFIG": str(config)}
    pre = unit()["ExecStartPre"][0].replace("/opt/mlwarden", str(PREFIX))
    argv = [a.replace("${MLWARDEN_CONFIG}", str(config)) for a in shlex.split(pre)]
    assert subprocess.run([str(PREFIX / "bin" / "mlwarden"), "init", str(config)], env=env,
                          capture_output=True, timeout=60).returncode == 0
    ok = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    config.write_text("agent: {listn: x}\n")
    bad = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == exitcodes.CONFIG and "agent.listn: unknown key" in bad.stderr
    assert str(bad.returncode) in unit()["RestartPreventExitStatus"][0].split()
