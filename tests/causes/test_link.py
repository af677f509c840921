"""link() and explain() on the shipped graph: which alert explains which, and why.

Signals are written as the shipped rule packs label their alerts (the scenario test,
test_scenario.py, gets them from the real checks and rules instead)."""

from __future__ import annotations

import pytest

from agent.causes import CauseGraph, CausesConfig, Signal, builtin_graph, explain, link
from agent.causes.link import same_host

pytestmark = pytest.mark.unit

T = 1_796_551_320.0  # 2026-12-06 10:02 UTC
WINDOW = 600.0       # the shipped graph's


def xid(node="gpu-node-7", gpu="3", code="79", at=T, **more) -> Signal:
    return Signal.of("GpuXidCritical", {"check": "fleet-gpus", "node": node, "gpu": gpu,
                                        "uuid": f"GPU-{node}-{gpu}", "xid": code,
                                        "xid_meaning": "fallen_off_bus", "severity": "critical",
                                        **more}, at, fingerprint=f"xid-{node}-{gpu}-{code}-{at}")


def down(check="ranker", node="gpu-node-7", at=T + 10) -> Signal:
    labels = {"check": check, "model": check, "endpoint": "http://127.0.0.1:8080",
              "protocol": "v2", "severity": "critical"}
    if node:
        labels["node"] = node
    return Signal.of("EndpointDown", labels, at, fingerprint=f"down-{check}-{node}-{at}")


def errors(check="ranker", node="gpu-node-7", at=T + 50) -> Signal:
    return Signal.of("EndpointErrors", {"check": check, "model": check, "node": node,
                                        "severity": "warning"}, at,
                     fingerprint=f"errors-{check}-{node}-{at}")


def task(host="gpu-node-7", at=T + 60, dag="train_ranker", task_id="fit") -> Signal:
    return Signal.of("AirflowTaskFailed", {"check": "prod-airflow", "dag_id": dag,
                                           "task_id": task_id, "run_id": "scheduled__1",
                                           "try_number": "1", "hostname": host}, at,
                     fingerprint=f"task-{dag}-{task_id}-{host}-{at}")


def pairs(links) -> set[tuple[str, str]]:
    return {(x.cause.fingerprint, x.effect.fingerprint) for x in links}


def everything(*signals: Signal, now: float = T + 300) -> list:
    return link(signals, signals, now)


# -- what links, and why ----------------------------------------------------------------------
def test_a_fallen_gpu_explains_the_model_and_the_task_on_its_node_and_says_why():
    cause, model, fit = xid(), down(), task(host="GPU-Node-7.ec2.internal")
    found = {x.effect.rule: x for x in everything(cause, model, fit)}
    assert set(found) == {"EndpointDown", "AirflowTaskFailed"}
    assert all(x.cause == cause for x in found.values())
    assert found["EndpointDown"].reason == "same node gpu-node-7 within 10m"
    assert (found["EndpointDown"].cause_kind, found["EndpointDown"].effect_kind) == (
        "gpu_fault", "model_down")
    assert found["AirflowTaskFailed"].reason == (
        "node gpu-node-7 = hostname GPU-Node-7.ec2.internal within 10m")


def test_the_same_failures_on_another_node_are_not_linked():
    gpu = xid(node="gpu-node-7")
    linked = everything(gpu, down(node="gpu-node-8"), task(host="gpu-node-8"),
                        errors(node="gpu-node-8"))
    assert not [x for x in linked if x.cause == gpu]
    # what remains is the model server's own outage explaining its failed probes
    assert [(x.cause.rule, x.effect.rule, x.reason) for x in linked] == [
        ("EndpointDown", "EndpointErrors", "same check ranker within 10m")]


def test_no_cause_links_nothing():
    assert everything(errors(), task(), errors(check="scorer", node="gpu-node-8")) == []
    assert link([], [down(), task()], T + 300) == []


def test_the_window_holds_either_way_and_an_effect_two_windows_later_is_not_linked():
    cause = xid()
    just_after, just_before = task(at=T + WINDOW), task(at=T - WINDOW, task_id="prep")
    too_late, too_early = task(at=T + 2 * WINDOW, task_id="late"), task(at=T - WINDOW - 1,
                                                                       task_id="early")
    linked = everything(cause, just_after, just_before, too_late, too_early, now=T + 3 * WINDOW)
    assert pairs(linked) == {(cause.fingerprint, just_after.fingerprint),
                             (cause.fingerprint, just_before.fingerprint)}


def test_an_alert_never_explains_itself_and_future_effects_are_ignored():
    cause = xid()
    assert link([cause], [cause], T + 60) == []
    assert link([cause], [task(at=T + 120)], T + 60) == []  # not started yet at `now`


def test_a_missing_or_empty_label_never_matches():
    assert everything(xid(), down(node="")) == []
    assert everything(xid(node=""), down(node="")) == []
    assert everything(xid(), task(host="")) == []


