"""The shipped cause graph (agent/data/causes.yaml) agrees with the shipped rule packs, the
metric catalog and the GPU check's XID table: every kind picks real rules, every edge links
on labels those rules' alerts carry, every phrase can be said. A rule renamed, a label
dropped by a `group_by` or a tag moved to the facts breaks a test here, not a link in
production."""

from __future__ import annotations

import pytest

from agent.catalog import load_catalog
from agent.causes import CausesConfig, builtin_graph
from agent.causes.config import find_cycle
from agent.causes.graph import Kind, builtin_config
from agent.rules.config import RuleConfig
from agent.rules.files import load_rule_file
from agent.samples import Kind as SampleKind
from checks.gpu.xid import XID_MEANINGS
from tests.support.procs import REPO

pytestmark = pytest.mark.unit

PACKS = sorted((REPO / "agent" / "data" / "rules").glob("*.yaml"))
INSTANCE = {"check", "agent"}  # every local sample's tags (cluster ones: check only)


def shipped_rules() -> list[RuleConfig]:
    problems: list[str] = []
    rules = [r for path in PACKS for r in load_rule_file(path, problems)]
    assert not problems, problems
    return rules


def labels_of(rule: RuleConfig) -> set[str]:
    """The labels an alert of ``rule`` can carry: its group_by, else its metric's tags (and a
    count's facts, which are part of its series) and the instance's; plus the rule's own."""
    spec = load_catalog()[rule.metric]
    if rule.group_by is not None:
        series = set(rule.group_by)
    else:
        series = set(spec.tags) | INSTANCE
        if spec.kind in (SampleKind.COUNT, SampleKind.MONOTONIC_COUNT):
            series |= set(spec.facts)
    return series | set(rule.labels) | {"severity", "alert"}


def rules_of(kind: Kind) -> list[RuleConfig]:
    """The shipped rules whose alerts the kind picks (by name; its other matchers must name
    labels those alerts carry)."""
    out = []
    for rule in shipped_rules():
        labels = labels_of(rule)
        for selector in kind.selectors:
            if any(m.name == "alert" and m.matches(rule.alert) for m in selector) and all(
                    m.name in labels for m in selector):
                out.append(rule)
                break
    return out


def test_the_shipped_graph_is_valid_and_acyclic():
    config = builtin_config()
    assert not find_cycle(e.pair for e in config.explains)
    graph = builtin_graph()
    assert set(graph.kinds) == set(config.kinds) and len(graph.edges) == len(config.explains)
    assert {e.window for e in graph.edges} == {600.0, 900.0}  # `window: 10m`; node_silent 15m
    assert CausesConfig().model_dump() == CausesConfig.model_validate({}).model_dump()


@pytest.mark.parametrize("name", sorted(builtin_config().kinds))
def test_every_kind_picks_shipped_rules_and_every_phrase_can_be_said(name):
    kind = builtin_graph().kinds[name]
    rules = rules_of(kind)
    for selector in kind.selectors:  # each selector names at least one shipped rule
        assert any(any(m.name == "alert" and m.matches(r.alert) for m in selector)
                   for r in rules), (name, [str(m) for m in selector])
    for phrase in kind.says:
        fields = set(phrase.fields) - {"since", "summary"}
        fits = [r for r in rules
                if fields <= labels_of(r) and {m.name for m in phrase.when} <= labels_of(r)]
        assert fits, f"{name}: no shipped rule's alerts have {sorted(fields)} for {phrase.text!r}"


@pytest.mark.parametrize("edge", builtin_graph().edges, ids=lambda e: f"{e.cause}->{e.effect}")
def test_every_edge_links_on_labels_both_sides_carry(edge):
    """Every effect rule carries the label (else its alerts would never be linked); at least
    one cause rule does (AgentSelfCheckSilent has `node` only where agent.tags set it)."""
    graph = builtin_graph()
    causes, effects = rules_of(graph.kinds[edge.cause]), rules_of(graph.kinds[edge.effect])
    for condition in edge.same:
        assert any(set(condition.cause) & labels_of(r) for r in causes), (edge, condition)
        for rule in effects:
            assert set(condition.effect) & labels_of(rule), (edge, condition, rule.alert)


