"""Config loading: every error names the file, the key path, what was expected and found."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.cli import main
from agent.config import load_config, parse_config
from agent.errors import ConfigError
from agent.secrets import scrub

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "config"

CASES = [
    ("invalid-missing-key.yaml", "checks[0].name: missing required key"),
    ("invalid-wrong-type.yaml", "agent.pipeline_queue: input should be a valid integer"),
    ("invalid-unknown-key.yaml", "agent.listn: unknown key (did you mean 'listen'?)"),
    ("invalid-bad-duration.yaml",
     "checks[1].interval: expected a duration like '15s', '5m' or '1h30m', found 'fast'"),
    ("invalid-unset-env.yaml", "agent.history: environment variable MLWARDEN_TEST_UNSET_DB is not set"),
    ("invalid-yaml.yaml", "line 3, column 1: invalid YAML"),
    ("invalid-unknown-type.yaml", "checks[0].type: unknown check type 'agnet'"),
    ("invalid-duplicate-name.yaml", "checks[1].name: 'self' is already used by checks[0]"),
    ("invalid-listen.yaml", "agent.listen: expected host:port like '127.0.0.1:9464', found 'localhost'"),
    ("invalid-top-level.yaml", "(top level): expected a mapping of sections, found a list"),
    ("invalid-cause-kind.yaml", "causes.explains[0].cause: unknown kind (did you mean "
     "'gpu_fault'?); kinds: airflow_metadb_down, airflow_scheduler_down, batch_scoring, "
     "gpu_fault, gpu_lost, model_degraded, model_down, node_silent, pipeline_delayed, "
     "run_failed, task_failed; found 'gpu_falut'"),
    ("invalid-cause-cycle.yaml", "causes.explains: the graph has a cycle (gpu_fault -> "
     "gpu_lost -> model_down -> model_degraded -> gpu_fault): a cause cannot be explained by "
     "what it explains; drop one of its edges"),
]


@pytest.mark.parametrize("name,expected", CASES, ids=[c[0] for c in CASES])
def test_each_error_names_file_and_key_path(name, expected):
    path = FIXTURES / name
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    text = str(info.value)
    assert text.startswith(f"{path}: "), text
    assert expected in text, text


def test_every_fixture_is_in_the_table():
    assert {p.name for p in FIXTURES.glob("invalid-*.yaml")} == {c[0] for c in CASES}


def test_all_problems_reported_at_once():
    text = """
agent: {listn: x, shutdown_timeout: soon}
checks:
  - {type: agent, name: a, intervl: 5s}
  - {type: agent}
