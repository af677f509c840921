"""Runs and tasks that are not finished: running too long (stuck), not started (late), queued.

One listing of active runs and one of queued task instances across all DAGs per poll: their
number is bounded by what Airflow is doing now, not by its history.

- *stuck*: a running run older than ``stuck_after``, or than ``stuck_factor`` x its DAG's
  p95 duration learned from the successful runs this check saw (``stuck_min_history``).
- *late*: the scheduled run the DAG list promised (``next_dagrun_run_after`` in Airflow 3,
  ``next_dagrun_create_after`` in Airflow 2) was not created ``late_after`` after it was due,
  judged at the time the list was read so a cached list never makes a DAG look late; or a
  run is still queued ``late_after`` after it should have started.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from checks.airflow.dags import Dag
from checks.airflow.history import DagHistory
from checks.airflow.sparse import SparseGauges
from checks.airflow.times import parse_ts

__all__ = ["collect_active"]


def _expected_start(run: dict[str, Any]) -> float | None:
    for field in ("run_after", "data_interval_end", "execution_date", "logical_date", "queued_at"):
        value = parse_ts(run.get(field))
        if value is not None:
            return value
    return None


async def collect_active(check: Any, dags: dict[str, Dag], history: DagHistory,
                         listed_at: float, sparse: SparseGauges) -> None:
    sparse.begin()
    complete = False
    try:
        await _active_runs(check, dags, history, listed_at, sparse)
        await _queued_tasks(check, dags, sparse)
        complete = True
    finally:
        sparse.end(complete)


async def _active_runs(check: Any, dags: dict[str, Dag], history: DagHistory,
                       listed_at: float, sparse: SparseGauges) -> None:
    cfg, client, now = check.config, check.client, check.now
    runs = await client.get_all("/dags/~/dagRuns", "dag_runs",
                                [("state", "running"), ("state", "queued")])
    active: dict[str, dict[str, int]] = defaultdict(lambda: {"running": 0, "queued": 0})
    stuck: dict[str, list[str]] = defaultdict(list)
    queued_delay: dict[str, float] = {}
    for run in runs:
        dag_id, state = run.get("dag_id"), run.get("state")
        if not isinstance(dag_id, str) or dag_id not in dags or state not in ("running", "queued"):
            continue
        active[dag_id][state] += 1
        if state == "queued":
            expected = _expected_start(run)
            if expected is not None:
                queued_delay[dag_id] = max(queued_delay.get(dag_id, 0.0), now - expected)
            continue
        start = parse_ts(run.get("start_date"))
        if start is None:
            continue
        elapsed = max(0.0, now - start)
        limit = _stuck_limit(cfg, history.p95(dag_id, cfg.stuck_min_history))
        is_stuck = limit is not None and elapsed > limit
        if is_stuck:
            stuck[dag_id].append(str(run.get("dag_run_id")))
        check.gauge("airflow.dag_run.elapsed", elapsed, tags={
            "dag_id": dag_id, "run_id": str(run.get("dag_run_id")),
            "stuck": "true" if is_stuck else "false"})
    for dag_id, dag in sorted(dags.items()):
        tags = {"dag_id": dag_id}
        for state in ("running", "queued"):
            sparse.gauge(check, "airflow.dag_run.active", active[dag_id][state],
                         {"dag_id": dag_id, "state": state})
        runs = sorted(stuck[dag_id])  # which runs, so an alert can name them
        sparse.gauge(check, "airflow.dag.stuck_runs", len(runs), tags,
                     facts={"run_id": _names(runs)} if runs else None)
        if dag.paused:
            continue
        delays = [queued_delay[dag_id]] if dag_id in queued_delay else []
        if dag.next_run_due is not None:
            delays.append(listed_at - dag.next_run_due)
        if delays:
            delay = max(0.0, max(delays))
            sparse.gauge(check, "airflow.dag.schedule_delay", delay, tags)
            sparse.gauge(check, "airflow.dag.late", 1 if delay > cfg.late_after else 0, tags)


def _names(run_ids: list[str], limit: int = 200) -> str:
    text = ",".join(run_ids)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _stuck_limit(cfg: Any, p95: float | None) -> float | None:
    limits = [x for x in (cfg.stuck_after, p95 * cfg.stuck_factor if p95 is not None else None)
              if x is not None]
    return min(limits) if limits else None


async def _queued_tasks(check: Any, dags: dict[str, Dag], sparse: SparseGauges) -> None:
    cfg, now = check.config, check.now
    tis = await check.client.get_all("/dags/~/dagRuns/~/taskInstances", "task_instances",
                                     [("state", "queued")])
    count: dict[str, int] = defaultdict(int)
    too_long: dict[str, int] = defaultdict(int)
    oldest: dict[str, float] = {}
    for ti in tis:
        dag_id = ti.get("dag_id")
        if not isinstance(dag_id, str) or dag_id not in dags or ti.get("state") != "queued":
            continue
        count[dag_id] += 1
        since = parse_ts(ti.get("queued_when")) or parse_ts(ti.get("scheduled_when"))
        if since is None:
            continue
        age = max(0.0, now - since)
        oldest[dag_id] = max(oldest.get(dag_id, 0.0), age)
        too_long[dag_id] += age > cfg.queued_too_long
    for dag_id in sorted(dags):
        tags = {"dag_id": dag_id}
        sparse.gauge(check, "airflow.task_instance.queued", count[dag_id], tags)
        sparse.gauge(check, "airflow.task_instance.queued_too_long", too_long[dag_id], tags)
        if dag_id in oldest:
            check.gauge("airflow.task_instance.queued_max_age", oldest[dag_id], tags=tags)
