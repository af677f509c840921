"""``task_instances: true``: every task instance of a finished run, with its host and window.

Task instances are the ones recorded from real Airflow 3.3.2 and 2.10.5 (tests/fixtures),
served by the strict fake; GPU cost attribution (agent/cost) reads these samples.
"""

from __future__ import annotations

import pytest

from agent.check import MemoryState
from checks.airflow.times import parse_ts
from tests.checks.airflow_fake import FakeAirflow
from tests.checks.test_airflow import T0, Clock, cfg, find, poll
from tests.support.targets import load_fixture

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("major", ["3", "2"])
async def test_each_task_instance_that_ran_is_reported_once_with_host_and_window(major: str) -> None:
    clock = Clock(T0 + 3600)
    fake = FakeAirflow(major, clock)
    recorded = load_fixture(f"airflow{major}", "task_instances_train_ranker.json")["task_instances"]
    run_id = recorded[0]["dag_run_id"]
    fake.run("train_ranker", run_id, "failed", T0 - 60, T0 + 30)
    fake.tis[("train_ranker", run_id)] = recorded
    ok = fake.run("etl_daily_features", "manual__ok", "success", T0, T0 + 600)
    fake.ti("etl_daily_features", "manual__ok", "extract", "success", try_number=2,
            start_date=ok["start_date"], end_date=ok["end_date"], hostname="gpu-node-1")
    state = MemoryState()
    async with fake.target() as t:
        config = cfg(t.url, task_instances=True, initial_lookback=7200)
        first, _ = await poll(config, state, clock)
        clock.now += 60
        second, _ = await poll(config, state, clock)
    assert first.status.name == "OK", first.message
    ran = find(first, "task_instance.duration")
    # register_model was upstream_failed: it never reached a worker (no hostname): not reported
    assert sorted(s.tag("task_id") for s in ran) == ["extract", "train"]
    train = next(s for s in ran if s.tag("task_id") == "train")
    start = parse_ts(recorded[0]["start_date"])
    end = parse_ts(recorded[0]["end_date"])
    assert train.tag_dict == {**train.tag_dict, "dag_id": "train_ranker", "run_id": run_id,
                              "state": "failed", "try_number": "1", "map_index": "-1",
                              "hostname": "vm", "start": f"{start:.3f}", "end": f"{end:.3f}"}
    assert train.value == pytest.approx(end - start)
    extract = next(s for s in ran if s.tag("task_id") == "extract")
    assert (extract.tag("hostname"), extract.tag("state"), extract.value) == ("gpu-node-1", "success", 600)
    # the failed-task reporting is unchanged: only the failed one, once
    assert [s.tag("task_id") for s in find(first, "task_instance.failed")] == ["train"]
    assert not find(second, "task_instance.duration"), "reported again after the next poll"
    # one unfiltered listing per finished run, instead of the failed ones only
    listings = [q for path, q in fake.calls if path.endswith("/taskInstances") and "~" not in path]
    assert len(listings) == 2 and all("state" not in q for q in listings)
