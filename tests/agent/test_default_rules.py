"""One default rule set, as a new user meets it: the file-less run, `mlwarden init`'s starter
and the image's config load the same packs, which are addressable as `builtin:NAME` from any
install, and `mlwarden rules list` says what is loaded and from where."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.cli import main
from agent.config import DEFAULT_RULE_FILES, default_config, load_config, parse_config
from agent.errors import ConfigError
from agent.rules.files import BUILTIN_RULES, builtin_packs
from tests.fleet.deploy_files import dockerfile, env_of
from tests.support.procs import REPO, Proc, free_port, http_get, wait_http

CLI = [sys.executable, "-m", "agent.cli"]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MLWARDEN_CONFIG"}
    env["PYTHONPATH"] = str(REPO)
    return env


def _rules_in_status(proc: Proc, port: int) -> tuple[int, dict]:
    wait_http(f"http://127.0.0.1:{port}/readyz", timeout=30, proc=proc)
    code, body = http_get(f"http://127.0.0.1:{port}/status")
    assert code == 200
    doc = json.loads(body)
    return doc["components"]["rules"]["rules"], doc["agent"]


@pytest.mark.integration
def test_init_then_run_loads_the_same_rules_as_the_file_less_run(tmp_path):
    """The user's path: `mlwarden init`, `mlwarden run -c mlwarden.yaml`, /status; and
    `mlwarden run` with no file at all. The starter file is used as written (only --listen
    is overridden on the command line, so parallel test runs do not collide)."""
    starter_dir, bare_dir = tmp_path / "starter", tmp_path / "bare"
    starter_dir.mkdir()
    bare_dir.mkdir()
    out = subprocess.run([*CLI, "init"], cwd=starter_dir, env=_env(), capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    expected = len(default_config().rules)
    assert expected == len(parse_config("rule_files: ['builtin:agent']\n").rules) > 0

    counts = {}
    for name, cwd, args in (("starter", starter_dir, ["-c", "mlwarden.yaml"]), ("bare", bare_dir, [])):
        port = free_port()
        proc = Proc(name, [*CLI, "run", *args, "--listen", f"127.0.0.1:{port}"], cwd=cwd,
                    env=_env(), log_dir=tmp_path).start()
        try:
            counts[name], agent = _rules_in_status(proc, port)
            assert agent["rule_files"] == list(DEFAULT_RULE_FILES), agent
        finally:
            assert proc.stop() == 0, proc.log_tail()
    assert counts == {"starter": expected, "bare": expected}


def test_the_config_file_the_image_ships_loads_the_default_packs():
    """Without a container engine: the exact file the Dockerfile copies to $MLWARDEN_CONFIG."""
    instructions = dockerfile()
    target = env_of(instructions)["MLWARDEN_CONFIG"]
    sources = [ins.args.split()[-2] for ins in instructions
               if ins.keyword == "COPY" and ins.args.split()[-1] == target]
    assert sources, f"no COPY in the Dockerfile puts a config at {target}"
    for source in sources:
        shipped = load_config(REPO / source, env={})
        assert shipped.rule_files == DEFAULT_RULE_FILES
        assert shipped.rules == default_config().rules
        # the image runs from /var/lib/mlwarden, far from the file: builtin: needs no path
        moved = Path("/nonexistent-dir") / "mlwarden.yaml"
        text = (REPO / source).read_text()
        assert parse_config(text, source=str(moved), base_dir=moved.parent, env={}).rules == shipped.rules


def test_the_starter_from_init_is_the_packaged_example(tmp_path, capsys):
    path = tmp_path / "mlwarden.yaml"
    assert main(["init", str(path)]) == 0
    assert path.read_text() == (REPO / "agent" / "data" / "agent.yaml.example").read_text()
    assert load_config(path, env={}).rule_files == DEFAULT_RULE_FILES


def test_every_pack_is_shipped_in_the_package_and_loads_by_name():
    assert set(builtin_packs()) == {"agent", "airflow", "endpoints", "gpu"}
    total = 0
    for name, path in builtin_packs().items():
        assert path.parent == BUILTIN_RULES
        config = parse_config(f"rule_files: ['builtin:{name}']\n")
        assert config.rules, name
        total += len(config.rules)
    assert len(parse_config("rule_files: ['builtin:*']\n").rules) == total


def test_the_package_data_declares_the_packs():
    import configparser

    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    assert "data/rules/*.yaml" in cfg["options.package_data"]["agent"]


@pytest.mark.parametrize(("rule_files", "message"), [
    ("['builtin:airflw']", "rule_files[0]: 'builtin:airflw' is not a builtin rule pack (have: "
     "builtin:agent, builtin:airflow, builtin:endpoints, builtin:gpu; did you mean 'builtin:airflow'?)"),
    ("['examples/rules/agent.yaml']", "matches no file"),
    ("['builtin:agent', 'builtin:*']", "'CheckStalled' repeats"),
])
def test_bad_pack_names_say_what_exists(tmp_path, rule_files, message):
    with pytest.raises(ConfigError) as info:
        parse_config(f"rule_files: {rule_files}\n", base_dir=tmp_path)
    assert message in str(info.value)
    if "examples/rules" in rule_files:
        assert "the shipped packs are named builtin:NAME" in str(info.value)


def test_rules_list_shows_each_rule_and_where_it_comes_from(tmp_path, capsys):
    (tmp_path / "team.yaml").write_text(
        "rules:\n  - {alert: TeamRule, metric: mlwarden.check.status, op: '>', threshold: 1}\n")
    config = tmp_path / "mlwarden.yaml"
    config.write_text("rules:\n  - {alert: Inline, metric: mlwarden.check.status, op: '==', threshold: 3}\n"
                      "rule_files: [builtin:endpoints, team.yaml]\n")
    assert main(["rules", "list", "-c", str(config), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    sources = {r["alert"]: r["source"] for r in rows}
    assert sources["Inline"] == f"{config}: rules[0]"
    assert sources["EndpointDown"] == "builtin:endpoints"
    assert sources["TeamRule"] == str(tmp_path / "team.yaml")
    assert len(rows) == 1 + len(parse_config("rule_files: [builtin:endpoints]").rules) + 1

    assert main(["rules", "list", "-c", str(config)]) == 0
    out = capsys.readouterr().out
    assert f"  5 from builtin:endpoints ({BUILTIN_RULES / 'endpoints.yaml'})" in out
    assert "  1 inline (rules:)" in out


def test_rules_list_without_a_config_says_where_it_looked(monkeypatch, capsys):
    monkeypatch.delenv("MLWARDEN_CONFIG", raising=False)
    assert main(["rules", "list"]) == 0
    out = capsys.readouterr().out
    n = len(default_config().rules)
    assert f"{n} rules from no config file (no -c/--config given and $MLWARDEN_CONFIG is not set)" in out
    assert "builtin:agent" in out
