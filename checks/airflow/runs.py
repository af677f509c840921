"""Finished DAG runs: each one reported once, failed ones with their failed task instances.

Reads ``/dags/~/dagRuns`` filtered on ``end_date >= cursor`` in ``end_date`` order, to the
last page or ``max_runs_per_poll``, so a poll costs what finished since the last one, not
the deployment's history. For every failed run it reads that run's failed task instances
(``up_for_retry`` is not ``failed``: a task that will be retried is not a failure; the run
that finally fails is). The cursor advances run by run and is saved even when a later
request fails, so a restart neither misses nor repeats a run.

What a failed run looks like in samples (one of each, once):

- ``airflow.dag_run.failed`` (count 1) tags ``dag_id run_id run_type failed_tasks
  failed_hosts log_url``
- ``airflow.task_instance.failed`` (count 1) and ``airflow.task_instance.failed_duration``
  per failed task, tags ``dag_id run_id task_id try_number map_index hostname log_url``

``hostname`` is the worker's host (a pod's name with KubernetesExecutor) as Airflow
records it; with the GPU check's ``node`` and ``pod`` it says where the task ran, so a GPU
fault on that node explains the failure (agent/causes). It is a fact, never a series: a
pod name is new for every task.

With ``task_instances: true`` every finished run's task instances are read (one listing
instead of the failed ones only) and each that ran gets ``airflow.task_instance.duration``
with the host it ran on and its start and end as facts: GPU cost attribution charges the
GPUs of that host (or pod) for that window.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from checks.airflow.client import AirflowApiError, seg
from checks.airflow.cursor import RunCursor, run_key
from checks.airflow.dags import Dag
from checks.airflow.history import NEVER, DagHistory
from checks.airflow.links import run_url, task_log_url
from checks.airflow.times import format_ts, parse_ts

__all__ = ["collect_finished_runs", "emit_freshness", "lookup_freshness", "CURSOR_KEY",
           "HISTORY_KEY"]

CURSOR_KEY = "runs_cursor"
HISTORY_KEY = "dag_history"
TERMINAL = ("success", "failed")
MAX_TAG = 200


async def collect_finished_runs(check: Any, dags: dict[str, Dag]) -> DagHistory:
    cfg, client, store = check.config, check.client, check.context.state
    cursor = RunCursor.load(await store.get_state(check.name, CURSOR_KEY),
                            check.now - cfg.initial_lookback)
    history = DagHistory.load(await store.get_state(check.name, HISTORY_KEY))
    params = [("end_date_gte", format_ts(cursor.since(cfg.cursor_overlap))),
              ("order_by", "end_date"), *(("state", s) for s in TERMINAL)]
    raw = await client.get_all("/dags/~/dagRuns", "dag_runs", params,
                               max_items=cfg.max_runs_per_poll + len(cursor.recent))
    runs = []
    for run in raw:
        end = parse_ts(run.get("end_date"))
        if (end is None or run.get("state") not in TERMINAL
                or not isinstance(run.get("dag_id"), str)
                or not isinstance(run.get("dag_run_id"), str)):
            continue
        key = run_key(run["dag_id"], str(run.get("dag_run_id")), end)
        if not cursor.seen(key):
            runs.append((end, key, run))
    runs.sort(key=lambda item: (item[0], item[1]))
    runs = runs[:cfg.max_runs_per_poll]

    every = cfg.task_instances

    async def task_instances(run: dict[str, Any]) -> list[dict[str, Any]]:
        path = f"/dags/{seg(run['dag_id'])}/dagRuns/{seg(str(run['dag_run_id']))}/taskInstances"
        return await client.get_all(path, "task_instances", () if every else [("state", "failed")])

    wanted = [r for _, _, r in runs if (every or r["state"] == "failed") and r["dag_id"] in dags]
    fetched = await asyncio.gather(*(task_instances(r) for r in wanted), return_exceptions=True)
    tasks_of = {id(r): f for r, f in zip(wanted, fetched)}
    finished: Counter[tuple[str, str]] = Counter()
    error: BaseException | None = None
    try:
        for end, key, run in runs:
            dag_id = run["dag_id"]
            if dag_id in dags:
                tis = tasks_of.get(id(run), [])
                if isinstance(tis, BaseException):
                    error = tis
                    break
                _report(check, run, end, tis, history)
                finished[(dag_id, run["state"])] += 1
            cursor.advance(key, end, cfg.cursor_overlap)
    finally:
        for (dag_id, state), n in sorted(finished.items()):
            check.count("airflow.dag_run.finished", n, tags={"dag_id": dag_id, "state": state})
        await store.set_state(check.name, CURSOR_KEY, cursor.dump())
        await store.set_state(check.name, HISTORY_KEY, history.dump())
    if error is not None:
        raise error
    return history


def _report(check: Any, run: dict[str, Any], end: float, tis: list[dict[str, Any]],
            history: DagHistory) -> None:
    cfg, version = check.config, check.client.version
    base = cfg.ui_url or cfg.url
    dag_id, run_id, state = run["dag_id"], str(run["dag_run_id"]), run["state"]
    start = parse_ts(run.get("start_date"))
    duration = run.get("duration")
    if not isinstance(duration, (int, float)):
        duration = end - start if start is not None else None
    history.record(dag_id, state, end, duration)
    if duration is not None:
        check.gauge("airflow.dag_run.duration", duration,
                    tags={"dag_id": dag_id, "state": state, "run_id": run_id})
    if cfg.task_instances:
        _report_task_instances(check, dag_id, run_id, tis)
    if state != "failed":
        return
    links = []
    hosts: set[str] = set()
    for ti in tis:
        if ti.get("state") != "failed":
            continue
        task_id = str(ti.get("task_id"))
        try_number = ti.get("try_number") if isinstance(ti.get("try_number"), int) else None
        map_index: int = ti["map_index"] if isinstance(ti.get("map_index"), int) else -1
        log_url = task_log_url(base, version, dag_id, run_id, task_id, try_number, map_index)
        links.append((task_id, log_url))
        tags = {"dag_id": dag_id, "run_id": run_id, "task_id": task_id,
                "try_number": try_number if try_number is not None else "",
                "map_index": map_index, "log_url": log_url}
        host = ti.get("hostname") if isinstance(ti.get("hostname"), str) else ""
        if host:  # a task failed before any worker ran it has none: no empty tag
            tags["hostname"] = host[:MAX_TAG]
            hosts.add(host)
        check.count("airflow.task_instance.failed", 1, tags=tags)
        if isinstance(ti.get("duration"), (int, float)):
            check.gauge("airflow.task_instance.failed_duration", ti["duration"], tags=tags)
    tags = {
        "dag_id": dag_id, "run_id": run_id, "run_type": run.get("run_type") or "",
        "failed_tasks": _joined({t for t, _ in links}),
        "log_url": links[0][1] if links else run_url(base, version, dag_id, run_id),
    }
    if hosts:
        tags["failed_hosts"] = _joined(hosts)
    check.count("airflow.dag_run.failed", 1, tags=tags)


def _joined(names: set[str]) -> str:
    """Sorted, comma-separated, cut to a tag's length."""
    text = ",".join(sorted(names))
    return text[:MAX_TAG - 3] + "..." if len(text) > MAX_TAG else text


