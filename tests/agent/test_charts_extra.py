"""Charts are the optional `charts` extra (matplotlib and numpy are most of an install's
weight). Without it the agent still runs and alerts; what draws says how to add it.

"Without it" is made real per process: `sys.modules['matplotlib'] = None` makes the module
unimportable and invisible to `importlib.util.find_spec`, exactly as an install without the
extra (a separate venv without matplotlib would cost CI a full install).
"""

from __future__ import annotations

import configparser
import logging
import subprocess
import sys

from tests.support.procs import REPO

PRELUDE = "import sys; sys.modules['matplotlib'] = None; from agent.cli import main; "


def without_matplotlib(*argv: str, cwd) -> subprocess.CompletedProcess:
    code = PRELUDE + f"sys.exit(main({list(argv)!r}))"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, cwd=cwd, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})


def test_matplotlib_is_an_extra_not_a_requirement():
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    requires = cfg["options"]["install_requires"]
    assert "matplotlib" not in requires and "numpy" not in requires
    assert "matplotlib" in cfg["options.extras_require"]["charts"]
    assert "matplotlib" in cfg["options.extras_require"]["test"]


def test_drawing_commands_say_how_to_add_the_extra(tmp_path):
    db = tmp_path / "h.db"
    (tmp_path / "mlwarden.yaml").write_text(f"agent: {{history: 'sqlite:///{db}'}}\n")
    for argv in (["dashboards", "preview", str(tmp_path / "png"), "-c", "mlwarden.yaml"],
                 ["history", "plot", "mlwarden.check.status", "--db", f"sqlite:///{db}",
                  "-o", str(tmp_path / "x.png")]):
        out = without_matplotlib(*argv, cwd=tmp_path)
        assert out.returncode == 1, (argv, out.stderr)
        assert "needs the charts extra (matplotlib), which is not installed: " in out.stderr
        assert f"-m pip install -e '{REPO}[charts]'" in out.stderr  # this copy runs from a clone


def test_the_agent_imports_and_validates_without_matplotlib(tmp_path):
    code = (PRELUDE + "import agent.app, agent.notify.receivers, agent.notify.slack; "
            f"sys.exit(main(['config', 'validate', {str(REPO / 'agent/data/agent.yaml.example')!r}]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=tmp_path, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    from agent.config import parse_config

    rules = len(parse_config("rule_files: ['builtin:agent']\n").rules)
    assert out.returncode == 0 and f"valid (1 check instance, {rules} rules)" in out.stdout, out.stderr


def test_slack_charts_without_the_extra_are_skipped_and_said_once(monkeypatch, caplog):
    import agent.notify.receivers as receivers

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setattr(receivers, "_told_no_charts", False)
    reader = object()
    with caplog.at_level(logging.WARNING):
        assert receivers.chart_fn(reader, 3600.0) is None  # type: ignore[arg-type]
        assert receivers.chart_fn(reader, 3600.0) is None  # type: ignore[arg-type]
    said = [r for r in caplog.records if "charts extra" in r.getMessage()]
    assert len(said) == 1 and "Slack alerts go without chart images" in said[0].getMessage()
