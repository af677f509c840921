"""Rule config: every bad rule gives one exact message naming its path; rule files; packs."""

from __future__ import annotations

import string
from pathlib import Path

import pytest

from agent.catalog import load_catalog
from agent.config import parse_config
from agent.errors import ConfigError
from agent.rules.files import BUILTIN_RULES, load_rule_file

PACKS = BUILTIN_RULES
OK = 'alert: A, metric: mlwarden.check.status, op: ">", threshold: 1'


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("{alert: A, metric: mlwarden.check.statuz, op: '>', threshold: 1}",
         "rules[1].metric: unknown metric (did you mean 'mlwarden.check.status'?): rules may only "
         "use metrics declared in a metadata.csv (the metric catalog), found 'mlwarden.check.statuz'"),
        (f"{{{OK}, window: 5x}}",
         "rules[1].window: expected a duration like '15s', '5m' or '1h30m', found '5x'"),
        (f"{{{OK}, aggregate: median}}",
         "rules[1].aggregate: input should be 'last', 'avg', 'min', 'max', 'sum', 'count', 'p50', "
         "'p90', 'p95', 'p99', 'rate' or 'increase', found a string 'median'"),
        ("{alert: A, metric: mlwarden.check.status, op: '=>', threshold: 1}",
         "rules[1].op: input should be '<', '<=', '>', '>=', '==' or '!=', found a string '=>'"),
        ("{alert: A, metric: mlwarden.check.status, threshold: 1}",
         "rules[1]: `op` is required (or make it an absent rule with `absent: 10m`), found no `op`"),
        (f"{{{OK}, recover: 2}}",
         "rules[1]: `recover` must be at or below the threshold (1) for op >, found recover 2"),
        (f"{{{OK}, absent: 5m}}",
         "rules[1]: a rule is either a threshold rule (op, threshold) or an absent rule "
         "(absent / absent_intervals), found both"),
        ("{alert: A, metric: mlwarden.check.runs, aggregate: rate, op: '>', threshold: 1}",
         "rules[1]: aggregate rate needs a `window` (e.g. window: 5m), found none"),
        (f"{{{OK}, where: {{dag_id: '=~('}}}}",
         "rules[1].where: tag 'dag_id': invalid regular expression '(': missing ), unterminated "
         "subpattern at position 0, found '=~('"),
        (f"{{{OK}, summary: '{{model'}}",
         "rules[1].summary: invalid template (expected '}' before end of string); write literal "
         "braces as {{ and }}, found '{model'"),
        (f"{{{OK}, severity: page}}",
         "rules[1].severity: input should be 'critical', 'warning' or 'info', found a string 'page'"),
        (f"{{{OK}, treshold: 1}}",
         "rules[1].treshold: unknown key (did you mean 'threshold'?); valid keys here: alert, "
         "metric, where, aggregate, window, op, threshold, recover, for, keep_firing_for, absent, "
         "absent_intervals, severity, labels, group_by, summary, description, runbook_url, "
         "dashboard_url, annotations"),
        (f"{{{OK}, annotations: {{team: '{{model'}}}}",
         "rules[1].annotations: annotation 'team': invalid template (expected '}' before end of "
         "string); write literal braces as {{ and }}, found '{model'"),
        (f"{{{OK}, annotations: {{runbook-url: x}}}}",
         "rules[1].annotations: annotation names are letters, digits and _ (not starting with a "
         "digit), found 'runbook-url'"),
        (f"{{{OK}, summary: s, annotations: {{summary: t}}}}",
         "rules[1]: `summary` goes either on the rule or in `annotations`, found both"),
        ("{alert: 'bad name', metric: mlwarden.check.status, op: '>', threshold: 1}",
         "rules[1].alert: string should match pattern '^[A-Za-z_][A-Za-z0-9_.:-]*$', found a "
         "string 'bad name'"),
    ],
)
def test_each_bad_rule_names_its_path(rule, message):
    text = f"rules:\n  - {{{OK}}}\n  - {rule}\n"
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert info.value.problems == [message]


def test_every_problem_is_listed_at_once():
    text = ("rules:\n  - {alert: A, metric: nope.x, op: '>', threshold: 1}\n"
            "  - {alert: B, metric: mlwarden.check.status, op: '>', threshold: 1, window: -1}\n")
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert [p.split(":")[0] for p in info.value.problems] == ["rules[0].metric", "rules[1].window"]


