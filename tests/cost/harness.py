"""A small agent for cost tests: check results go through the cost meter into a real history
store (SQLite in a temporary folder), the way the daemon's pipeline sends them.

The clock is the checks' own (simulated days pass in seconds); the store's writer thread,
Alembic migrations, rollups and queries are the real ones.
"""

from __future__ import annotations

import asyncio

from agent.cost.config import CostConfig
from agent.cost.meter import CostMeter
from agent.history.config import HistoryConfig
from agent.history.store import HistoryStore
from agent.samples import CheckResult
from tests.conftest import assert_in_catalog


class Harness:
    def __init__(self, path: str, config: CostConfig, clock) -> None:
        self.store = HistoryStore(f"sqlite:///{path}", HistoryConfig(), clock=clock)
        self.store.start_blocking()
        self.clock = clock
        self.emitted: list[CheckResult] = []
        self.meter = CostMeter(config, self._submit, reader=self.store)

    def _submit(self, result: CheckResult) -> None:
        assert_in_catalog(result)
        self.emitted.append(result)
        self.store.consume(result)

    async def feed(self, result: CheckResult) -> None:
        """One check result through the pipeline's sinks: the store, then the meter."""
        self.store.consume(result)
        self.meter.consume(result)
        if self.meter._pending:
            self.store.flush()
            await asyncio.gather(*list(self.meter._pending))

    def finish(self) -> None:
        """Everything written and rolled up, as a long-running agent would have it."""
        assert self.store.flush(30)
        self.store.run_maintenance(self.clock() + 3600)

    def close(self) -> None:
        self.store.stop_blocking()

    def samples(self, metric: str, **tags: str) -> list:
        return [s for r in self.emitted for s in r.samples
                if s.metric == metric and all(s.tag(k) == v for k, v in tags.items())]
