"""The delivery decision (agent.causes.placement.decide), case by case: pure, no I/O."""

from __future__ import annotations

import pytest

from agent.causes import Signal
from agent.causes.placement import Member, decide

pytestmark = pytest.mark.unit

N7, N8 = "gpu-node-7", "gpu-node-8"
T = 1_000_000.0


def sig(rule: str, fp: str, since: float = T, until: float | None = None, **labels: str) -> Signal:
    return Signal.of(rule, labels, since, fingerprint=fp, until=until)


GPU = sig("GpuXidCritical", "gpu", node=N7, gpu="3", xid="79")
DOWN7 = sig("EndpointDown", "down7", T + 30, node=N7, check="ranker", model="ranker")
DOWN8 = sig("EndpointDown", "down8", T + 30, node=N8, check="scorer", model="scorer")


def member(signal: Signal, group: str, receiver: str = "slack", **kw) -> Member:
    return Member(group=group, receiver=receiver, signal=signal,
                  fired_at=kw.pop("fired_at", signal.since), **kw)


def test_an_effect_goes_under_its_cause_in_the_same_receiver_only():
    d = decide([member(GPU, "g-gpu"), member(DOWN7, "g-down"), member(DOWN8, "g-down8")],
               T + 60)
    assert d.away == {("g-down", "down7")}
    [carried] = d.carries["g-gpu"]
    assert [i.effect.rule for i in carried.explanation.links] == ["EndpointDown"]
    assert carried.explanation.links[0].reason == f"same node {N7} within 10m"
    assert ("g-down8", "down8") not in d.explained


def test_another_receiver_without_the_cause_pages_the_effect_and_is_told_why():
    d = decide([member(GPU, "g-gpu", "infra"), member(DOWN7, "g-down", "models")], T + 60)
    assert not d.away and not d.carries
    assert d.explained[("g-down", "down7")].cause.rule == "GpuXidCritical"


def test_a_muted_cause_takes_nothing_away():
    d = decide([member(GPU, "g-gpu", live=False, said="muted"), member(DOWN7, "g-down")],
               T + 60)
    assert not d.away and not d.carries


def test_an_effect_that_paged_stays_and_is_listed_as_paged():
    d = decide([member(GPU, "g-gpu"), member(DOWN7, "g-down", said="firing")], T + 60)
    assert not d.away
    assert d.carries["g-gpu"][0].paged == frozenset({"down7"})


def test_hold_waits_for_a_cause_only_for_alerts_a_cause_could_explain():
    idle = sig("GpuIdle", "idle", T, node=N7)
    members = [member(DOWN7, "g-down", hold=30.0), member(idle, "g-idle", hold=30.0)]
    assert decide(members, T + 40).wait_until == {"g-down": T + 60}
    assert decide(members, T + 61).wait_until == {}          # the hold is over: it pages
    assert decide([member(DOWN7, "g-down", hold=0.0)], T + 40).wait_until == {}


def test_a_resolved_cause_lets_its_effects_go_and_says_what_still_fires():
    gone = sig("GpuXidCritical", "gpu", until=T + 600, node=N7, gpu="3", xid="79")
    # the round it resolved: its group is yet to say so; its effects wait for that message
    d = decide([member(gone, "g-gpu", said="firing", was_cause=True),
                member(DOWN7, "g-down", said="linked")], T + 600)
    assert d.away == {("g-down", "down7")} and not d.due
    [carried] = d.carries["g-gpu"]
    assert carried.explanation.cause.until == T + 600
    assert [i.effect.key for i in carried.explanation.links] == ["down7"]
    # said (its group let it go): the effect is on its own, at once
    d = decide([member(DOWN7, "g-down", said="linked")], T + 605)
    assert not d.away and d.due == {"g-down"}


def test_a_cause_whose_effects_ended_is_still_carried_by_its_group():
    d = decide([member(GPU, "g-gpu", said="firing", was_cause=True)], T + 60)
    [carried] = d.carries["g-gpu"]
    assert carried.explanation.kind == "gpu_fault" and not carried.explanation.links


def test_alertmanager_receivers_are_neither_moved_nor_held():
    d = decide([member(GPU, "am1", "am", moves=False),
                member(DOWN7, "am2", "am", moves=False, hold=30.0)], T + 40)
    assert not d.away and not d.carries and not d.wait_until
    assert d.explained[("am2", "down7")].reason == f"same node {N7} within 10m"


def test_two_windows_later_is_not_linked():
    late = sig("EndpointDown", "late", T + 1200, node=N7, check="ranker", model="ranker")
    d = decide([member(GPU, "g-gpu"), member(late, "g-down")], T + 1200)
    assert not d.away and not d.explained


def test_a_silenced_effect_is_not_said_under_its_cause():
    d = decide([member(GPU, "g-gpu"), member(DOWN7, "g-down", live=False, said="muted")],
               T + 60)
    assert not d.carries


def test_a_cause_and_its_effect_in_one_group_stay_there_said_once():
    d = decide([member(GPU, "g-n7"), member(DOWN7, "g-n7")], T + 60)
    assert not d.away
    assert [i.effect.key for i in d.carries["g-n7"][0].explanation.links] == ["down7"]