def test_for_is_spelled_for():
    config = parse_config(f"rules:\n  - {{{OK}, for: 2m, keep_firing_for: 30s}}\n")
    assert config.rules[0].for_ == 120.0 and config.rules[0].keep_firing_for == 30.0


def test_rule_files_are_included_relative_to_the_config(tmp_path):
    (tmp_path / "packs").mkdir()
    (tmp_path / "packs" / "a.yaml").write_text(f"rules:\n  - {{{OK}}}\n")
    (tmp_path / "packs" / "b.yaml").write_text(
        "rules:\n  - {alert: B, metric: mlwarden.check.runs, absent: 5m}\n")
    config = parse_config(f"rules:\n  - {{alert: M, {OK[9:]}}}\nrule_files: ['packs/*.yaml']\n",
                          base_dir=tmp_path)
    assert [r.alert for r in config.rules] == ["M", "A", "B"]


def test_rule_file_problems_name_the_file_and_path(tmp_path):
    (tmp_path / "bad.yaml").write_text(f"rules:\n  - {{{OK}}}\n  - {{{OK}, window: 5x}}\n")
    with pytest.raises(ConfigError) as info:
        parse_config("rule_files: [bad.yaml, missing/*.yaml]\n", base_dir=tmp_path)
    assert info.value.problems == [
        f"{tmp_path / 'bad.yaml'}: rules[1].window: expected a duration like '15s', '5m' or "
        "'1h30m', found '5x'",
        f"rule_files[1]: 'missing/*.yaml' matches no file (looked in {tmp_path})",
    ]


def test_a_rule_file_must_hold_only_rules(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("checks: []\n")
    problems: list[str] = []
    assert load_rule_file(path, problems) == []
    assert problems == [f"{path}: expected a mapping with one key `rules:` (a list), found keys ['checks']"]


def test_colliding_rules_are_rejected():
    with pytest.raises(ConfigError) as info:
        parse_config(f"rules:\n  - {{{OK}}}\n  - {{{OK}, threshold: 2}}\n")
    assert info.value.problems == [
        "rules[1].alert: 'A' repeats rules[0] with the same severity, labels and `where`; their "
        "alerts would collide (change one of them)"]
    # a different severity makes them two alerts (warning at 1, critical at 2)
    parse_config(f"rules:\n  - {{{OK}}}\n  - {{{OK}, threshold: 2, severity: critical}}\n")


# -- the shipped packs ------------------------------------------------------------------
@pytest.mark.parametrize("path", sorted(PACKS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_packs_use_only_catalog_metrics(path):
    problems: list[str] = []
    rules = load_rule_file(path, problems)
    assert problems == []
    assert rules, f"{path} holds no rules"
    catalog = load_catalog()
    for r in rules:
        assert r.metric in catalog
        spec = catalog[r.metric]
        for tag in (*r.where, *(r.group_by or ())):
            assert tag in spec.tags or tag in ("check", "check_type") or spec.check == "*", (
                f"{path.name}: {r.alert} uses tag {tag!r}, which {r.metric} does not carry "
                f"(it carries {spec.tags})")
        # every name a text uses is one the alert has: a tag, a fact, or the rule's own
        known = {*spec.tags, *spec.facts, *r.labels, "check", "check_type", "agent", "value",
                 "threshold", "for", "alert", "severity", "metric"}
        texts = [r.summary, r.description, r.runbook_url, r.dashboard_url, *r.annotations.values()]
        for text in texts:
            used = {f.split(".")[0].split("[")[0]
                    for _, f, _, _ in string.Formatter().parse(text) if f}
            assert used <= known, f"{path.name}: {r.alert} says {used - known}, which it lacks"


def test_the_agent_pack_tells_unknown_from_critical_and_watches_stalled_checks():
    rules = {r.alert: r for r in load_rule_file(PACKS / "agent.yaml", [])}
    assert rules["CheckCannotRun"].threshold == 3 and rules["CheckTargetCritical"].threshold == 2
    stalled = rules["CheckStalled"]
    assert stalled.metric == "mlwarden.check.runs" and stalled.absent_intervals == 3
