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


class _Remembers(dict):
    """A memory that keeps every check from its first run and never lets go: how RunLog
    worked before it forgot steady checks (issue #20), the reference it must still match."""

    def get(self, key, default=None):
        from agent.runlog import _Memory

        return self.setdefault(key, _Memory())

    def __delitem__(self, key):
        pass


def test_steady_checks_are_not_remembered_and_nothing_said_changes(caplog):
    """A check that keeps its status holds nothing; one whose changes are too old to flap
    is let go; and over random histories every line is what a log that remembers every
    check from its first run says."""
    import random

    runlog = RunLog()
    feed(runlog, [Status.OK] * 30)
    assert runlog._memory == {}
    prev = feed(runlog, [Status.CRITICAL], start=30, previous=Status.OK)
    assert "ep" in runlog._memory
    feed(runlog, [Status.CRITICAL] * FLAP_RUNS, start=31, previous=prev)
    assert runlog._memory == {}

    caplog.set_level(logging.INFO, logger="agent.scheduler")
    rng = random.Random(20)
    for _ in range(40):
        runs = []
        for _ in range(rng.randrange(1, 8)):  # stretches of a status, an error, or a flap
            kind = rng.choice(["ok", "crit", "warn", "error", "flap"])
            length = rng.randrange(1, 25)
            if kind == "flap":
                runs += [(rng.choice([Status.OK, Status.CRITICAL]), None) for _ in range(length)]
            elif kind == "error":
                runs += [(Status.UNKNOWN, rng.choice(["timeout", "exception"])) for _ in range(length)]
            else:
                status = {"ok": Status.OK, "crit": Status.CRITICAL, "warn": Status.WARNING}[kind]
                runs += [(status, None)] * length
        said = []
        for log in (RunLog(), RunLog()):
            if said:
                log._memory = _Remembers()
            caplog.clear()
            previous = None
            for i, (status, error) in enumerate(runs):
                log.record("ep", previous, CheckResult("ep", "model_endpoint", status, status.name,
                                                       started=T0 + i * 61.0, error=error))
                previous = status
            said.append([r.getMessage() for r in caplog.records])
        assert said[0] == said[1]
