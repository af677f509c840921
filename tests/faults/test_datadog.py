"""Datadog's intake down (503), slow (no answer before the timeout) and rate limiting (429),
one after the other, under the real daemon. The intake is the strict stand-in of
tests/export/fake_intake.py (Datadog's backend cannot run here; payloads are checked
against the official client's models). After each phase the agent is running and /status
says what is wrong; afterwards every point the store accepted during the outage reaches
the intake exactly once.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections import Counter

import pytest

from tests.export.fake_intake import FakeIntake
from tests.faults.daemon import Daemon
from tests.support.procs import wait_for

pytestmark = pytest.mark.integration

CONFIG = """
agent:
  listen: 127.0.0.1:{port}
  history: sqlite:///{db}
  self_check_interval: 1s
  log_format: json
history:
  batch_interval: 200ms
exporters:
  datadog: {{mode: api, api_key: "%(key)s", api_url: "%(url)s", flush_interval: 200ms, timeout: 1s,
            retry_initial: 200ms, retry_max: 1s, client_backoff: 1s}}
checks:
  - {{type: test_fast, name: fast, interval: 300ms}}
"""
METRIC = "mlwarden.check.duration"


def stored_points(db) -> list[tuple[int, float]]:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)) as conn:
        rows = conn.execute(
            "SELECT samples.ts, samples.value FROM samples JOIN series ON series.id = samples.series_id "
            "WHERE series.metric = ? AND series.tags LIKE '%\"check\":\"fast\"%'", (METRIC,)).fetchall()
    return [(round(ts), value) for ts, value in rows]  # the second the exporter sends: the nearest


def delivered(intake: FakeIntake) -> Counter:
    # what the agent was told the intake kept: a 202 that came after its timeout is not
    return Counter((ts, value) for metric, tags, ts, value in intake.acked_points()
                   if metric == METRIC and "check:fast" in tags)


def test_intake_down_slow_and_rate_limiting(tmp_path):
    with FakeIntake() as intake:
        intake.hang_seconds = 2.0
        body = CONFIG % {"key": intake.api_key, "url": intake.url}
        with Daemon(tmp_path, body) as agent:
            def dd() -> dict:
                return agent.status()["components"]["datadog"]

            wait_for(lambda: dd()["sent_points"] > 0, 20, what="first delivery")
            seen: dict[str, str] = {}
            for mode, words in (("error", ("503",)), ("hang", ("timeout", "timed out")),
                                ("ratelimit", ("429", "rate"))):
                intake.mode = mode
                failures = dd()["failures"]
                last: list[dict] = []

                def says() -> bool:
                    last[:] = [dd()]
                    text = (last[0]["last_error"] or "").lower()
                    return last[0]["failures"] > failures and any(w in text for w in words)

                try:
                    wait_for(says, 30, what=f"/status to say {words} while the intake is in mode {mode}")
                except AssertionError as exc:
                    raise AssertionError(f"{exc}; last: {last}") from None
                seen[mode] = dd()["last_error"]
                states = {mode: last[0]["state"]}
                assert last[0]["state"] != "ok", (mode, states)
                assert agent.alive() and agent.check("fast")["status"] == "OK"
            intake.mode = "ok"
            recovered = time.time()
            wait_for(lambda: dd()["last_success"] and dd()["last_success"] > recovered, 30,
                     what="delivery after the intake recovers")
            # every point the store accepted up to the recovery arrives, once
            wanted = Counter(p for p in stored_points(agent.db) if p[0] < int(recovered))
            assert len(wanted) > 10
            wait_for(lambda: not (wanted - delivered(intake)), 30, what="every stored point at the intake")
            got = delivered(intake)
            twice = {p: n for p, n in got.items() if n > wanted.get(p, 1)}
            assert not twice, f"points delivered more than once: {list(twice)[:5]}"
            assert not intake.problems, intake.problems[:5]
            assert agent.alive()
        log = agent.log().lower()
        assert "503" in log and "timeout" in log and "429" in log, seen
