"""`mlwarden rules test`, `mlwarden alerts list` and `mlwarden alerts history`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.rules.state import AlertStateStore
from agent.cli import main
from agent.rules.engine import RulesEngine
from agent.samples import CheckResult, Sample, Status, make_tags

from .helpers import STATUS, rule

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "rules"
PACKS = Path(__file__).resolve().parents[2] / "agent" / "data" / "rules"


def test_rules_test_replays_and_prints_each_transition(capsys):
    code = main(["rules", "test", str(PACKS / "agent.yaml"), "--data",
                 str(FIXTURES / "samples.csv"), "--json"])
    assert code == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    got = [(line["alert"], line["labels"].get("check"), line["from"], line["to"]) for line in lines]
    assert got == [
        ("AgentSelfCheckSilent", None, "inactive", "firing"),
        ("CheckCannotRun", "ranker", "inactive", "pending"),
        ("CheckCannotRun", "ranker", "pending", "firing"),
        ("CheckCannotRun", "ranker", "firing", "resolved"),
        ("CheckTargetCritical", "scorer", "inactive", "pending"),
        ("CheckTargetCritical", "scorer", "pending", "firing"),
        ("CheckStalled", "scorer", "inactive", "firing"),
        ("CheckTargetCritical", "scorer", "firing", "resolved"),
    ]
    stalled = next(line for line in lines if line["alert"] == "CheckStalled")
    # scorer ran every 15s and stopped after its last run at +360s: 3 intervals = 45s later
    assert stalled["at"] == 1795860000 + 360 + 45 and stalled["value"] == 45


def test_rules_test_table_output(capsys):
    assert main(["rules", "test", str(PACKS / "agent.yaml"), "--data",
                 str(FIXTURES / "samples.csv"), "--until", "2m"]) == 0
    out = capsys.readouterr().out
    assert "2026-11-28T10:04:00Z  CheckCannotRun" in out
    assert "pending -> firing" in out
    assert out.rstrip().endswith("146 samples, 8 rules, 9 transitions")  # the pack has 8 rules


def test_rules_test_accepts_a_whole_config(tmp_path, capsys):
    config = tmp_path / "mlwarden.yaml"
    config.write_text("agent: {hostname: test}\nrules:\n"
                      "  - {alert: Unknown, metric: mlwarden.check.status, op: '==', threshold: 3}\n")
    assert main(["rules", "test", str(config), "--data", str(FIXTURES / "samples.csv"), "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(x["from"], x["to"]) for x in lines] == [("inactive", "firing"), ("firing", "resolved")]


@pytest.mark.parametrize(
    ("csv", "message"),
    [
        ("timestamp,metric\n1,mlwarden.check.status\n",
         "line 1: the header needs columns timestamp, metric, value (missing: value)"),
        ("timestamp,metric,value\n1,mlwarden.nope,1\n",
         "line 2: metric 'mlwarden.nope' is not in the metric catalog"),
        ("timestamp,metric,value\nyesterday,mlwarden.check.status,1\n",
         "line 2: timestamp 'yesterday' is neither UNIX seconds nor ISO 8601"),
        ("timestamp,metric,value\n1,mlwarden.check.status,high\n",
         "line 2: value 'high' is not a number"),
    ],
)
def test_rules_test_bad_data_names_the_line(tmp_path, capsys, csv, message):
    data = tmp_path / "bad.csv"
    data.write_text(csv)
    assert main(["rules", "test", str(PACKS / "agent.yaml"), "--data", str(data)]) == 65
    err = capsys.readouterr().err
    assert f"  - {message}" in err and "data problem" in err and "config" not in err


def test_rules_test_bad_rules_are_a_config_error(tmp_path, capsys):
    bad = tmp_path / "r.yaml"
    bad.write_text("rules:\n  - {alert: A, metric: mlwarden.check.status, op: '>'}\n")
    assert main(["rules", "test", str(bad), "--data", str(FIXTURES / "samples.csv")]) == 78
    assert "rules[0]: `threshold` is required" in capsys.readouterr().err


def test_rules_test_file_checks_expected_alerts_per_eval_time(capsys):
    """The shipped fixture passes: pending is not listed, eval_time between samples counts,
    annotations are compared, ISO times work."""
    assert main(["rules", "test", str(FIXTURES / "tests.yaml")]) == 0
    out = capsys.readouterr().out
    assert out.count("PASS") == 4 and "FAIL" not in out
    assert out.rstrip().endswith("4 of 4 expectations passed")


def test_rules_test_file_mismatch_exits_1_with_a_diff(tmp_path, capsys):
    (tmp_path / "samples.csv").write_text((FIXTURES / "samples.csv").read_text())
    (tmp_path / "t.yaml").write_text("""
