"""Links into the Airflow UI, so an alert can take the on-call engineer to the task log.

Airflow 3's React UI: ``/dags/{dag}/runs/{run}/tasks/{task}[/mapped/{i}]?try_number=N``.
Airflow 2.10's grid view: ``/dags/{dag}/grid?dag_run_id=..&task_id=..&tab=logs``.
"""

from __future__ import annotations

from urllib.parse import quote, urlencode

__all__ = ["task_log_url", "run_url"]


def _seg(value: str) -> str:
    return quote(value, safe="")


def task_log_url(base: str, version: str, dag_id: str, run_id: str, task_id: str,
                 try_number: int | None, map_index: int = -1) -> str:
    if version == "2":
        url = f"{base}/dags/{_seg(dag_id)}/runs/{_seg(run_id)}/tasks/{_seg(task_id)}"
        if map_index >= 0:
            url += f"/mapped/{map_index}"
        return url + (f"?try_number={try_number}" if try_number else "")
    query = [("dag_run_id", run_id), ("task_id", task_id), ("tab", "logs")]
    if map_index >= 0:
        query.append(("map_index", str(map_index)))
    if try_number:
        query.append(("try_number", str(try_number)))
    return f"{base}/dags/{_seg(dag_id)}/grid?{urlencode(query)}"


def run_url(base: str, version: str, dag_id: str, run_id: str) -> str:
    if version == "2":
        return f"{base}/dags/{_seg(dag_id)}/runs/{_seg(run_id)}"
    return f"{base}/dags/{_seg(dag_id)}/grid?{urlencode([('dag_run_id', run_id)])}"
