"""The airflow check against a REAL Airflow 3.x (/api/v2, JWT) and a REAL Airflow 2.10
(/api/v1, basic auth), each started on loopback once per module (tests/checks/airflow_peer.py).

Each outcome of the test DAGs is seen once with the right task and log link, and a fresh
check instance on the same durable state (a restart) repeats nothing.
"""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from agent.causes.link import same_host
from agent.check import CheckContext
from agent.samples import CheckResult, Sample, Status
from checks.airflow.check import AirflowCheck
from checks.airflow.config import AirflowConfig
from tests.checks.airflow_peer import PASSWORD, USER, AirflowPeer, start_airflow
from tests.conftest import assert_in_catalog

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class FileState:
    """A durable StateStore: every value goes through a JSON file, as through a restart."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _load(self) -> dict[str, Any]:
        return json.loads(self.path.read_text()) if self.path.exists() else {}

    async def get_state(self, check: str, key: str) -> Any:
        return self._load().get(f"{check}/{key}")

    async def set_state(self, check: str, key: str, value: Any) -> None:
        data = self._load()
        data[f"{check}/{key}"] = value
        self.path.write_text(json.dumps(data))


@pytest.fixture(scope="module", params=["3", "2"], ids=["airflow3", "airflow2"])
def airflow(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    peer = start_airflow(request.param, tmp_path_factory.mktemp(f"airflow{request.param}"))
    print(f"\nAirflow {request.param} started in {peer.startup_seconds:.1f}s, "
          f"RSS {peer.rss_bytes() / 2**20:.0f} MiB")
    yield peer
    peer.stop()


def config(peer: AirflowPeer, **extra: Any) -> AirflowConfig:
    return AirflowConfig(type="airflow", name="it", url=peer.url, username=USER, password=PASSWORD,
                         dags=("mlw_*",), timeout=60, **extra)


async def poll(cfg: AirflowConfig, state: Any) -> CheckResult:
    """One run of a brand-new check instance (what a restarted agent would create)."""
    ctx = CheckContext(state=state)
    try:
        result = await AirflowCheck(cfg, ctx).run()
    finally:
        await ctx.close()
    assert_in_catalog(result)
    return result


def samples(result: CheckResult, metric: str, **tags: str) -> list[Sample]:
    return [s for s in result.samples if s.metric == f"mlwarden.airflow.{metric}"
            and all(s.tag(k) == v for k, v in tags.items())]


def expected_log_url(peer: AirflowPeer, dag_id: str, run_id: str, task_id: str, tries: int) -> str:
    if peer.major == "3":
        return (f"{peer.url}/dags/{dag_id}/runs/{quote(run_id, safe='')}/tasks/{task_id}"
                f"?try_number={tries}")
    return (f"{peer.url}/dags/{dag_id}/grid?dag_run_id={quote(run_id, safe='')}"
            f"&task_id={task_id}&tab=logs&try_number={tries}")


async def test_each_outcome_once_with_task_and_log_link_and_restart_repeats_nothing(
        airflow: AirflowPeer, tmp_path: Path) -> None:
    state = FileState(tmp_path / "state.json")
    cfg = config(airflow)
    fails = airflow.trigger("mlw_fails")
    flaky = airflow.trigger("mlw_flaky")
    ok = airflow.trigger("mlw_succeeds")
    assert airflow.wait_run("mlw_fails", fails, ("success", "failed")) == "failed"
    assert airflow.wait_run("mlw_flaky", flaky, ("success", "failed")) == "success"
    assert airflow.wait_run("mlw_succeeds", ok, ("success", "failed")) == "success"

    first = await poll(cfg, state)
    assert first.error is None, first.message
    assert samples(first, "can_connect")[0].value == 1
    # the failed run, once, naming its failed task and linking its log
    runs_failed = samples(first, "dag_run.failed")
    assert [(s.tag("dag_id"), s.tag("run_id"), s.tag("failed_tasks")) for s in runs_failed] == [
        ("mlw_fails", fails, "train")]
    tasks_failed = samples(first, "task_instance.failed")
    assert [(s.tag("dag_id"), s.tag("run_id"), s.tag("task_id"), s.tag("try_number"))
            for s in tasks_failed] == [("mlw_fails", fails, "train", "1")]
    log_url = tasks_failed[0].tag("log_url")
    assert log_url == expected_log_url(airflow, "mlw_fails", fails, "train", 1)
    # where it ran, as Airflow recorded it (its worker is this machine): the host a GPU fault
    # on this node would be linked by (docs/alerting.md)
    host = tasks_failed[0].tag("hostname") or ""
    assert same_host(host, socket.gethostname()), (host, socket.gethostname())
    assert runs_failed[0].tag("failed_hosts") == host
    assert runs_failed[0].tag("log_url") == log_url
    # the identity in the link names a real log: the API serves that task try's log
    logs = airflow.request(
        "GET", f"/dags/mlw_fails/dagRuns/{quote(fails, safe='')}/taskInstances/train/logs/1"
               "?full_content=true")
    assert "training diverged" in json.dumps(logs)
    # a task that failed once and succeeded on retry is no failure
    assert not samples(first, "task_instance.failed", dag_id="mlw_flaky")
    finished = {(s.tag("dag_id"), s.tag("state")): s.value for s in samples(first, "dag_run.finished")}
    assert finished == {("mlw_fails", "failed"): 1, ("mlw_flaky", "success"): 1,
                        ("mlw_succeeds", "success"): 1}
    assert samples(first, "dag.last_run_failed", dag_id="mlw_fails")[0].value == 1
    assert samples(first, "dag.last_run_failed", dag_id="mlw_succeeds")[0].value == 0
    assert samples(first, "dag.last_success_age", dag_id="mlw_succeeds")[0].value < 300
    # the broken file, by name, with the error's first line
    broken = samples(first, "import_error")
    assert len(broken) == 1 and broken[0].tag("filename", "").endswith("mlw_broken.py")
    assert broken[0].tag("error") == ("ModuleNotFoundError: No module named "
                                      "'airflow.mlwarden_module_that_does_not_exist'")
    assert samples(first, "import_errors")[0].value == 1
    assert samples(first, "component.healthy", component="scheduler")[0].value == 1
    assert samples(first, "component.heartbeat_age", component="scheduler")[0].value < 60
    assert samples(first, "dags.watched")[0].value == 4

    # a restart (new instance, same durable state): nothing is reported again
    second = await poll(cfg, state)
    assert second.error is None, second.message
    for metric in ("dag_run.failed", "task_instance.failed", "dag_run.finished", "dag_run.duration"):
        assert not samples(second, metric), f"{metric} repeated after a restart"
    assert samples(second, "dag.last_run_failed", dag_id="mlw_fails")[0].value == 1

    # a new failure after the restart is reported, once, and only it
    again = airflow.trigger("mlw_fails")
    assert airflow.wait_run("mlw_fails", again, ("success", "failed")) == "failed"
    third = await poll(cfg, state)
    assert [s.tag("run_id") for s in samples(third, "task_instance.failed")] == [again]
    fourth = await poll(cfg, state)
    assert not samples(fourth, "task_instance.failed")


async def test_a_long_run_is_reported_stuck(airflow: AirflowPeer, tmp_path: Path) -> None:
    state = FileState(tmp_path / "state.json")
    cfg = config(airflow, stuck_after=3)
    run_id = airflow.trigger("mlw_sleeps", {"seconds": 20})
    airflow.wait_run("mlw_sleeps", run_id, ("running",), timeout=60)

    async def stuck_seen() -> CheckResult | None:
        result = await poll(cfg, state)
        elapsed = samples(result, "dag_run.elapsed", dag_id="mlw_sleeps", run_id=run_id)
        return result if elapsed and elapsed[0].tag("stuck") == "true" else None

    result = None
    for _ in range(30):
        result = await stuck_seen()
        if result is not None:
            break
        await asyncio.sleep(1)
    assert result is not None, "the sleeping run was never reported stuck"
    assert samples(result, "dag.stuck_runs", dag_id="mlw_sleeps")[0].value == 1
    assert samples(result, "dag.stuck_runs", dag_id="mlw_succeeds")[0].value == 0
    assert samples(result, "dag_run.active", dag_id="mlw_sleeps", state="running")[0].value == 1
    airflow.wait_run("mlw_sleeps", run_id, ("success", "failed"), timeout=90)


async def test_wrong_password_is_a_clear_critical_without_the_secret(airflow: AirflowPeer,
                                                                     tmp_path: Path) -> None:
    cfg = AirflowConfig(type="airflow", name="it", url=airflow.url, username=USER,
                        password="not-the-password-123", timeout=30)
    from agent.config import _register_secrets
    _register_secrets(cfg)
    result = await poll(cfg, FileState(tmp_path / "s.json"))
    assert result.status == Status.CRITICAL
    assert "refused" in result.message and "not-the-password-123" not in result.message
    assert samples(result, "can_connect")[0].value == 0
