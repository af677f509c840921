"""Cost of an airflow-check poll as the deployment grows: 100 versus 2,000 DAGs, measured
side by side in one run against the recorded-response Airflow 3 fake on 127.0.0.1.

Each steady-state poll sees 20 newly finished runs (2 failed). The claim under test: a
steady-state poll's work does not grow with the number of DAGs or the length of history
(requests per poll), only the periodic DAG listing does. Wall time includes the fake
server, which runs in this process and scans its whole history on each query (a real
Airflow uses indexes), so the wall ratio overstates the check's own growth.

    python benchmarks/airflow_poll.py [--polls 10]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from agent.check import CheckContext, MemoryState  # noqa: E402
from checks.airflow.check import AirflowCheck  # noqa: E402
from checks.airflow.config import AirflowConfig  # noqa: E402
from tests.checks.airflow_fake import PASSWORD, USER, FakeAirflow  # noqa: E402


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


async def measure(dags: int, polls: int, history_runs: int) -> dict[str, float]:
    clock = Clock()
    fake = FakeAirflow("3", clock)
    fake.dags = []
    for i in range(dags):
        fake.dag(f"dag_{i:04d}")
    t0 = clock.now - 86400 * 365
    for i in range(history_runs):  # a year of history, all before the cursor
        fake.run(f"dag_{i % dags:04d}", f"old{i}", "success", t0 + i, t0 + i + 1)
    batches: list[list[tuple[str, str, str, float]]] = []
    for p in range(polls + 1):  # the runs that finish before each poll
        batch = []
        for j in range(20):
            dag_id, run_id = f"dag_{(p * 20 + j) % dags:04d}", f"p{p}r{j}"
            batch.append((dag_id, run_id, "failed" if j < 2 else "success", 60.0 * p + j))
            if j < 2:  # the fake's routes are fixed when it starts: declare the tasks now
                fake.ti(dag_id, run_id, "train", "failed")
        batches.append(batch)
    start_at = clock.now

    def finish(p: int) -> None:
        for dag_id, run_id, state, offset in batches[p]:
            fake.run(dag_id, run_id, state, start_at + offset - 30, start_at + offset)
    config = AirflowConfig(type="airflow", name="bench", url="http://x", username=USER,
                           password=PASSWORD, timeout=30, dag_refresh="1h",
                           freshness_lookups_per_poll=0, initial_lookback=60)
    async with fake.target() as target:
        config = config.model_copy(update={"url": target.url})
        ctx = CheckContext(state=MemoryState(), clock=clock)
        check = AirflowCheck(config, ctx)
        first_start = time.perf_counter()
        finish(0)
        clock.now = start_at + 30
        await check.run()
        first_wall = time.perf_counter() - first_start
        first_requests = check.client.requests
        walls, requests = [], []
        for p in range(1, polls + 1):
            finish(p)
            clock.now = start_at + 60 * p + 30
            before = check.client.requests
            start = time.perf_counter()
            result = await check.run()
            walls.append(time.perf_counter() - start)
            requests.append(check.client.requests - before)
            assert result.error is None, result.message
            failed = [x for x in result.samples if x.metric == "mlwarden.airflow.dag_run.failed"]
            assert len(failed) == 2, f"poll {p}: {len(failed)} failed runs reported, not 2"
        await ctx.close()
    return {"first_wall": first_wall, "first_requests": first_requests,
            "wall": statistics.median(walls), "requests": statistics.median(requests)}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--polls", type=int, default=10)
    args = parser.parse_args()
    small = await measure(100, args.polls, history_runs=1000)
    large = await measure(2000, args.polls, history_runs=20000)
    print(f"{'':28}{'100 DAGs':>12}{'2000 DAGs':>12}{'ratio':>8}")
    for key, label in (("first_requests", "first poll: requests"),
                       ("first_wall", "first poll: wall s"),
                       ("requests", "steady poll: requests"),
                       ("wall", "steady poll: wall s (median)")):
        print(f"{label:28}{small[key]:>12.3f}{large[key]:>12.3f}{large[key] / small[key]:>8.2f}")


if __name__ == "__main__":
    asyncio.run(main())
