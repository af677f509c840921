"""Unit tests of the airflow check on recorded Airflow responses (tests/checks/airflow_fake.py):
authentication and token renewal, health bodies, pagination, bounded work, the cursor across
restarts, up_for_retry, stuck/late/queued, import errors, clock edges and bad answers."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

from agent.check import CheckContext, MemoryState
from agent.config import parse_config
from agent.errors import ConfigError
from agent.samples import CheckResult, Sample, Status
from checks.airflow.auth import jwt_expiry
from checks.airflow.check import AirflowCheck
from checks.airflow.config import AirflowConfig
from checks.airflow.import_errors import first_error_line
from checks.airflow.links import task_log_url
from checks.airflow.times import parse_ts
from tests.checks.airflow_fake import PASSWORD, USER, FakeAirflow, iso
from tests.conftest import assert_in_catalog
from tests.support.targets import load_fixture

pytestmark = pytest.mark.unit

T0 = parse_ts("2026-11-28T15:18:00Z")
assert T0 is not None


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def cfg(url: str, **extra: Any) -> AirflowConfig:
    base: dict[str, Any] = {"type": "airflow", "name": "af", "url": url, "username": USER,
                            "password": PASSWORD, "timeout": 10}
    base.update(extra)
    return AirflowConfig(**base)


async def poll(config: AirflowConfig, state: Any, clock: Clock,
               check: AirflowCheck | None = None) -> tuple[CheckResult, AirflowCheck]:
    ctx = CheckContext(state=state, clock=clock)
    check = check or AirflowCheck(config, ctx)
    try:
        result = await check.run()
    finally:
        await check.context.close()
    assert_in_catalog(result)
    return result, check


def find(result: CheckResult, metric: str, **tags: str) -> list[Sample]:
    return [s for s in result.samples if s.metric == f"mlwarden.airflow.{metric}"
            and all(s.tag(k) == v for k, v in tags.items())]


def value(result: CheckResult, metric: str, **tags: str) -> float:
    found = find(result, metric, **tags)
    assert len(found) == 1, f"{metric} {tags}: {found}"
    return found[0].value


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


# -- authentication ----------------------------------------------------------------------
async def test_v3_token_is_obtained_once_and_reused_across_polls(clock: Clock) -> None:
    fake = FakeAirflow("3", clock)
    async with fake.target() as t:
        config = cfg(t.url)
        first, check = await poll(config, MemoryState(), clock)
        second, _ = await poll(config, MemoryState(), clock, check)
    assert first.status == Status.OK and second.status == Status.OK, first.message
    assert fake.tokens_issued == 1 and fake.refused == 0
    assert check.client.version == "2" and check.client.airflow_version == "3.3.2"


async def test_v3_token_is_renewed_before_it_expires(clock: Clock) -> None:
    fake = FakeAirflow("3", clock)
    fake.token_lifetime = 3600
    async with fake.target() as t:
        config = cfg(t.url)
        _, check = await poll(config, MemoryState(), clock)
        clock.now += 3600 - 30  # inside the renewal margin
        fake.tokens = {tok for tok in fake.tokens if (jwt_expiry(tok) or 0) > clock.now + 60}
        result, _ = await poll(config, MemoryState(), clock, check)
    assert result.status == Status.OK, result.message
    assert fake.tokens_issued == 2 and fake.refused == 0


async def test_v3_a_403_on_a_revoked_token_renews_it_and_retries(clock: Clock) -> None:
    fake = FakeAirflow("3", clock)
    async with fake.target() as t:
        config = cfg(t.url)
        _, check = await poll(config, MemoryState(), clock)
        fake.revoke_tokens()  # e.g. the JWT secret rotated: Airflow 3 answers 403
        result, _ = await poll(config, MemoryState(), clock, check)
    assert result.status == Status.OK, result.message
    assert fake.tokens_issued == 2 and fake.refused >= 1


async def test_a_given_bearer_token_is_used_as_is_and_a_refusal_is_clear(clock: Clock) -> None:
    fake = FakeAirflow("3", clock)
    good = "tok-" + "x" * 20
    fake.tokens.add(good)
    async with fake.target() as t:
        ok, _ = await poll(cfg(t.url, username=None, password=None, token=good), MemoryState(), clock)
        bad_cfg = parse_config(f"checks: [{{type: airflow, name: af, url: '{t.url}', "
                               "token: wrong-token-value-1234}]").checks[0]
        bad, _ = await poll(bad_cfg, MemoryState(), clock)  # type: ignore[arg-type]
    assert ok.status == Status.OK and fake.tokens_issued == 0
    assert bad.status == Status.CRITICAL
    assert "cannot be renewed" in bad.message and "wrong-token-value-1234" not in bad.message


async def test_v3_wrong_password_is_critical_and_never_shows_the_password(clock: Clock) -> None:
    fake = FakeAirflow("3", clock)
    async with fake.target() as t:
        config = parse_config(f"checks: [{{type: airflow, name: af, url: '{t.url}', "
                              "username: admin, password: hunter2-wrong}]").checks[0]
        result, _ = await poll(config, MemoryState(), clock)  # type: ignore[arg-type]
    assert result.status == Status.CRITICAL
    assert "refused the username or password" in result.message
    assert "hunter2-wrong" not in result.message
    assert value(result, "can_connect") == 0


async def test_auto_falls_back_to_v1_with_basic_auth(clock: Clock) -> None:
    fake = FakeAirflow("2", clock)
    async with fake.target() as t:
        result, check = await poll(cfg(t.url), MemoryState(), clock)
    assert result.status == Status.OK, result.message
    assert check.client.version == "1" and check.client.airflow_version == "2.10.5"
    assert fake.refused == 0 and value(result, "can_connect") == 1


async def test_no_airflow_api_at_the_url_is_a_clear_error(clock: Clock) -> None:
    async def nothing(request: web.Request) -> web.Response:
        return web.Response(status=404, text="nope")
    from tests.support.targets import Target
    async with Target({("GET", "/api/v2/version"): nothing,
                       ("GET", "/api/v1/version"): nothing}) as t:
        result, _ = await poll(cfg(t.url), MemoryState(), clock)
    assert result.status == Status.CRITICAL
    assert "cannot find the Airflow REST API" in result.message and "-> 404" in result.message


# -- health ---------------------------------------------------------------------------------
async def test_health_is_read_from_the_body_even_with_http_200() -> None:
    clock = Clock(parse_ts("2026-11-28T15:24:07Z") or 0)
    fake = FakeAirflow("2", clock)
    fake.health = load_fixture("airflow2", "health_scheduler_unhealthy_during_slow_task.json")
    fake.live_heartbeats = False
    async with fake.target() as t:
        result, _ = await poll(cfg(t.url), MemoryState(), clock)
    assert result.status == Status.CRITICAL and "scheduler unhealthy" in result.message
    assert value(result, "component.healthy", component="scheduler") == 0
    assert value(result, "component.healthy", component="triggerer") == 1
    assert value(result, "component.heartbeat_age", component="scheduler") == pytest.approx(27.07, abs=0.01)
    # Airflow 2's DAG processor runs inside the scheduler (status null): not a component here
    assert not find(result, "component.healthy", component="dag_processor")


async def test_a_healthy_status_with_an_old_heartbeat_is_unhealthy() -> None:
    clock = Clock((parse_ts("2026-11-28T15:17:59.842202Z") or 0) + 120)
    fake = FakeAirflow("3", clock)
    fake.live_heartbeats = False
    async with fake.target() as t:
        result, _ = await poll(cfg(t.url, heartbeat_max_age=60), MemoryState(), clock)
    assert value(result, "component.healthy", component="scheduler") == 0
    assert value(result, "component.heartbeat_age", component="scheduler") == pytest.approx(120)
    assert value(result, "component.healthy", component="metadatabase") == 1
    assert result.status == Status.CRITICAL and "last heartbeat 120s ago" in result.message


async def test_a_heartbeat_from_a_clock_ahead_of_ours_is_age_zero_not_negative(clock: Clock) -> None:
    fake = FakeAirflow("3", clock)
    fake.live_heartbeats = False
    fake.health["scheduler"]["latest_scheduler_heartbeat"] = iso(clock.now + 5)
    async with fake.target() as t:
        result, _ = await poll(cfg(t.url), MemoryState(), clock)
    assert value(result, "component.heartbeat_age", component="scheduler") == 0
    assert value(result, "component.healthy", component="scheduler") == 1


async def test_a_health_body_that_is_not_a_report_names_the_problem(clock: Clock) -> None:
    fake = FakeAirflow("3", clock)
    fake.health = ["not", "a", "report"]
    async with fake.target() as t:
        result, _ = await poll(cfg(t.url), MemoryState(), clock)
    assert result.status == Status.CRITICAL
    assert result.message.startswith("health: the health endpoint answered with something")
    assert find(result, "import_errors"), "the other sections still ran"


# -- runs, cursor, restarts -----------------------------------------------------------------
@pytest.mark.parametrize("major", ["3", "2"])
async def test_a_failed_run_is_reported_once_with_its_failed_tasks_and_log_links(
        clock: Clock, major: str) -> None:
    fake = FakeAirflow(major, clock)
    run_id = "manual__2026-11-28T15:18:03.000917+00:00"
    fake.run("train_ranker", run_id, "failed", T0 - 60, T0 - 10)
    fake.ti("train_ranker", run_id, "train", "failed", try_number=3, duration=5.4)
    fake.ti("train_ranker", run_id, "publish", "upstream_failed")
    fake.run("etl_daily_features", "manual__a", "success", T0 - 50, T0 - 20)
    state = MemoryState()
    async with fake.target() as t:
        config = cfg(t.url, ui_url="https://airflow.example.com")
        first, _ = await poll(config, state, clock)
        clock.now += 60
        second, _ = await poll(config, state, clock)  # a fresh instance: a restart
    assert first.status == Status.OK, first.message
    tasks = find(first, "task_instance.failed")
    assert len(tasks) == 1 and tasks[0].value == 1
    tags = tasks[0].tag_dict
    assert (tags["dag_id"], tags["run_id"], tags["task_id"], tags["try_number"]) == (
        "train_ranker", run_id, "train", "3")
    if major == "3":
        assert tags["log_url"] == ("https://airflow.example.com/dags/train_ranker/runs/"
                                   "manual__2026-11-28T15%3A18%3A03.000917%2B00%3A00/tasks/train"
                                   "?try_number=3")
    else:
        assert tags["log_url"] == ("https://airflow.example.com/dags/train_ranker/grid?"
                                   "dag_run_id=manual__2026-11-28T15%3A18%3A03.000917%2B00%3A00"
                                   "&task_id=train&tab=logs&try_number=3")
    assert value(first, "task_instance.failed_duration", task_id="train") == 5.4
    run = find(first, "dag_run.failed")
    assert len(run) == 1 and run[0].tag("failed_tasks") == "train"
    assert run[0].tag("log_url") == tags["log_url"]
    assert value(first, "dag_run.finished", dag_id="train_ranker", state="failed") == 1
    assert value(first, "dag_run.finished", dag_id="etl_daily_features", state="success") == 1
    assert value(first, "dag_run.duration", dag_id="etl_daily_features") == pytest.approx(30)
    assert value(first, "dag.last_run_failed", dag_id="train_ranker") == 1
    assert value(first, "dag.last_success_age", dag_id="etl_daily_features") == pytest.approx(20)
    for metric in ("task_instance.failed", "dag_run.failed", "dag_run.finished"):
        assert not find(second, metric), f"{metric} repeated after a restart"
    assert value(second, "dag.last_success_age", dag_id="etl_daily_features") == pytest.approx(80)
    # the finished-runs query asked Airflow for the failed tasks only
    ti_calls = [q for path, q in fake.calls if path.endswith("/taskInstances") and "~" not in path]
    assert ti_calls and all(q["state"] == ["failed"] for q in ti_calls)


async def test_up_for_retry_is_not_a_failure_the_run_that_finally_fails_is(clock: Clock) -> None:
    fake = FakeAirflow("3", clock)
    run = fake.run("train_ranker", "r1", "running", T0 - 30, None)
    fake.ti("train_ranker", "r1", "train", "up_for_retry", try_number=1)
    state = MemoryState()
    async with fake.target() as t:
        config = cfg(t.url)
        first, _ = await poll(config, state, clock)
        assert not find(first, "task_instance.failed") and not find(first, "dag_run.failed")
        assert value(first, "dag_run.active", dag_id="train_ranker", state="running") == 1
        # the retry fails too: now the run has failed, with try 2
        run.update(state="failed", end_date=iso(T0 + 20))
        fake.tis[("train_ranker", "r1")][0].update(state="failed", try_number=2)
        clock.now = T0 + 30
        second, _ = await poll(config, state, clock)
    failed = find(second, "task_instance.failed")
    assert [(s.tag("task_id"), s.tag("try_number")) for s in failed] == [("train", "2")]


async def test_runs_ending_at_the_same_instant_and_late_commits_are_each_reported_once(
        clock: Clock) -> None:
    fake = FakeAirflow("2", clock)  # Airflow 2 writes +00:00, not Z
    state = MemoryState()
    edge = T0 - 5
    fake.run("train_ranker", "a", "failed", T0 - 50, edge)
    fake.ti("train_ranker", "a", "train", "failed")
    async with fake.target() as t:
        config = cfg(t.url, cursor_overlap=120)
        first, _ = await poll(config, state, clock)
        # another run ends at exactly the watermark, and one committed late, ending before it
        fake.run("train_ranker", "b", "failed", T0 - 40, edge)
        fake.run("train_ranker", "c", "failed", T0 - 40, edge - 30)
        for run_id in ("b", "c"):
            fake.ti("train_ranker", run_id, "train", "failed")
    async with fake.target() as t:
        config = cfg(t.url, cursor_overlap=120)
        clock.now += 15
        second, _ = await poll(config, state, clock)
        third, _ = await poll(config, state, clock)
    assert [s.tag("run_id") for s in find(first, "task_instance.failed")] == ["a"]
    assert sorted(s.tag("run_id") or "" for s in find(second, "task_instance.failed")) == ["b", "c"]
    assert not find(third, "task_instance.failed")


async def test_the_first_poll_looks_back_only_initial_lookback(clock: Clock) -> None:
    fake = FakeAirflow("3", clock)
    fake.run("train_ranker", "old", "failed", T0 - 7300, T0 - 7200)
    fake.run("train_ranker", "recent", "failed", T0 - 700, T0 - 600)
    for run_id in ("old", "recent"):
        fake.ti("train_ranker", run_id, "train", "failed")
    async with fake.target() as t:
        result, _ = await poll(cfg(t.url, initial_lookback=3600), MemoryState(), clock)
    assert [s.tag("run_id") for s in find(result, "dag_run.failed")] == ["recent"]
    since = [q["end_date_gte"][0] for p, q in fake.calls if p.endswith("/dags/~/dagRuns")
             and "end_date_gte" in q]
    assert since == [iso(T0 - 3600 - 120)]


async def test_pagination_is_followed_to_the_end(clock: Clock) -> None:
    fake = FakeAirflow("3", clock)
    fake.dags = []
    for i in range(250):
        fake.dag(f"etl_{i:04d}")
    for i in range(230):
        fake.run(f"etl_{i:04d}", f"run{i}", "success", T0 - 100, T0 - 99 + i * 0.1)
    async with fake.target() as t:
        result, check = await poll(cfg(t.url, freshness_lookups_per_poll=0), MemoryState(), clock)
    assert result.status == Status.OK, result.message
    assert value(result, "dags.watched") == 250
    finished = find(result, "dag_run.finished")
    assert len(finished) == 230 and sum(s.value for s in finished) == 230
    dag_offsets = sorted(int(q["offset"][0]) for p, q in fake.calls if p.endswith("/dags"))
    assert dag_offsets == [0, 100, 200]


async def test_work_per_poll_is_bounded_and_the_backlog_drains_without_repeats(clock: Clock) -> None:
    fake = FakeAirflow("3", clock)
    for i in range(25):
        fake.run("train_ranker", f"r{i:02d}", "failed", T0 - 100, T0 - 90 + i)
        fake.ti("train_ranker", f"r{i:02d}", "train", "failed")
    state = MemoryState()
    seen: list[str] = []
    async with fake.target() as t:
        config = cfg(t.url, max_runs_per_poll=10, concurrency=2)
        for _ in range(4):
            result, check = await poll(config, state, clock)
            batch = [s.tag("run_id") or "" for s in find(result, "task_instance.failed")]
            assert len(batch) <= 10
            seen.extend(batch)
            clock.now += 1
    assert seen == [f"r{i:02d}" for i in range(25)]


async def test_a_failing_task_lookup_keeps_the_cursor_before_that_run(clock: Clock) -> None:
    fake = FakeAirflow("3", clock)
    fake.run("train_ranker", "a", "failed", T0 - 60, T0 - 30)
    fake.ti("train_ranker", "a", "train", "failed")
    fake.run("train_ranker", "b", "failed", T0 - 60, T0 - 20)
    fake.ti("train_ranker", "b", "train", "failed")
    broken = "/api/v2/dags/train_ranker/dagRuns/b/taskInstances"
    fake.overrides[broken] = lambda request: web.Response(status=500, text="database is locked")
    state = MemoryState()
    async with fake.target() as t:
        config = cfg(t.url)
        first, _ = await poll(config, state, clock)
        del fake.overrides[broken]
        second, _ = await poll(config, state, clock)
    assert first.status == Status.CRITICAL and "unexpected status 500" in first.message
    assert [s.tag("run_id") for s in find(first, "task_instance.failed")] == ["a"]
    assert [s.tag("run_id") for s in find(second, "task_instance.failed")] == ["b"]


async def test_dag_selection_by_glob_tag_and_paused(clock: Clock) -> None:
    fake = FakeAirflow("3", clock)
    fake.dags = []
    fake.dag("train_a", tags=("ml",))
    fake.dag("train_b", tags=("etl",))
    fake.dag("train_c", tags=("ml",), paused=True)
    fake.dag("score_a", tags=("ml",))
    fake.dag("train_tmp", tags=("ml",))
    fake.run("score_a", "s1", "failed", T0 - 60, T0 - 30)
    async with fake.target() as t:
        result, check = await poll(cfg(t.url, dags=["train_*"], exclude_dags=["*_tmp"],
                                       dag_tags=["ml"]), MemoryState(), clock)
    assert sorted(check._dags.selected) == ["train_a"]
    assert not find(result, "dag_run.failed"), "a run of an unwatched DAG is not reported"


# -- stuck, late, queued -------------------------------------------------------------------
async def test_stuck_uses_the_p95_learned_from_runs_the_check_saw(clock: Clock) -> None:
    fake = FakeAirflow("3", clock)
    for i in range(5):
        fake.run("batch_score", f"ok{i}", "success", T0 - 500 + i * 20, T0 - 490 + i * 20)
    fake.run("batch_score", "slow", "running", T0 - 31, None)
    fake.run("train_ranker", "young", "running", T0 - 29, None)
    state = MemoryState()
    async with fake.target() as t:
        config = cfg(t.url, stuck_factor=3, stuck_min_history=5)
        result, _ = await poll(config, state, clock)
    assert value(result, "dag.duration_p95", dag_id="batch_score") == 10
    assert find(result, "dag_run.elapsed", run_id="slow")[0].tag("stuck") == "true"
    assert value(result, "dag.stuck_runs", dag_id="batch_score") == 1
    [stuck] = find(result, "dag.stuck_runs", dag_id="batch_score")
    assert stuck.tag("run_id") == "slow", "an alert on it can name the run"
    # no history for train_ranker and no absolute limit: never stuck
    assert find(result, "dag_run.elapsed", run_id="young")[0].tag("stuck") == "false"
    assert value(result, "dag.stuck_runs", dag_id="train_ranker") == 0


async def test_stuck_after_is_an_absolute_limit(clock: Clock) -> None:
    fake = FakeAirflow("2", clock)
    fake.run("train_ranker", "r", "running", T0 - 3601, None)
    async with fake.target() as t:
        result, _ = await poll(cfg(t.url, stuck_after="1h"), MemoryState(), clock)
    assert value(result, "dag_run.elapsed", run_id="r") == pytest.approx(3601)
    assert value(result, "dag.stuck_runs", dag_id="train_ranker") == 1


@pytest.mark.parametrize("major", ["3", "2"])
async def test_a_dag_whose_scheduled_run_did_not_start_is_late(clock: Clock, major: str) -> None:
    fake = FakeAirflow(major, clock)
    fake.dags = []
    fake.dag("hourly_late", due=T0 - 700)
    fake.dag("hourly_ok", due=T0 - 100)
    fake.dag("hourly_paused", due=T0 - 7000, paused=True)
    fake.dag("manual_only")
    fake.dag("queued_long")
    fake.run("queued_long", "q", "queued", None, None,
             **({"run_after": iso(T0 - 900)} if major == "3" else
                {"data_interval_end": iso(T0 - 900, "2")}))
    async with fake.target() as t:
        result, _ = await poll(cfg(t.url, late_after="10m", include_paused=True),
                               MemoryState(), clock)
    assert value(result, "dag.late", dag_id="hourly_late") == 1
    assert value(result, "dag.schedule_delay", dag_id="hourly_late") == pytest.approx(700)
    assert value(result, "dag.late", dag_id="hourly_ok") == 0
    assert value(result, "dag.late", dag_id="queued_long") == 1
    assert not find(result, "dag.late", dag_id="hourly_paused")
    assert not find(result, "dag.late", dag_id="manual_only")


async def test_tasks_queued_too_long(clock: Clock) -> None:
    fake = FakeAirflow("3", clock)
    fake.queued_tis = [
        {"dag_id": "train_ranker", "task_id": "a", "state": "queued", "queued_when": iso(T0 - 700)},
        {"dag_id": "train_ranker", "task_id": "b", "state": "queued", "queued_when": iso(T0 - 10)},
    ]
    async with fake.target() as t:
        result, _ = await poll(cfg(t.url, queued_too_long="10m"), MemoryState(), clock)
    assert value(result, "task_instance.queued", dag_id="train_ranker") == 2
    assert value(result, "task_instance.queued_too_long", dag_id="train_ranker") == 1
    assert value(result, "task_instance.queued_max_age", dag_id="train_ranker") == pytest.approx(700)
    assert value(result, "task_instance.queued_too_long", dag_id="batch_score") == 0


# -- import errors ---------------------------------------------------------------------------
@pytest.mark.parametrize("major", ["3", "2"])
async def test_import_errors_one_series_per_file_resolving_when_fixed(clock: Clock, major: str) -> None:
    fake = FakeAirflow(major, clock)
    fake.import_errors = load_fixture(f"airflow{major}", "import_errors_one.json")["import_errors"]
    state = MemoryState()
    async with fake.target() as t:
        config = cfg(t.url)
        broken, _ = await poll(config, state, clock)
        fake.import_errors = []
        fixed, _ = await poll(config, state, clock)
        later, _ = await poll(config, state, clock)
    name = "broken_features.py" if major == "3" else "/opt/airflow/dags/broken_features.py"
    error = "ModuleNotFoundError: No module named 'airflow.this_module_does_not_exist'"
    assert value(broken, "import_errors") == 1
    assert value(broken, "import_error", filename=name, error=error) == 1
    assert value(fixed, "import_errors") == 0
    assert value(fixed, "import_error", filename=name) == 0
    assert not find(later, "import_error")


def test_first_error_line() -> None:
    syntax = ('Traceback (most recent call last):\n  File "/d/x.py", line 2\n    def (:\n'
              '        ^\nSyntaxError: invalid syntax\n')
    assert first_error_line(syntax) == "SyntaxError: invalid syntax"
    assert first_error_line("DagNotFound: the DAG timed out while importing\nmore") == \
        "DagNotFound: the DAG timed out while importing"
    assert first_error_line(None) == "" and first_error_line("  \n") == ""
    assert len(first_error_line("E: " + "x" * 500)) == 200


# -- bad answers, config ------------------------------------------------------------------
async def test_an_answer_that_is_not_json_names_the_request(clock: Clock) -> None:
    fake = FakeAirflow("3", clock)
    fake.overrides["/api/v2/dags"] = lambda request: web.Response(text="<html>proxy</html>")
    async with fake.target() as t:
        result, _ = await poll(cfg(t.url), MemoryState(), clock)
    assert result.status == Status.CRITICAL
    assert "dags: GET http://127.0.0.1" in result.message and "is not JSON" in result.message
    assert value(result, "import_errors") == 0, "the other sections still ran"


async def test_an_unreachable_airflow_is_critical_with_the_url(clock: Clock) -> None:
    from tests.support.procs import free_port
    url = f"http://127.0.0.1:{free_port()}"
    result, _ = await poll(cfg(url), MemoryState(), clock)
    assert result.status == Status.CRITICAL
    assert f"GET {url}/api/v2/version: cannot reach Airflow" in result.message
    assert value(result, "can_connect") == 0


@pytest.mark.parametrize("body, problem", [
    ("{type: airflow, name: a, url: 'http://x', username: u}",
     "`username` and `password` go together"),
    ("{type: airflow, name: a, url: 'http://x'}", "give `username` and `password`"),
    ("{type: airflow, name: a, url: 'http://x', token: t, username: u, password: p}",
     "give either `token` or `username`/`password`"),
    ("{type: airflow, name: a, url: 'airflow:8080', token: tttt}",
     "checks[0].url: expected an http:// or https:// URL, found 'airflow:8080'"),
    ("{type: airflow, name: a, url: 'http://x', token: tttt, api_version: 3}", "checks[0].api_version"),
    ("{type: airflow, name: a, url: 'http://x', token: tttt, stuck_afterr: 1h}",
     "did you mean 'stuck_after'?"),
    ("{type: airflow, name: a, url: 'https://x', token: tttt, tls_verify: false, ca_bundle: c.pem}",
     "`ca_bundle` has no effect with `tls_verify: false`"),
    ("{type: airflow, name: a, url: 'https://x', token: tttt, client_key: k.pem}",
     "`client_key` is set without `client_cert`"),
])
def test_bad_config_is_named(body: str, problem: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(f"checks: [{body}]", source="agent.yaml")
    assert problem in str(err.value)


def test_helpers() -> None:
    token = load_fixture("airflow3", "auth_token_response.json")["access_token"]
    assert jwt_expiry(token) == 1795965482 and jwt_expiry("not-a-jwt") is None
    assert parse_ts("2026-11-28T15:19:44.687708+00:00") == parse_ts("2026-11-28T15:19:44.687708Z")
    assert parse_ts("2026-11-28T15:19:44") == parse_ts("2026-11-28T15:19:44Z")  # naive is UTC
    assert parse_ts(None) is None and parse_ts("yesterday") is None
    assert task_log_url("http://a", "2", "d", "r", "t", 2, map_index=4) == \
        "http://a/dags/d/runs/r/tasks/t/mapped/4?try_number=2"


async def test_a_poll_of_2000_dags_is_bounded_work(clock: Clock) -> None:
    fake = FakeAirflow("3", clock)
    fake.dags = []
    for i in range(2000):
        fake.dag(f"dag_{i:04d}")
    async with fake.target() as t:
        config = cfg(t.url, freshness_lookups_per_poll=20, dag_refresh="5m")
        first, check = await poll(config, MemoryState(), clock)
        after_first = check.client.requests
        clock.now += 60
        second, _ = await poll(config, MemoryState(), clock, check)
    assert first.status == Status.OK and value(first, "dags.watched") == 2000
    # first poll: version + token + 20 DAG pages + health, runs, active, queued, imports
    # + 20 freshness lookups (2 requests each for a DAG that never succeeded)
    assert after_first == 2 + 20 + 5 + 40
    # a steady-state poll does not list the DAGs again and looks up only 20 more
    assert check.client.requests - after_first == 5 + 40


def test_example_rules_use_declared_metrics_and_only_their_tags() -> None:
    """The builtin:airflow pack (agent/data/rules/airflow.yaml): every metric is in the catalog, every template field and
    matcher names a tag that metric carries (the rules engine validates the rest)."""
    import string

    import yaml

    from agent.catalog import load_catalog
    from tests.support.procs import REPO

    catalog = load_catalog()
    rules = yaml.safe_load((REPO / "agent" / "data" / "rules" / "airflow.yaml").read_text())["rules"]
    names = {r["alert"] for r in rules}
    assert {"AirflowDagRunFailed", "AirflowDagLate", "AirflowRunStuck", "AirflowImportError",
            "AirflowSchedulerUnhealthy"} <= names
    for rule in rules:
        spec = catalog.get(rule["metric"])
        assert spec is not None and spec.check == "airflow", rule["alert"]
        known = set(spec.tags) | set(spec.facts) | {"check", "value", "threshold", "for", "alert"}
        assert set(rule.get("where", {})) <= set(spec.tags), rule["alert"]
        for field in ("summary", "description"):
            used = {f.split(".")[0] for _, f, _, _ in string.Formatter().parse(rule.get(field, "")) if f}
            assert used <= known, f"{rule['alert']}.{field} uses {used - known}"
        assert ("absent" in rule) != ("op" in rule and "threshold" in rule), rule["alert"]


async def test_a_dag_deleted_after_the_listing_does_not_fail_every_poll(clock: Clock) -> None:
    fake = FakeAirflow("3", clock)
    gone = "/api/v2/dags/batch_score/dagRuns"
    fake.overrides[gone] = lambda request: web.json_response(
        load_fixture("airflow3", "unknown_dag_dagruns.json"), status=404)
    fake.run("train_ranker", "ok", "success", T0 - 60, T0 - 30)
    state = MemoryState()
    async with fake.target() as t:
        first, _ = await poll(cfg(t.url), state, clock)
        second, _ = await poll(cfg(t.url), state, clock)
    assert first.status == Status.OK and second.status == Status.OK, first.message
    assert not find(first, "dag.last_success_age", dag_id="batch_score")
    assert value(first, "dag.last_success_age", dag_id="train_ranker") == pytest.approx(30)


async def test_a_failed_freshness_lookup_still_reports_runs_and_active(clock: Clock) -> None:
    fake = FakeAirflow("3", clock)
    fake.overrides["/api/v2/dags/batch_score/dagRuns"] = lambda request: web.Response(status=502)
    fake.run("train_ranker", "f", "failed", T0 - 60, T0 - 30)
    fake.ti("train_ranker", "f", "train", "failed")
    async with fake.target() as t:
        result, _ = await poll(cfg(t.url), MemoryState(), clock)
    assert result.status == Status.CRITICAL and "runs: GET" in result.message
    assert "unexpected status 502" in result.message
    assert find(result, "task_instance.failed") and find(result, "dag.stuck_runs")


async def test_per_dag_zeros_are_sent_first_then_only_when_a_series_returns_to_zero(
        clock: Clock) -> None:
    fake = FakeAirflow("3", clock)
    run = fake.run("batch_score", "r", "running", T0 - 10, None)
    async with fake.target() as t:
        config = cfg(t.url)
        first, check = await poll(config, MemoryState(), clock)
        second, _ = await poll(config, MemoryState(), clock, check)
        run.update(state="success", end_date=iso(T0 + 5))
        clock.now += 10
        third, _ = await poll(config, MemoryState(), clock, check)
        fourth, _ = await poll(config, MemoryState(), clock, check)
    running = {"state": "running"}
    assert value(first, "dag_run.active", dag_id="train_ranker", **running) == 0
    assert value(first, "dag_run.active", dag_id="batch_score", **running) == 1
    assert not find(second, "dag_run.active", dag_id="train_ranker")
    assert value(second, "dag_run.active", dag_id="batch_score", **running) == 1
    assert value(third, "dag_run.active", dag_id="batch_score", **running) == 0
    assert not find(fourth, "dag_run.active")
    assert not find(fourth, "dag.stuck_runs") and not find(fourth, "task_instance.queued")


@pytest.mark.parametrize("major, setting, ok", [
    ("3", "2", True), ("2", "1", True), ("2", "2", False), ("3", "1", False)])
async def test_an_explicit_api_version_is_used_and_a_mismatch_is_named(
        clock: Clock, major: str, setting: str, ok: bool) -> None:
    fake = FakeAirflow(major, clock)
    target = fake.target()
    wrong = "/api/v1/version" if major == "3" else "/api/v2/version"
    target.routes[("GET", wrong)] = target.routes.get(("GET", wrong)) or (
        lambda request: fake._not_found(request))
    async with target as t:
        result, check = await poll(cfg(t.url, api_version=setting), MemoryState(), clock)
    if ok:
        assert result.status == Status.OK and check.client.version == setting, result.message
    else:
        assert result.status == Status.CRITICAL
        assert f"/api/v{setting}/version -> 404" in result.message
        assert [r for r in t.requests if r[1].endswith("/version")] == [("GET", wrong)]


async def test_a_health_report_sent_with_503_is_still_read(clock: Clock) -> None:
    fake = FakeAirflow("3", clock)
    fake.health["scheduler"]["status"] = "unhealthy"
    target = fake.target()

    async def unhealthy(request: web.Request) -> web.Response:
        return web.json_response(fake.health, status=503)
    target.routes[("GET", "/api/v2/monitor/health")] = unhealthy
    async with target as t:
        result, _ = await poll(cfg(t.url), MemoryState(), clock)
    assert value(result, "component.healthy", component="scheduler") == 0
    assert value(result, "component.healthy", component="triggerer") == 1
    assert result.status == Status.CRITICAL and "scheduler unhealthy" in result.message


@pytest.mark.parametrize("major, link", [
    ("3", "http://ui/dags/train_ranker/runs/scheduled__2026-11-28T00%3A00%3A00%2B00%3A00"),
    ("2", "http://ui/dags/train_ranker/grid?dag_run_id=scheduled__2026-11-28T00%3A00%3A00%2B00%3A00"),
])
async def test_a_run_that_failed_without_a_failed_task_links_the_run(
        clock: Clock, major: str, link: str) -> None:
    """A dagrun_timeout fails the run and leaves its tasks skipped or up_for_retry."""
    fake = FakeAirflow(major, clock)
    run_id = "scheduled__2026-11-28T00:00:00+00:00"
    fake.run("train_ranker", run_id, "failed", T0 - 3600, T0 - 10, run_type="scheduled")
    fake.ti("train_ranker", run_id, "train", "skipped")
    fake.ti("train_ranker", run_id, "publish", "up_for_retry")
    async with fake.target() as t:
        result, _ = await poll(cfg(t.url, ui_url="http://ui"), MemoryState(), clock)
    run = find(result, "dag_run.failed")
    assert len(run) == 1 and run[0].tag("failed_tasks") == "" and run[0].tag("log_url") == link
    assert run[0].tag("run_type") == "scheduled"
    assert not find(result, "task_instance.failed")