def test_the_gpu_faults_are_the_xids_that_kill_the_workload_not_the_applications_own():
    [selector, _ecc] = builtin_graph().kinds["gpu_fault"].selectors
    [xid] = [m for m in selector if m.name == "xid"]
    faults = {code for code in XID_MEANINGS if xid.matches(str(code))}
    assert faults == {48, 62, 64, 74, 79, 94, 95, 119, 120, 140}
    assert XID_MEANINGS[79][0] == "fallen_off_bus"
    for code in (13, 31, 43, 45, 63, 92):  # an application's fault; or recorded, not fatal
        assert code not in faults


def test_the_shipped_graph_and_a_users_section_read_the_same():
    """The file is written in the config's own shape: a user can copy any part of it."""
    import yaml

    raw = yaml.safe_load((REPO / "agent" / "data" / "causes.yaml").read_text())
    assert CausesConfig.model_validate({**raw, "builtin": False}) == builtin_config().model_copy(
        update={"builtin": False})


def test_a_kind_naming_a_rule_that_is_not_loaded_is_warned_about(tmp_path, capsys):
    """Legal (the rule may come with a reload), but most often a typo: `config validate`
    says so, with the name meant."""
    from agent.cli import main
    from agent.config import config_warnings, parse_config

    text = """
rule_files: [builtin:gpu]
causes:
  kinds:
    gpu_fault: {alerts: [{alert: GpuXidCritcal}]}
    batch: {alerts: [{alert: "Batch*"}, {alert: BatchScoringErrors}]}
"""
    warnings = config_warnings(parse_config(text))
    assert warnings == [
        "causes.kinds.gpu_fault.alerts[0]: no loaded rule is named 'GpuXidCritcal' (did you "
        "mean 'GpuXidCritical'?); this entry matches no alert",
        "causes.kinds.batch.alerts[1]: no loaded rule is named 'BatchScoringErrors'; this entry "
        "matches no alert"]
    path = tmp_path / "mlwarden.yaml"
    path.write_text(text)
    path.chmod(0o600)
    assert main(["config", "validate", str(path)]) == 0
    assert f"warning: {warnings[0]}" in capsys.readouterr().out
    assert not config_warnings(parse_config("rule_files: [builtin:gpu]"))  # shipped kinds


@pytest.mark.parametrize("section,message", [
    ("{explains: [{cause: gpu_fault, effect: modle_down, same: [node]}]}",
     "causes.explains[0].effect: unknown kind (did you mean 'model_down'?)"),
    ("{explains: [{cause: gpu_fault, effect: model_down}]}",
     "causes.explains[0].same: missing required key"),
    ("{explains: [{cause: gpu_fault, effect: model_down, same: []}]}",
     "causes.explains[0].same: tuple should have at least 1 item"),
    ("{explains: [{cause: gpu_fault, effect: model_down, on: [node]}]}",
     "causes.explains[0]: YAML reads the key `on` as true: write the label equalities as "
     "`same:`, found on:"),
    ("{explains: [{cause: model_down, effect: model_down, same: [node]}]}",
     "causes.explains: the graph has a cycle (model_down -> model_down)"),
    ("{kinds: {mine: {alerts: [{}]}}}",
     "causes.kinds.mine.alerts: alerts[0] would match every alert: name the rule "
     "(`alert: GpuDown`) or its labels, found an empty mapping"),
    ("{kinds: {mine: {alerts: [{alert: '=~Gpu('}]}}}",
     "causes.kinds.mine.alerts: label 'alert': invalid regular expression 'Gpu('"),
    ("{kinds: {Mine: {alerts: [{alert: A}]}}}",
     "causes.kinds: kind names are lower-case letters, digits and _, found 'Mine'"),
    ("{kinds: {mine: {alerts: [{alert: A}], says: ['{gpu.index}']}}}",
     "causes.kinds.mine.says[0].text: a phrase names labels only, like {node}, found "
     "{gpu.index} in '{gpu.index}'"),
    ("{kinds: {mine: {alerts: [{alert: A}], says: ['{since:>{width}}']}}}",
     "causes.kinds.mine.says[0].text: a phrase names labels only, like {node}, found "
     "{since:>{width}}"),
    ("{window: 0s}", "causes.window: input should be greater than 0"),
    ("{explains: [{cause: gpu_fault, effect: model_down, same: [{effect: node}]}]}",
     "causes.explains[0].same[0].cause: missing required key"),
])
def test_a_bad_causes_section_is_refused_naming_where(section, message):
    from agent.config import parse_config
    from agent.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        parse_config(f"causes: {section}\n", source="mlwarden.yaml")
    assert message in str(info.value), str(info.value)