def _report_task_instances(check: Any, dag_id: str, run_id: str, tis: list[dict[str, Any]]) -> None:
    """One ``airflow.task_instance.duration`` per task instance that ran: a start, an end and
    the worker's host name. Skipped and upstream_failed ones never reached a worker (Airflow
    leaves their hostname empty), so they have no window to charge."""
    for ti in tis:
        start, end = parse_ts(ti.get("start_date")), parse_ts(ti.get("end_date"))
        hostname = ti.get("hostname") if isinstance(ti.get("hostname"), str) else ""
        if start is None or end is None or end < start or not hostname:
            continue
        try_number = ti.get("try_number") if isinstance(ti.get("try_number"), int) else ""
        map_index = ti["map_index"] if isinstance(ti.get("map_index"), int) else -1
        check.gauge("airflow.task_instance.duration", end - start, tags={
            "dag_id": dag_id, "task_id": str(ti.get("task_id")), "state": str(ti.get("state")),
            "run_id": run_id, "try_number": try_number, "map_index": map_index,
            "hostname": hostname[:MAX_TAG], "start": f"{start:.3f}", "end": f"{end:.3f}"})


async def lookup_freshness(check: Any, dags: dict[str, Dag], history: DagHistory) -> None:
    """Learn the last finished run of DAGs the check has not seen finish, a few per poll.

    A DAG deleted between the DAG list and this lookup (Airflow 3: 404) counts as never
    succeeded until the list drops it, so one vanished DAG cannot fail every poll.
    """
    client, cfg = check.client, check.config
    unknown = [d for d in sorted(dags) if d not in history.last_success]
    unknown = unknown[:cfg.freshness_lookups_per_poll]
    if not unknown:
        return

    async def lookup(dag_id: str) -> None:
        try:
            await lookup_one(dag_id)
        except AirflowApiError as exc:
            if exc.status != 404:
                raise
            history.last_success[dag_id] = NEVER

    async def lookup_one(dag_id: str) -> None:
        path = f"/dags/{seg(dag_id)}/dagRuns"
        last = await client.get(path, [("order_by", "-end_date"), ("limit", 1),
                                       *(("state", s) for s in TERMINAL)])
        run = _first_run(last)
        if run and dag_id not in history.last_state:
            history.last_state[dag_id] = str(run.get("state"))
        if run and run.get("state") == "success":
            history.last_success[dag_id] = parse_ts(run.get("end_date")) or NEVER
            return
        last = await client.get(path, [("order_by", "-end_date"), ("limit", 1),
                                       ("state", "success")])
        run = _first_run(last)
        end = parse_ts(run.get("end_date")) if run else None
        history.last_success[dag_id] = end if end is not None else NEVER

    results = await asyncio.gather(*(lookup(d) for d in unknown), return_exceptions=True)
    await check.context.state.set_state(check.name, HISTORY_KEY, history.dump())
    for result in results:
        if isinstance(result, BaseException):
            raise result


def _first_run(body: Any) -> dict[str, Any] | None:
    """The first run of a ``dag_runs`` answer; None when it holds none (or is not one)."""
    runs = body.get("dag_runs") if isinstance(body, dict) else None
    run = runs[0] if isinstance(runs, list) and runs else None
    return run if isinstance(run, dict) else None


def emit_freshness(check: Any, dags: dict[str, Dag], history: DagHistory) -> None:
    for dag_id in sorted(dags):
        tags = {"dag_id": dag_id}
        last = history.last_success.get(dag_id)
        if last is not None and last > NEVER:
            check.gauge("airflow.dag.last_success_age", max(0.0, check.now - last), tags=tags)
        state = history.last_state.get(dag_id)
        if state in TERMINAL:
            check.gauge("airflow.dag.last_run_failed", 1 if state == "failed" else 0, tags=tags)
        p95 = history.p95(dag_id, check.config.stuck_min_history)
        if p95 is not None:
            check.gauge("airflow.dag.duration_p95", p95, tags=tags)
