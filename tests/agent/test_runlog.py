"""The log says each change of a check once: flapping and persistent failures are damped."""

from __future__ import annotations

import logging

import pytest

from agent.runlog import FLAP_RUNS, REPEAT, RunLog
from agent.samples import CheckResult, Status

T0 = 1_790_000_000.0


@pytest.fixture
def said(caplog):
    caplog.set_level(logging.INFO, logger="agent.scheduler")
    return lambda: [r.getMessage() for r in caplog.records if r.name == "agent.scheduler"]


def feed(runlog: RunLog, statuses, *, start: int = 0, interval: float = 10.0, error=None, previous=None):
    for i, status in enumerate(statuses, start):
        msg = "HTTP 200" if status is Status.OK else "HTTP 503"
        runlog.record("ep", previous, CheckResult("ep", "model_endpoint", status, msg,
                                                  started=T0 + i * interval, error=error))
        previous = status
    return previous


def test_a_target_going_down_and_up_is_said_once_each(said):
    runlog = RunLog()
    prev = feed(runlog, [Status.OK] * 3 + [Status.CRITICAL] * 5)
    feed(runlog, [Status.OK] * 5, start=8, previous=prev)
    assert said() == ["check ep is now CRITICAL: HTTP 503", "check ep is now OK: HTTP 200"]


def test_a_flapping_check_is_said_to_flap_once_then_settles(said):
    runlog = RunLog()
    flaps = [Status.OK, Status.CRITICAL] * 30
    prev = feed(runlog, flaps)
    lines = said()
    assert lines[:3] == ["check ep is now CRITICAL: HTTP 503", "check ep is now OK: HTTP 200",
                         "check ep is now CRITICAL: HTTP 503"]
    assert len(lines) == 4 and lines[3].startswith("check ep is flapping: 4 status changes in 4 runs, now OK")
    feed(runlog, [Status.OK] * (FLAP_RUNS + 5), start=len(flaps), previous=prev)
    lines = said()
    assert len(lines) == 5
    assert lines[4].startswith(f"check ep stopped flapping: OK for {FLAP_RUNS} runs (56 changes not logged)")
    # settled: the next change is said again, once
    feed(runlog, [Status.CRITICAL] * 3, start=len(flaps) + FLAP_RUNS + 5, previous=Status.OK)
    assert said()[5:] == ["check ep is now CRITICAL: HTTP 503"]


def test_changes_spread_over_many_runs_are_not_flapping(said):
    runlog = RunLog()
    seq = ([Status.OK] * 4 + [Status.CRITICAL] * 4) * 4  # a change every 4 runs: 4 changes span 13 runs
    feed(runlog, seq)
    assert not any("flapping" in line for line in said())
    assert len(said()) == 7


def test_a_persistent_failure_is_repeated_every_ten_minutes_with_its_count(said):
    runlog = RunLog()
    runs = int(REPEAT / 10) * 2 + 1  # 20 minutes and one run at a 10 s interval
    feed(runlog, [Status.UNKNOWN] * runs, error="timeout")
    lines = said()
    assert lines[0] == "check ep failed (timeout): HTTP 503"
    assert lines[1:] == ["check ep still failing after 61 runs (timeout): HTTP 503",
                         "check ep still failing after 121 runs (timeout): HTTP 503"]
    # another kind of failure is said at once; recovery says how long it failed
    feed(runlog, [Status.UNKNOWN], start=runs, error="crash")
    feed(runlog, [Status.OK], start=runs + 1, previous=Status.UNKNOWN)
    assert said()[3:] == ["check ep failed (crash): HTTP 503", f"check ep runs again after {runs + 1} failed runs",
                          "check ep is now OK: HTTP 200"]


def test_forget_starts_a_check_afresh(said):
    runlog = RunLog()
    feed(runlog, [Status.OK, Status.CRITICAL] * 3)
    runlog.forget("ep")
    feed(runlog, [Status.CRITICAL], start=6, previous=Status.OK)
    assert said()[-1] == "check ep is now CRITICAL: HTTP 503"
