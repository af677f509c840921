"""Issue #22's scenario, outside in: a GPU falls off the bus (XID 79) on gpu-node-7 while the
model served there and the training task that ran there fail, and the same failures happen
on gpu-node-8 (tests/causes/fleet.py). The real checks and the shipped rule packs make the
alerts; the shipped cause graph links them."""

from __future__ import annotations

import pytest

from agent.causes import explain, link
from agent.causes.render import linked_text
from tests.causes.fleet import FAULT, NODE7, NODE8, RUNS, WINDOW, Fleet

pytestmark = pytest.mark.integration

RUN7, RUN8, RUN7_LATER = RUNS


def name(signal) -> str:
    """An alert by its rule and what it is about."""
    about = (signal.label("task_id") or signal.label("dag_id") or signal.label("check")
             if signal.rule.startswith(("Airflow", "Endpoint")) else signal.label("node"))
    return f"{signal.rule}:{about}"


async def incident(fleet: Fleet, *, gpu: bool = True) -> None:
    """10:02: the models on both nodes fail, with (or without) the GPU; the training run on
    gpu-node-7 and the batch run on gpu-node-8 fail 40 s later."""
    await fleet.run_until(FAULT)                 # two minutes of a healthy fleet
    if gpu:
        fleet.gpu_falls_off_the_bus(NODE7, 3)
    fleet.health.update(ranker=503, scorer=503)
    await fleet.run_until(FAULT + 10)
    if gpu:
        fleet.gpu_is_gone(NODE7, 3)
    await fleet.run_until(FAULT + 40)
    fleet.task_fails(RUN7)
    fleet.task_fails(RUN8)
    await fleet.run_until(FAULT + 300)


@pytest.mark.parametrize("source", ["dcgm", "nvml"])
async def test_the_fault_explains_what_failed_on_its_node_and_nothing_elsewhere(source):
    async with Fleet(source) as fleet:
        await incident(fleet)
        firing = fleet.alerts()
        now = fleet.clock.now
    assert sorted(name(s) for s in firing) == sorted([
        f"GpuXidCritical:{NODE7}", f"GpuDown:{NODE7}", f"GpuLost:{NODE7}",
        "EndpointDown:ranker", "EndpointErrors:ranker", "EndpointDown:scorer",
        "EndpointErrors:scorer", "AirflowTaskFailed:train", "AirflowDagRunFailed:train_ranker",
        "AirflowTaskFailed:score", "AirflowDagRunFailed:batch_score"])
    explained = {x.cause.rule: x for x in explain(link(firing, firing, now))}
    assert sorted(explained) == ["EndpointDown", "GpuXidCritical"]
    gpu, model = explained["GpuXidCritical"], explained["EndpointDown"]
    assert name(gpu.cause) == f"GpuXidCritical:{NODE7}" and gpu.kind == "gpu_fault"
    assert gpu.cause.label("gpu") == "3" and gpu.cause.label("xid") == "79"
    assert sorted(name(e) for e in gpu.effects) == sorted([
        f"GpuDown:{NODE7}", f"GpuLost:{NODE7}", "EndpointDown:ranker", "EndpointErrors:ranker",
        "AirflowTaskFailed:train", "AirflowDagRunFailed:train_ranker"])
    why = {name(x.effect): x.reason for x in gpu.links}
    assert why["EndpointDown:ranker"] == f"same node {NODE7} within 10m"
    assert why["AirflowTaskFailed:train"] == f"node {NODE7} = hostname {NODE7} within 10m"
    assert why["AirflowDagRunFailed:train_ranker"] == (
        f"node {NODE7} = failed_hosts {NODE7} within 10m")
    # gpu-node-8's failures are not the GPU's: the scorer's outage explains its own probe
    # errors (as the endpoints pack's inhibit rule says), and the batch run stays on its own
    assert (name(model.cause), [name(e) for e in model.effects]) == (
        "EndpointDown:scorer", ["EndpointErrors:scorer"])
    linked = {name(s) for x in (gpu, model) for s in (x.cause, *x.effects)}
    assert {name(s) for s in firing} - linked == {"AirflowTaskFailed:score",
                                                  "AirflowDagRunFailed:batch_score"}
    assert linked_text(gpu) == (
        f"Cause: GPU 3 on {NODE7} fell off the bus (XID 79) at 10:02. Explains: "
        f"model ranker on {NODE7} down since 10:02; GPU 3 on {NODE7} stopped answering at "
        f"10:02; a GPU on {NODE7} stopped answering at 10:02; task train_ranker.train failed "
        f"on {NODE7}; run {RUN7} of train_ranker failed (train on {NODE7}); model ranker "
        "failing probes since 10:02")


