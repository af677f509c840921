"""One hanging check never delays a fast one beside it."""

from __future__ import annotations

import asyncio
import time

from agent.check import CheckContext, InstanceConfig
from agent.pipeline import Pipeline
from agent.samples import Status
from agent.scheduler import CheckScheduler
from tests.support.testchecks import BlockingHangCheck, CrashCheck, FastCheck, HangCheck


def _check(cls, name, interval, timeout=None, jitter=0.0):
    return cls(InstanceConfig(type=cls.type_name, name=name, interval=interval, timeout=timeout,
                              jitter=jitter), CheckContext())


class Recorder:
    name = "recorder"

    def __init__(self):
        self.results = []

    def consume(self, result):
        self.results.append(result)


async def test_hanging_checks_do_not_delay_a_fast_check():
    recorder = Recorder()
    pipeline = Pipeline([recorder])
    pipeline.start()
    sched = CheckScheduler(pipeline)
    FastCheck.runs = []
    sched.set_checks([
        _check(FastCheck, "fast", 0.25),
        _check(HangCheck, "hang", 1.0, timeout=30),
        _check(BlockingHangCheck, "thread-hang", 1.0, timeout=0.5),
        _check(CrashCheck, "crash", 0.25),
    ])
    sched.start()
    await asyncio.sleep(3.0)
    await sched.quiesce(0.1)
    sched.shutdown()
    await pipeline.drain(1.0)
    await pipeline.stop()

    runs = FastCheck.runs
    # 3 s at a 0.25 s interval is 12 runs; allow a loaded machine half of that
    assert len(runs) >= 6, runs
    gaps = [b - a for a, b in zip(runs, runs[1:])]
    assert max(gaps) < 1.0, gaps  # never held up behind the 30 s hangs
    fast = [r for r in recorder.results if r.check == "fast"]
    assert all(r.status is Status.OK for r in fast)
    crash = [r for r in recorder.results if r.check == "crash"]
    assert crash and all(r.status is Status.UNKNOWN for r in crash)
    assert sched.states["hang"].running or sched.states["hang"].skipped_overlap >= 0
    assert sched.states["crash"].consecutive_failures == len(crash)
    # every result carries the agent's meta samples; failures an error sample
    assert {s.metric for s in crash[0].samples} >= {"mlwarden.check.status", "mlwarden.check.errors"}


async def test_overrunning_check_is_skipped_not_stacked():
    pipeline = Pipeline([])
    pipeline.start()
    sched = CheckScheduler(pipeline)
    sched.set_checks([_check(HangCheck, "hang", 0.2, timeout=30)])
    sched.start()
    await asyncio.sleep(1.5)
    state = sched.states["hang"]
    assert state.running
    assert state.skipped_overlap >= 2
    assert await sched.quiesce(0.1) is False  # still in flight
    sched.shutdown()
    await pipeline.stop()


async def test_set_checks_swaps_and_keeps_history():
    pipeline = Pipeline([])
    sched = CheckScheduler(pipeline)
    a = _check(FastCheck, "a", 10)
    sched.set_checks([a])
    sched.states["a"].runs = 5
    removed = sched.set_checks([_check(FastCheck, "a", 5), _check(FastCheck, "b", 5)])
    assert removed == [a]
    assert sched.states["a"].runs == 5 and sched.states["a"].interval == 5
    b = sched.checks["b"]
    removed = sched.set_checks([b])
    assert [c.name for c in removed] == ["a"]
    assert "a" not in sched.states and "a" not in sched.checks


async def test_pipeline_sheds_oldest_when_full_and_isolates_sinks():
    class Broken:
        name = "broken"

        def consume(self, result):
            raise ValueError("nope")

    recorder = Recorder()
    pipeline = Pipeline([Broken(), recorder], maxsize=10)
    from agent.samples import CheckResult

    for i in range(15):
        pipeline.submit(CheckResult(check=f"c{i}", check_type="t", status=Status.OK))
    assert pipeline.shed == 5 and pipeline.depth == 10
    pipeline.start()
    assert await pipeline.drain(2.0)
    await pipeline.stop()
    assert [r.check for r in recorder.results] == [f"c{i}" for i in range(5, 15)]
    assert pipeline.sink_errors == {"broken": 10}


async def test_first_runs_are_spread_over_the_interval_not_bunched():
    """1,000 checks whose first runs fall in one second fire together on every interval and
    stall the event loop for over a second (benchmarks/soak.py: schedule lateness p99 1.4 s,
    0.1 s once spread). Short intervals still start within one interval."""
    sched = CheckScheduler(Pipeline([]))
    now = time.time()
    sched.set_checks([_check(FastCheck, f"slow{i}", 30) for i in range(200)]
                     + [_check(FastCheck, f"fast{i}", 0.5) for i in range(50)])
    slow = [sched.states[f"slow{i}"].next_run - now for i in range(200)]
    fast = [sched.states[f"fast{i}"].next_run - now for i in range(50)]
    assert max(slow) - min(slow) > 5, "first runs bunched together"
    assert max(slow) <= 10.5 and min(slow) >= -0.5, "first result later than the spread allows"
    assert max(fast) <= 1.0


