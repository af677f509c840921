"""How long a fleet runs without a leader after the leader dies, for several lease lengths.

Three electors (one engine each, as three agents would have) share a fresh PostgreSQL
database on 127.0.0.1:5432. The leader "dies" the way SIGKILL kills it: its loop stops and
it never releases the lease. Printed side by side per lease length: the time from the
death to the next leader, that time as a ratio of lease_duration (the design bound is
<= 1.0 plus a database round trip), and the same after a clean stop (lease released).

Run: .venv/bin/python benchmarks/fleet_handover.py
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg  # noqa: E402

from agent.history.db import create_schema, make_engine  # noqa: E402
from agent.leader import LeaderConfig, LeaderElector  # noqa: E402

ADMIN = os.environ.get("MLWARDEN_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
TRIALS = 4
LEASES = (1.0, 2.0, 4.0)


async def _until_leader(electors: list[LeaderElector], limit: float) -> tuple[float, LeaderElector]:
    start = time.monotonic()
    while time.monotonic() - start < limit:
        for e in electors:
            if e.is_leader:
                return time.monotonic() - start, e
        await asyncio.sleep(0.005)
    raise RuntimeError(f"no leader within {limit}s")


async def trial(url: str, lease: float, clean: bool) -> float:
    engines = [make_engine(url) for _ in range(3)]
    cfg = LeaderConfig(lease_name=f"bench-{uuid.uuid4().hex[:6]}", lease_duration=lease,
                       renew_interval=lease / 3)
    electors = [LeaderElector(e, cfg, f"agent-{i}") for i, e in enumerate(engines)]
    try:
        for e in electors:
            await e.start()
        _t, leader = await _until_leader(electors, lease * 3)
        # die at a random point of the renew cycle
        await asyncio.sleep((time.monotonic() * 7919) % cfg.renew_interval)
        rest = [e for e in electors if e is not leader]
        if clean:
            await leader.stop()
        else:
            assert leader._task is not None  # noqa: SLF001 - simulating SIGKILL
            leader._task.cancel()  # noqa: SLF001
            leader._valid_until = 0.0  # noqa: SLF001 - a dead process leads nothing
        took, _new = await _until_leader(rest, lease * 3)
        return took  # measured from the death
    finally:
        for e in electors:
            await e.stop()
        for engine in engines:
            engine.dispose()


async def main() -> None:
    name = f"mlw_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1) + "/" + name
    try:
        engine = make_engine(url)
        create_schema(engine)
        engine.dispose()
        print(f"{'lease':>6} {'killed: median':>15} {'max':>6} {'max/lease':>10} "
              f"{'clean stop: median':>19} {'max':>6}")
        for lease in LEASES:
            killed = [await trial(url, lease, clean=False) for _ in range(TRIALS)]
            stopped = [await trial(url, lease, clean=True) for _ in range(TRIALS)]
            print(f"{lease:>5g}s {statistics.median(killed):>14.3f}s {max(killed):>5.3f}s "
                  f"{max(killed) / lease:>10.2f} {statistics.median(stopped):>18.3f}s {max(stopped):>5.3f}s")
    finally:
        with psycopg.connect(ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    asyncio.run(main())