def test_a_pod_on_the_faulted_gpu_explains_a_task_whose_host_is_that_pod():
    """KubernetesExecutor: the task's host name is its pod's name, which the GPU check
    attributes to the GPU (dcgm-exporter's pod label, NVML processes through /proc)."""
    cause = xid(node="ip-10-0-3-7.ec2.internal", pod="train-ranker-fit-7f9c")
    [found] = everything(cause, task(host="train-ranker-fit-7f9c"))
    assert found.reason == "pod train-ranker-fit-7f9c = hostname train-ranker-fit-7f9c within 10m"


def test_a_failed_run_is_explained_through_the_hosts_of_its_failed_tasks():
    run = Signal.of("AirflowDagRunFailed", {"check": "prod-airflow", "dag_id": "train_ranker",
                                            "run_id": "r1", "failed_tasks": "evaluate,fit",
                                            "failed_hosts": "cpu-1,gpu-node-7.example.com"},
                    T + 70, fingerprint="run")
    [found] = everything(xid(), run)
    assert found.reason == "node gpu-node-7 in failed_hosts cpu-1,gpu-node-7.example.com within 10m"
    assert everything(xid(node="gpu-node-8"), run) == []


@pytest.mark.parametrize("a,b,same", [
    ("gpu-node-7", "gpu-node-7", "gpu-node-7"),
    ("gpu-node-7", "GPU-NODE-7.example.com.", "gpu-node-7"),
    ("gpu-node-7.example.com", "gpu-node-7", "gpu-node-7.example.com"),
    ("gpu-node-7", "gpu-node-70", None),
    ("gpu-node-7.a.example", "gpu-node-7.b.example", None),  # two qualified names must agree
    ("10.0.1.2", "10.0.1.3", None),                           # addresses are not short names
    ("gpu-node-7", "cpu-1, gpu-node-7", "gpu-node-7"),
    ("", "gpu-node-7", None),
])
def test_host_names(a, b, same):
    assert same_host(a, b) == same


def test_while_active_explains_effects_that_start_while_the_cause_still_fires():
    scheduler = Signal.of("AirflowSchedulerUnhealthy",
                          {"check": "prod-airflow", "component": "scheduler"}, T, fingerprint="s")
    late = Signal.of("AirflowDagLate", {"check": "prod-airflow", "dag_id": "train_ranker"},
                     T + 3 * WINDOW, fingerprint="late")
    elsewhere = Signal.of("AirflowDagLate", {"check": "staging-airflow", "dag_id": "x"},
                          T + 60, fingerprint="elsewhere")
    [found] = link([scheduler], [late, elsewhere], T + 4 * WINDOW)
    assert found.effect is late and found.reason == "same check prod-airflow while it fired"
    back = Signal.of(scheduler.rule, dict(scheduler.labels), T, fingerprint="s",
                     until=T + WINDOW)  # resolved before the run was late: not its cause
    assert link([back], [late], T + 4 * WINDOW) == []


# -- explain: one message per root cause ---------------------------------------------------------
def test_effects_of_effects_go_under_the_root_cause_each_once():
    cause, model, errs, fit = xid(), down(), errors(), task()
    other = errors(check="scorer", node="gpu-node-8")  # down too, but on the healthy node
    other_down = down(check="scorer", node="gpu-node-8")
    links = everything(cause, model, errs, fit, other, other_down)
    assert len(links) == 5  # errs is linked to both the GPU and its own server's outage
    one, two = explain(links)
    assert (one.cause, one.kind) == (cause, "gpu_fault")
    assert one.effects == (model, errs, fit)  # in the order they started
    assert [x.reason for x in one.links] == ["same node gpu-node-7 within 10m"] * 2 + [
        "node gpu-node-7 = hostname gpu-node-7 within 10m"]
    # the scorer's outage explains its own errors: an ordinary cause, on its own
    assert (two.cause, two.kind, two.effects) == (other_down, "model_down", (other,))


def test_the_earliest_root_wins_when_two_causes_explain_an_effect():
    early, late = xid(gpu="3", at=T), xid(gpu="5", at=T + 30)
    model = down(at=T + 40)
    [only] = explain(everything(early, late, model))
    assert only.cause == early and only.effects == (model,)  # the later XID is not linked
    again = explain(everything(model, late, early))           # order of input does not matter
    assert again == [only]


def test_links_and_signals_are_json_values():
    [found] = everything(xid(), down())
    doc = found.as_dict()
    assert doc == {"cause": found.cause.fingerprint, "cause_rule": "GpuXidCritical",
                   "effect": found.effect.fingerprint, "effect_rule": "EndpointDown",
                   "cause_kind": "gpu_fault", "effect_kind": "model_down",
                   "reason": "same node gpu-node-7 within 10m"}
    assert Signal.from_dict(found.cause.as_dict()) == found.cause