async def _until(predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def _sleep_until(epoch: float) -> None:
    await asyncio.sleep(max(0.0, epoch - time.time()))


async def test_checks_of_one_slot_share_a_job_but_overrun_each_on_its_own():
    """One APScheduler job starts every check of a slot; max_instances stays per check."""
    sched = CheckScheduler(Pipeline([]), first_run_spread=0)
    sched.set_checks([_check(FastCheck, "fast", 0.2), _check(HangCheck, "hang", 0.2, timeout=30),
                      _check(FastCheck, "jittered", 0.2, jitter=0.05),
                      _check(FastCheck, "other-interval", 0.3)])
    assert len(sched._scheduler.get_jobs()) == 2  # noqa: SLF001 - the mapping is the point
    sched.start()
    try:
        await _until(lambda: sched.states["fast"].runs >= 4 and sched.states["jittered"].runs >= 3
                     and sched.states["hang"].skipped_overlap >= 3)
        assert sched.states["hang"].running and sched.states["hang"].runs == 0
        assert sched.states["fast"].skipped_overlap == 0
        assert sched.states["other-interval"].runs >= 1
        nxt = sched.states["fast"].next_run
        assert nxt is not None and abs(nxt - time.time()) < 1.0
    finally:
        await sched.quiesce(0.1)
        sched.shutdown()
    await _until(lambda: not sched.states["hang"].running, timeout=2)  # shutdown cancelled it


async def test_runs_missed_while_the_loop_was_busy_coalesce_into_one_per_check():
    sched = CheckScheduler(Pipeline([]), first_run_spread=0)
    sched.set_checks([_check(FastCheck, "a", 2), _check(FastCheck, "b", 2)])
    t0 = sched.states["a"].next_run
    sched.start()
    try:
        await _until(lambda: all(s.runs == 1 for s in sched.states.values()))
        # the loop is held from before t0 + 2 until after t0 + 4: two runs of each check due
        time.sleep(max(0.0, t0 + 4.3 - time.time()))
        await _sleep_until(t0 + 5.5)  # before the run due at t0 + 6
        for state in sched.states.values():
            assert (state.runs, state.skipped_overlap, state.missed) == (2, 0, 0), state
    finally:
        await sched.quiesce(0.1)
        sched.shutdown()


async def test_a_run_later_than_its_grace_is_missed_by_each_check_of_the_slot():
    # an interval of 1.99 s has a grace of 1 s: held 1.2 s past a due run, the slot's run
    # is dropped and counted for both checks; the next one comes on time
    sched = CheckScheduler(Pipeline([]), first_run_spread=0)
    sched.set_checks([_check(FastCheck, "a", 1.99), _check(FastCheck, "b", 1.99)])
    t0 = sched.states["a"].next_run
    sched.start()
    try:
        await _until(lambda: all(s.runs == 1 for s in sched.states.values()))
        time.sleep(max(0.0, t0 + 1.99 + 1.2 - time.time()))
        await _until(lambda: all(s.missed == 1 for s in sched.states.values()), timeout=2)
        assert [s.runs for s in sched.states.values()] == [1, 1]
        await _until(lambda: all(s.runs == 2 for s in sched.states.values()), timeout=5)
    finally:
        await sched.quiesce(0.1)
        sched.shutdown()


async def test_a_check_added_later_joins_its_phase_and_still_runs_within_the_spread():
    sched = CheckScheduler(Pipeline([]))
    first = [_check(FastCheck, f"c{i}", 30) for i in range(300)]
    sched.set_checks(first)
    sched.start()
    try:
        jobs = len(sched._scheduler.get_jobs())  # noqa: SLF001
        assert jobs < 100  # 300 checks over 10 s of 0.1 s slots
        now = time.time()
        sched.set_checks([*first, _check(FastCheck, "late", 30)])
        assert 0 <= sched.states["late"].next_run - now <= 10.2
        sched.set_checks(first[:1])  # emptied slots give their jobs back
        assert len(sched._scheduler.get_jobs()) == 1  # noqa: SLF001
    finally:
        sched.shutdown()


async def test_a_big_slot_starts_its_checks_in_groups_and_each_once():
    """A slot of 25 checks starts them in three groups (9, 9, 7) spread over the slot: each
    check still runs once per fire, and groups not started yet are dropped by quiesce."""
    from agent.scheduler import GROUP

    assert GROUP == 10
    sched = CheckScheduler(Pipeline([]), first_run_spread=0)
    sched.set_checks([_check(FastCheck, f"c{i}", 10) for i in range(25)])
    (key,) = sched._slots  # noqa: SLF001 - one slot: placed at the same moment, no spread
    await sched._fire(key)  # noqa: SLF001 - what APScheduler calls when the slot is due
    assert sum(s.running for s in sched.states.values()) == 9
    assert len(sched._later) == 2  # noqa: SLF001
    await _until(lambda: all(s.runs == 1 for s in sched.states.values()))
    assert not sched._later  # noqa: SLF001
    assert all(s.skipped_overlap == 0 for s in sched.states.values())

    await sched._fire(key)  # noqa: SLF001
    assert await sched.quiesce(5)
    await asyncio.sleep(0.2)  # past the slot: a dropped group would have started by now
    assert sorted(s.runs for s in sched.states.values()) == [1] * 16 + [2] * 9
    sched.shutdown()


def test_check_state_copy_carries_every_field():
    """CheckState has slots (memory, issue #20): its copy is built from every field, in
    order, so a field added later cannot be left behind or swapped with another."""
    import dataclasses

    from agent.samples import Status
    from agent.scheduler import CheckState

    state = CheckState(name="ep", type="model_endpoint", interval=10.0)
    for i, f in enumerate(dataclasses.fields(CheckState)):
        if f.name not in ("name", "type", "interval"):
            setattr(state, f.name, Status.WARNING if f.name == "status" else float(i))
    snap = state.copy()
    assert snap is not state and snap == state and snap.as_dict() == state.as_dict()
    assert [getattr(snap, f.name) for f in dataclasses.fields(CheckState)] == \
        [getattr(state, f.name) for f in dataclasses.fields(CheckState)]
    assert not hasattr(state, "__dict__")