async def test_without_a_cause_the_same_failures_are_not_linked():
    async with Fleet("dcgm") as fleet:
        await incident(fleet, gpu=False)
        firing = fleet.alerts()
        now = fleet.clock.now
    assert not [s for s in firing if s.rule.startswith("Gpu")]
    links = link(firing, firing, now)
    # only each model server's own outage explains its probe errors; nothing else is linked
    assert sorted((name(x.cause), name(x.effect)) for x in links) == [
        ("EndpointDown:ranker", "EndpointErrors:ranker"),
        ("EndpointDown:scorer", "EndpointErrors:scorer")]


async def test_an_effect_two_windows_later_is_not_linked():
    async with Fleet("dcgm") as fleet:
        await incident(fleet)
        await fleet.run_until(FAULT + 2 * WINDOW, every=30)
        fleet.task_fails(RUN7_LATER)                # on the same node, 20 minutes on
        await fleet.run_until(FAULT + 2 * WINDOW + 60)
        known, firing = list(fleet.history.values()), fleet.alerts()
        now = fleet.clock.now
    [xid] = [s for s in known if s.rule == "GpuXidCritical"]
    assert xid.until is not None, "its 10m window has passed: resolved (the history keeps it)"
    late = [s for s in firing if s.label("run_id") == RUN7_LATER]
    assert sorted(name(s) for s in late) == ["AirflowDagRunFailed:train_ranker",
                                             "AirflowTaskFailed:train"]
    assert all(s.since >= FAULT + 2 * WINDOW for s in late)
    links = link(known, firing, now)
    assert not [x for x in links if x.effect in late]
    # the first failures are still explained: by the resolved XID and the GPU still lost
    first = [x for x in links if x.effect.label("run_id") == RUN7]
    assert {x.cause.rule for x in first} == {"GpuXidCritical", "GpuDown", "GpuLost"}
    # one lost GPU is not a silent node: GpuMetricsAbsent (by node) stays quiet
    assert not [s for s in known if s.rule == "GpuMetricsAbsent"]


async def test_a_node_that_goes_silent_explains_what_failed_on_it():
    """gpu-node-8 dies: its dcgm-exporter stops answering, its model and its batch run fail.
    GpuMetricsAbsent fires 10 minutes later and explains what failed there before it."""
    async with Fleet("dcgm") as fleet:
        await fleet.run_until(FAULT)
        fleet.silent.add(NODE8)
        fleet.health.update(scorer=503)
        await fleet.run_until(FAULT + 40)
        fleet.task_fails(RUN8)
        await fleet.run_until(FAULT + WINDOW + 60, every=30)
        firing = fleet.alerts()
        now = fleet.clock.now
    [silent] = [s for s in firing if s.rule == "GpuMetricsAbsent"]
    assert dict(silent.labels) == {"node": NODE8, "severity": "warning"}
    [root] = [x for x in explain(link(firing, firing, now)) if x.cause == silent]
    assert root.kind == "node_silent"
    assert sorted(name(e) for e in root.effects) == [
        "AirflowDagRunFailed:batch_score", "AirflowTaskFailed:score", "EndpointDown:scorer",
        "EndpointErrors:scorer"]
    assert linked_text(root).startswith(f"Cause: node {NODE8} stopped reporting at 10:12.")