# -- the graph from config ------------------------------------------------------------------------
def test_a_users_kind_and_edge_link_their_own_rules():
    graph = CauseGraph.build(CausesConfig.model_validate({
        "kinds": {"batch_scoring": {"alerts": [{"alert": "BatchScoringErrors"}],
                                    "says": ["batch scoring on {node} failing since {since}"]}},
        "explains": [{"cause": "gpu_fault", "effect": "batch_scoring", "same": ["node"],
                      "window": "30m"}]}))
    batch = Signal.of("BatchScoringErrors", {"node": "gpu-node-7"}, T + 1200, fingerprint="b")
    [found] = link([xid()], [batch], T + 1300, graph)
    assert found.reason == "same node gpu-node-7 within 30m"
    assert link([xid()], [batch], T + 1300) == []  # not in the shipped graph


def test_a_users_edge_replaces_the_shipped_one_or_drops_it():
    wider = CauseGraph.build(CausesConfig.model_validate({"explains": [
        {"cause": "gpu_fault", "effect": "task_failed", "window": "1h",
         "same": [{"cause": "node", "effect": "hostname", "host": True}]}]}))
    late = task(at=T + 1800)
    assert [x.reason for x in link([xid()], [late], T + 1900, wider)] == [
        "node gpu-node-7 = hostname gpu-node-7 within 1h"]
    off = CauseGraph.build(CausesConfig.model_validate({"explains": [
        {"cause": "gpu_fault", "effect": "model_down", "same": ["node"], "enabled": False}]}))
    assert link([xid()], [down()], T + 60, off) == []
    assert len(off.edges) == len(builtin_graph().edges) - 1


def test_a_users_window_is_the_default_of_every_edge_without_its_own():
    graph = CauseGraph.build(CausesConfig.model_validate({"window": "30m"}))
    assert {e.window for e in graph.edges} == {1800.0, 900.0}  # node_silent keeps its own
    assert link([xid()], [task(at=T + 1500)], T + 1600, graph)


def test_a_users_alerts_join_a_shipped_kind_and_builtin_false_starts_empty():
    graph = CauseGraph.build(CausesConfig.model_validate(
        {"kinds": {"gpu_fault": {"alerts": [{"alert": "MyXid"}]}}}))
    mine = Signal.of("MyXid", {"node": "gpu-node-7"}, T, fingerprint="mine")
    assert graph.kinds_of(mine) == ("gpu_fault",) and graph.kinds_of(xid()) == ("gpu_fault",)
    assert link([mine], [down()], T + 60, graph)
    empty = CauseGraph.build(CausesConfig(builtin=False))
    assert empty.kinds == {} and link([xid()], [down()], T + 60, empty) == []


def test_signals_come_from_the_chains_alert_type_as_it_is():
    """The one seam to the alert chain: its one alert value (agent/alert.py), firing or not."""
    from agent.alert import Alert

    firing = Alert.of("EndpointDown", {"check": "ranker", "node": "gpu-node-7"}, "firing",
                      "critical", annotations={"summary": "ranker is down"},
                      active_since=T + 10, fired_at=T + 70,
                      resolved_at=T - 3600)  # an earlier episode's end: not this one's
    signal = Signal.from_alert(firing)
    assert (signal.rule, signal.since, signal.until, signal.summary, signal.severity) == (
        "EndpointDown", T + 10, None, "ranker is down", "critical")
    assert signal.fingerprint == firing.fingerprint and signal.label("node") == "gpu-node-7"
    sent = Alert(fingerprint="f1", rule="GpuXidCritical", labels={"node": "gpu-node-7"},
                 state="resolved", fired_at=T, resolved_at=T + 600)
    assert (Signal.from_alert(sent).since, Signal.from_alert(sent).until) == (T, T + 600)

def test_an_alert_is_tried_only_against_kinds_that_can_pick_its_rule_with_the_same_answer():
    """kinds_of skips kinds whose every selector names another rule exactly; kinds picked by
    a pattern or by labels alone are always tried. The answer (and its order) is what trying
    every kind gives."""
    graph = CauseGraph.build(CausesConfig.model_validate({"kinds": {
        "by_pattern": {"alerts": [{"alert": "=~^Model.*$"}]},
        "by_label": {"alerts": [{"model": "ranker"}]},
        "gpu_fault": {"alerts": [{"alert": "MyXid"}]}}}))
    named = {m.value for kind in graph.kinds.values() for selector in kind.selectors
             for m in selector if m.name == "alert"}
    for rule in sorted(named | {"ModelLatency", "NoSuchRule"}):
        for labels in ({}, {"model": "ranker"}, {"xid": "79", "node": "n1"}):
            signal = Signal.of(rule, labels, T, fingerprint="f")
            every = tuple(n for n, kind in graph.kinds.items() if kind.matches(signal))
            assert graph.kinds_of(signal) == every, (rule, labels)
    probe = Signal.of("ModelLatency", {"model": "ranker"}, T, fingerprint="f")
    assert graph.kinds_of(probe) == ("by_pattern", "by_label")