"""
    with pytest.raises(ConfigError) as info:
        parse_config(text, source="multi.yaml")
    assert len(info.value.problems) == 4
    assert "checks[0].intervl: unknown key (did you mean 'interval'?)" in str(info.value)


def test_unset_env_var_reported_once_not_again_as_bad_value():
    with pytest.raises(ConfigError) as info:
        parse_config("checks:\n  - {type: agent, name: a, interval: '${NOPE_X}'}\n", env={})
    assert info.value.problems == [
        "checks[0].interval: environment variable NOPE_X is not set (set it, or write ${NOPE_X:-default})"
    ]


def test_env_substitution_and_defaults():
    cfg = parse_config(
        "agent:\n  history: ${DB:-sqlite:///x.db}\n  listen: ${HOST}:${PORT}\n",
        env={"HOST": "127.0.0.1", "PORT": "9999"},
    )
    assert cfg.agent.history == "sqlite:///x.db"
    assert cfg.agent.listen_port == 9999


def test_durations_parse():
    cfg = parse_config("checks:\n  - {type: agent, name: a, interval: 1m30s, timeout: 250ms}\n")
    assert cfg.checks[0].interval == 90 and cfg.checks[0].timeout == 0.25


def test_secrets_are_registered_and_never_printed():
    cfg = parse_config("agent:\n  auth_token: ${TOKEN}\n", env={"TOKEN": "s3cr3t-token-value"})
    assert "s3cr3t" not in repr(cfg) and "s3cr3t" not in cfg.model_dump_json()
    assert scrub("Authorization: Bearer s3cr3t-token-value") == "Authorization: Bearer ********"


def test_empty_file_is_the_defaults():
    cfg = parse_config("")
    assert cfg.agent.listen == "127.0.0.1:9464" and cfg.checks == ()


def test_embedded_defaults_load_the_default_rule_packs():
    from agent.config import DEFAULT_RULE_FILES, default_config
    from agent.rules.files import BUILTIN_RULES, load_rule_file

    problems: list[str] = []
    pack = load_rule_file(BUILTIN_RULES / "agent.yaml", problems)
    assert not problems and len(pack) >= 5
    defaults = default_config()
    assert DEFAULT_RULE_FILES == ("builtin:agent",)
    assert defaults.rules == tuple(pack) and defaults.checks == ()
    assert defaults.rule_files == DEFAULT_RULE_FILES
    assert parse_config("").rules == ()  # a config file of its own says which rules it wants


def test_validate_command_exit_codes(tmp_path, capsys):
    good = tmp_path / "good.yaml"
    good.write_text("checks:\n  - {type: agent, name: self}\n")
    assert main(["config", "validate", str(good)]) == 0
    assert "valid (1 check instance, 0 rules)" in capsys.readouterr().out
    assert main(["config", "validate", str(FIXTURES / "invalid-unknown-key.yaml")]) == 78
    err = capsys.readouterr().err
    assert "agent.listn: unknown key" in err


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.yaml")
    assert "cannot read the file" in str(info.value)


def test_starter_config_from_init_is_valid(tmp_path, capsys):
    path = tmp_path / "mlwarden.yaml"
    assert main(["init", str(path)]) == 0
    load_config(path, env={})
    assert path.stat().st_mode & 0o077 == 0  # it may come to hold secrets
    assert main(["init", str(path)]) == 64  # never overwrites without --force (a usage error)


def test_world_readable_config_with_secrets_is_warned_about(tmp_path, caplog):
    path = tmp_path / "agent.yaml"
    path.write_text("agent:\n  auth_token: plain-secret-in-file\n")
    path.chmod(0o644)
    with caplog.at_level("WARNING"):
        load_config(path)
    assert "world-readable" in caplog.text and "plain-secret-in-file" not in caplog.text
    caplog.clear()
    path.chmod(0o600)
    with caplog.at_level("WARNING"):
        load_config(path)
    assert "world-readable" not in caplog.text


def test_listening_beyond_loopback_without_token_is_warned_about():
    from agent.config import config_warnings

    assert any("auth_token is not set" in w
               for w in config_warnings(parse_config("agent: {listen: '0.0.0.0:9464'}")))
    assert config_warnings(parse_config("agent: {listen: '127.0.0.1:9464'}")) == []


def test_a_removed_key_says_what_replaced_it():
    text = ("checks:\n  - {type: model_endpoint, name: r, url: 'http://127.0.0.1:1', protocol: v2,"
            " model: r, latency_window: 100}\n")
    with pytest.raises(ConfigError) as info:
        parse_config(text, source="old.yaml")
    (problem,) = info.value.problems
    assert problem.startswith("checks[0].latency_window: was removed: probe latency is a histogram")
    assert "unknown key" not in problem


def test_check_configs_with_the_same_keys_share_one_fields_set():
    """Memory (issue #20): one set of set-key names for all instances that set the same keys;
    the shared set must never change, whatever is done with one instance."""
    text = "checks:\n" + "".join(
        f"  - {{type: model_endpoint, name: ep-{i}, url: 'http://127.0.0.1:9/{i}', protocol: http}}\n"
        for i in range(3)) + "  - {type: model_endpoint, name: ep-x, url: 'http://127.0.0.1:9/x', " \
        "protocol: http, interval: 5s}\n"
    config = parse_config(text)
    a, b, c, d = config.checks
    assert a.model_fields_set is b.model_fields_set is c.model_fields_set
    assert a.model_fields_set == {"type", "name", "url", "protocol"}
    assert d.model_fields_set == {"type", "name", "url", "protocol", "interval"}
    copied = a.model_copy(update={"interval": 30.0})
    assert copied.model_fields_set == {"type", "name", "url", "protocol", "interval"}
    assert b.model_fields_set == {"type", "name", "url", "protocol"}
    with pytest.raises(ValueError):
        a.interval = 1.0  # frozen: refused before pydantic would add to the set
    assert b.model_fields_set == {"type", "name", "url", "protocol"}
    assert a.model_dump(exclude_unset=True) == {"type": "model_endpoint", "name": "ep-0",
                                                 "url": "http://127.0.0.1:9/0", "protocol": "http"}
    assert parse_config(text).checks == config.checks  # reload diffs compare equal
