"""Datadog API mode inside a real ``mlwarden run``: an intake outage with the agent
restarted (SIGTERM, then a new process on the same database) in the middle.

The self-check runs every 0.5 s; its ``mlwarden.check.runs`` points are the evidence:
after the outage every run's point has arrived exactly once, in order, with its original
timestamp, and the only gap in the series is the time the agent was down.
"""

from __future__ import annotations

import sqlite3
import time
from collections import Counter
from contextlib import closing
from pathlib import Path

import pytest

from tests.export.fake_intake import FakeIntake
from tests.export.agent_proc import start_agent
from tests.support.procs import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]
OUTAGE = 60.0  # the full minute: 5xx for 30 s, then hanging requests


def recorded_runs(db: Path) -> list[float]:
    """When the self-check ran, as the agent's own history store recorded it."""
    with closing(sqlite3.connect(db)) as conn:
        return [ts for (ts,) in conn.execute(
            "SELECT samples.ts FROM samples JOIN series ON series.id = samples.series_id "
            "WHERE series.metric = 'mlwarden.check.runs' AND series.tags LIKE '%\"check\":\"agent\"%'")]


def test_outage_and_restart_lose_nothing_and_send_nothing_twice(tmp_path):
    with FakeIntake() as intake:
        extra = f"""  prometheus: {{enabled: true}}
  datadog:
    mode: api
    api_key: {intake.api_key}
    api_url: {intake.url}
    flush_interval: 200ms
    timeout: 400ms
    retry_initial: 100ms
    retry_max: 800ms
    client_backoff: 1s"""
        # the self-check interval is agent.self_check_interval (set to 1s by start_agent)
        agent, port = start_agent(tmp_path, extra)
        try:
            def runs(points=None):
                return [(ts, tags) for m, tags, ts, _ in (intake.acked_points() if points is None else points)
                        if m == "mlwarden.check.runs" and "check:agent" in tags]

            wait_for(lambda: len(runs()) >= 2, 20, 0.2, "the first points")
            intake.mode = "error"
            time.sleep(OUTAGE / 2)
            intake.mode = "hang"
            time.sleep(OUTAGE / 4)
            down_from = time.time()
            agent.stop()  # SIGTERM in the middle of the outage
            agent, port = start_agent(tmp_path, extra)
            down_until = time.time()
            time.sleep(OUTAGE / 4)
            outage_end = time.time()
            intake.mode = "ok"
            wait_for(lambda: any(ts >= outage_end + 1 for ts, _ in runs()), 30, 0.2,
                     "points after the outage")
        finally:
            agent.stop()
        points = runs()
        assert intake.problems == []
        times = [ts for ts, _ in points]
        # a request whose 202 never reached the agent (its timeout ran out while the intake was
        # slow) must be sent again: its points are then in the acknowledged ones too
        unheard = runs([intake.points[i] for r in intake.unacked for i in r])
        assert not Counter(unheard) - Counter(points), unheard
        # exactly once among what the intake acknowledged: no second holds more points than the
        # agent recorded runs in it (a run that starts late can share its second with the next
        # one, which is not a resend)
        recorded = Counter(round(ts) for ts in recorded_runs(tmp_path / "history.db"))
        dupes = [(ts, n, recorded[ts]) for ts, n in Counter(times).items() if n > recorded[ts]]
        assert dupes == [], dupes
        assert times == sorted(times)  # in order, original timestamps
        gaps = [(a, b) for a, b in zip(times, times[1:]) if b - a > 2]
        # the self-check runs every second: the only hole is while no agent was running
        assert all(a >= down_from - 2 and b <= down_until + 3 for a, b in gaps), (gaps, down_from, down_until)
        assert len(gaps) <= 1
        during = [t for t in times if down_until - 3 - OUTAGE <= t <= outage_end]
        assert len(during) >= OUTAGE * 0.6, during  # the outage's points arrived
        statuses = {s for _, s, _ in intake.requests}
        assert {202, 503} <= statuses
