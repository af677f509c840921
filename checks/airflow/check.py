"""The `airflow` check: one Airflow deployment (2.x `/api/v1` or 3.x `/api/v2`) per instance.

A small dispatcher: connect (version, login), then health, the selected DAGs, finished runs,
active runs and queued tasks, and import errors, each in its own module. A section that
fails does not stop the others; the run's verdict names every failed section.
"""

from __future__ import annotations

from typing import ClassVar

from agent.check import AgentCheck
from agent.errors import CheckError
from agent.samples import Status
from checks.airflow.active import collect_active
from checks.airflow.client import AirflowApiError, AirflowClient
from checks.airflow.config import AirflowConfig
from checks.airflow.dags import Dag, DagCache
from checks.airflow.history import DagHistory
from checks.airflow.health import collect_health
from checks.airflow.import_errors import collect_import_errors
from checks.airflow.sparse import SparseGauges
from checks.airflow.runs import collect_finished_runs, emit_freshness, lookup_freshness

__all__ = ["AirflowCheck"]


class AirflowCheck(AgentCheck):
    """Failed runs and tasks (once each, with log links), freshness, stuck and late runs,
    queued tasks, import errors and component health of one Airflow deployment."""

    type_name = "airflow"
    key_metric = "mlwarden.airflow.dag.last_success_age"
    Config: ClassVar[type[AirflowConfig]] = AirflowConfig  # type: ignore[assignment]
    config: AirflowConfig

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.client = AirflowClient(self.config, lambda: self.context.http, self.context.clock)
        self._dags = DagCache()
        self._history = DagHistory()
        self._sparse = SparseGauges()

    async def _runs(self, dags: dict[str, Dag]) -> None:
        self._history = await collect_finished_runs(self, dags)
        try:
            await lookup_freshness(self, dags, self._history)
        finally:
            emit_freshness(self, dags, self._history)

    async def check(self) -> None:
        try:
            await self.client.connect()
        except CheckError:
            self.gauge("airflow.can_connect", 0)
            raise
        failed: list[str] = []
        refused = False

        async def section(name: str, coro: object) -> bool:
            nonlocal refused
            try:
                await coro  # type: ignore[misc]
                return True
            except CheckError as exc:
                failed.append(f"{name}: {exc}")
                refused |= isinstance(exc, AirflowApiError) and exc.status in (401, 403)
                return False

        await section("health", collect_health(self))
        if await section("dags", self._dags.get(self)):
            dags = self._dags.selected
            self.gauge("airflow.dags.watched", len(dags))
            await section("runs", self._runs(dags))
            await section("active runs", collect_active(self, dags, self._history,
                                                        self._dags.listed_at or self.now,
                                                        self._sparse))
        await section("import errors", collect_import_errors(self))
        # "connected" means the API answered and accepted this check's credentials
        self.gauge("airflow.can_connect", 0 if refused else 1)
        if failed:
            raise CheckError("; ".join(failed))
        self.service_check(Status.OK, f"Airflow {self.client.airflow_version} "
                                      f"(/api/v{self.client.version}) answered")
