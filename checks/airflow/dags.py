"""Which DAGs this instance watches, from a DAG list re-read every ``dag_refresh``.

Listing 2,000 DAGs is 20 pages; doing it every poll would be most of the poll's work, so
the list is cached and the selection (globs on dag_id, tags, paused) is applied here once.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any

from checks.airflow.config import AirflowConfig
from checks.airflow.times import parse_ts

__all__ = ["Dag", "DagCache", "select"]


@dataclass(frozen=True)
class Dag:
    dag_id: str
    paused: bool
    tags: tuple[str, ...]
    next_run_due: float | None  # when the scheduler should create the next scheduled run


def _dag(raw: dict[str, Any]) -> Dag | None:
    dag_id = raw.get("dag_id")
    if not isinstance(dag_id, str):
        return None
    listed = raw.get("tags")
    tags = tuple(t.get("name", "") if isinstance(t, dict) else str(t)
                 for t in (listed if isinstance(listed, list) else ()))
    # v2: next_dagrun_run_after; v1: next_dagrun_create_after
    due = parse_ts(raw.get("next_dagrun_run_after") or raw.get("next_dagrun_create_after"))
    return Dag(dag_id, bool(raw.get("is_paused")), tags, due)


def select(config: AirflowConfig, dags: list[Dag]) -> dict[str, Dag]:
    out = {}
    for dag in dags:
        if dag.paused and not config.include_paused:
            continue
        if not any(fnmatch.fnmatchcase(dag.dag_id, p) for p in config.dags):
            continue
        if any(fnmatch.fnmatchcase(dag.dag_id, p) for p in config.exclude_dags):
            continue
        if config.dag_tags and not set(config.dag_tags) & set(dag.tags):
            continue
        out[dag.dag_id] = dag
    return out


class DagCache:
    """The selected DAGs; re-listed when older than ``dag_refresh``."""

    def __init__(self) -> None:
        self.selected: dict[str, Dag] = {}
        self.listed_at: float | None = None

    async def get(self, check: Any) -> dict[str, Dag]:
        now = check.now
        if self.listed_at is None or now - self.listed_at >= check.config.dag_refresh:
            params = [("order_by", "dag_id")]
            raw = await check.client.get_all("/dags", "dags", params)
            self.selected = select(check.config, [d for d in map(_dag, raw) if d is not None])
            self.listed_at = now
        return self.selected