rule_files: [builtin:agent]
tests:
  - name: wrong on purpose
    data: samples.csv
    alert_rule_test:
      - eval_time: 4m
        alertname: CheckCannotRun
        exp_alerts:
          - exp_labels: {check: scorer, check_type: model_endpoint, cause: agent, severity: warning}
      - eval_time: 2m
        alertname: CheckCannotRun
        exp_alerts: []
""")
    assert main(["rules", "test", str(tmp_path / "t.yaml")]) == 1
    out = capsys.readouterr().out
    assert "FAIL  wrong on purpose: CheckCannotRun at 4m (2026-11-28T10:04:00Z)" in out
    assert ('-{"labels": {"cause": "agent", "check": "scorer", "check_type": "model_endpoint", '
            '"severity": "warning"}}') in out
    assert ('+{"labels": {"cause": "agent", "check": "ranker", "check_type": "model_endpoint", '
            '"severity": "warning"}}') in out
    assert "PASS  wrong on purpose: CheckCannotRun at 2m" in out
    assert out.rstrip().endswith("1 of 2 expectations passed")


def test_rules_test_file_json_lines(capsys):
    assert main(["rules", "test", str(FIXTURES / "tests.yaml"), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["ok"] for r in rows] == [True] * 4 and rows[1]["got"] == rows[1]["expected"]


@pytest.mark.parametrize(("body", "code", "message"), [
    ("tests:\n  - {data: nope.csv}\nrule_files: [builtin:agent]\n", 65, "nope.csv: 1 data problem"),
    ("tests:\n  - {data: samples.csv, alert_rule_test: [{eval_time: soon, alertname: X}]}\n"
     "rule_files: [builtin:agent]\n", 78, "tests[0].alert_rule_test[0].eval_time: expected a duration"),
    ("tests:\n  - {data: samples.csv}\nrule_files: [builtin:agnet]\n", 78,
     "rule_files[0]: 'builtin:agnet' is not a builtin rule pack"),
    ("tests:\n  - {data: samples.csv}\n", 78, "the test file names no rules"),
])
def test_rules_test_file_errors(tmp_path, capsys, body, code, message):
    (tmp_path / "samples.csv").write_text((FIXTURES / "samples.csv").read_text())
    (tmp_path / "t.yaml").write_text(body)
    assert main(["rules", "test", str(tmp_path / "t.yaml")]) == code
    assert message in capsys.readouterr().err


def test_rules_test_needs_data_unless_given_a_test_file(capsys):
    assert main(["rules", "test", str(PACKS / "agent.yaml")]) == 64
    assert "give the recording with --data" in capsys.readouterr().err


async def _record_alerts(db_url: str) -> None:
    from agent.history.db import make_engine

    engine = make_engine(db_url)
    now = [1000.0]
    rules = [rule(alert="Down", metric=STATUS, op="==", threshold=2, summary="{check} is down"),
             rule(alert="Unknown", metric=STATUS, op="==", threshold=3)]
    comp = RulesEngine(rules, state=AlertStateStore(engine, agent="test"), clock=lambda: now[0])
    await comp.start()
    tags = make_tags({"check": "ranker"})
    for t, v in ((1000.0, 2.0), (1060.0, 0.0), (1120.0, 3.0)):
        now[0] = t
        await comp.consume(CheckResult("ranker", "x", Status.OK, samples=[Sample(STATUS, v, tags, t)]))
    await comp.stop()
    engine.dispose()


async def test_alerts_list_and_history(tmp_path, capsys):
    db = tmp_path / "mlwarden.db"
    config = tmp_path / "mlwarden.yaml"
    config.write_text(f"agent: {{history: 'sqlite:///{db}'}}\n")
    await _record_alerts(f"sqlite:///{db}")

    assert main(["alerts", "list", "-c", str(config)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["ALERT", "STATE", "SEVERITY", "LABELS", "SINCE", "VALUE", "SUMMARY"]
    assert [line.split()[:2] for line in out.splitlines()[2:]] == [["Unknown", "firing"], ["Down", "resolved"]]

    assert main(["alerts", "list", "--state", "firing", "-c", str(config), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["rule"], r["labels"]) for r in rows] == [("Unknown", {"check": "ranker", "severity": "warning"})]

    assert main(["alerts", "history", "Down", "-c", str(config)]) == 0
    out = capsys.readouterr().out
    assert "inactive -> firing" in out and "firing -> resolved" in out
    assert "1970-01-01T00:16:40Z" in out                      # t=1000

    assert main(["alerts", "history", "Nope", "-c", str(config)]) == 1
    assert "no transitions recorded for rule 'Nope' (rules with alerts: Down, Unknown)" in capsys.readouterr().err
