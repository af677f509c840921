"""Datadog API mode against a strict stand-in intake (see fake_intake.py for why a fake).

The outage test is the issue's acceptance test with the failure period shortened by
config (``OUTAGE`` seconds instead of 60) but the same shape: 5xx first, then requests that
hang past the client's timeout (which trips the datadog package's own 3-timeouts backoff),
with the exporter restarted in the middle on the same database.
"""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from agent.export.config import DatadogConfig
from agent.export.datadog_api import CHECK_KIND, SERIES_KIND, DatadogApiExporter
from agent.history.db import create_schema, make_engine
from agent.history.outbox import Outbox
from agent.samples import CheckResult, Kind, Sample, Status, make_tags
from tests.export.fake_intake import FakeIntake

OUTAGE = 6.0  # seconds of failure (the 60 s, shortened; same 5xx-then-timeouts shape)


@pytest.fixture
def engine(tmp_path):
    eng = make_engine(f"sqlite:///{tmp_path}/history.db")
    create_schema(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def intake():
    with FakeIntake() as fake:
        yield fake


# the client's timeout where a test makes the intake hang past it; elsewhere a generous one,
# so a loaded machine cannot turn the intake's answer into a timeout (an answer after the
# timeout is not acknowledged: the test would see nothing kept)
SHORT = 0.4


def config(intake: FakeIntake, **over) -> DatadogConfig:
    base = dict(mode="api", api_key=intake.api_key, api_url=intake.url, flush_interval=0.1,
                timeout=10.0, retry_initial=0.1, retry_max=0.8, client_backoff=1.0)
    base.update(over)
    return DatadogConfig(**base)


def result(i: int, ts: float, status: Status = Status.OK) -> CheckResult:
    tags = make_tags({"check": "ranker", "model": "ranker"})
    meta = make_tags(tags, {"check_type": "model_endpoint"})
    return CheckResult(
        check="ranker", check_type="model_endpoint", status=status, started=ts,
        message="" if status is Status.OK else "endpoint down",
        samples=[Sample("mlwarden.check.duration", float(i), meta, ts),
                 Sample("mlwarden.check.runs", 1.0, meta, ts, Kind.COUNT)],
    )


async def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def durations(intake: FakeIntake) -> list[tuple[int, float]]:
    """What the intake told the exporter it kept (a 202 that came after the exporter's
    timeout is not: those points must come again)."""
    return [(ts, v) for m, _, ts, v in intake.acked_points() if m == "mlwarden.check.duration"]


async def test_points_of_an_outage_arrive_once_in_order_across_a_restart(engine, intake):
    exporter = DatadogApiExporter(config(intake, timeout=SHORT), engine, hostname="node-1")
    await exporter.start()
    sent: list[tuple[int, float]] = []
    i = 0

    async def feed(seconds: float, exp: DatadogApiExporter) -> None:
        nonlocal i
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            ts = time.time()
            exp.consume(result(i, ts))
            sent.append((round(ts), float(i)))  # the nearest second
            i += 1
            await asyncio.sleep(0.05)

    await feed(0.5, exporter)
    await wait_until(lambda: len(durations(intake)) == len(sent), 5, "the points before the outage")
    intake.mode = "error"
    await feed(OUTAGE / 2, exporter)
    assert "HTTP 503" in exporter.status()["last_error"]
    intake.mode = "hang"
    await feed(OUTAGE / 4, exporter)
    status = exporter.status()
    assert status["state"] == "failing"
    assert "no answer within" in status["last_error"] or "backing off" in status["last_error"]
    assert exporter.health.queue_length > 0
    await exporter.stop()  # restart in the middle of the outage, same database
    exporter = DatadogApiExporter(config(intake, timeout=SHORT), engine, hostname="node-1")
    await exporter.start()
    await feed(OUTAGE / 4, exporter)
    intake.mode = "ok"
    await feed(0.5, exporter)
    await wait_until(lambda: len(durations(intake)) >= len(sent), 20, "every point after the outage")
    await asyncio.sleep(0.3)
    await exporter.stop()
    assert durations(intake) == sent  # exactly once, in order, original timestamps
    assert intake.problems == []
    assert {s for _, s, _ in intake.requests} >= {202, 503}
    assert Outbox(engine).pending_count(SERIES_KIND) == 0
    assert exporter.health.state == "ok"


async def test_points_the_intake_kept_after_the_timeout_are_sent_again_and_kept_once(engine, intake):
    # the intake keeps a request's points but answers after the exporter gave up: the exporter
    # cannot know they were kept, so it must send them again (Datadog keeps the last value
    # sent for a series and second, so the copy changes nothing there)
    intake.hang_seconds = 1.0
    exporter = DatadogApiExporter(config(intake, timeout=SHORT, service_checks=False), engine,
                                  hostname="node-1")
    await exporter.start()
    sent = []
    intake.mode = "late"
    for i in range(3):
        ts = time.time()
        exporter.consume(result(i, ts))
        sent.append((round(ts), float(i)))
        await asyncio.sleep(0.05)
    await wait_until(lambda: intake.unacked, 5, "a request answered after the exporter's timeout")
    intake.mode = "ok"
    await wait_until(lambda: len(durations(intake)) >= len(sent), 10, "the points again")
    await asyncio.sleep(0.3)
    await exporter.stop()
    assert durations(intake) == sent  # what the exporter was told was kept: once, in order
    unheard = [(ts, v) for r in intake.unacked for m, _, ts, v in (intake.points[i] for i in r)
               if m == "mlwarden.check.duration"]
    assert unheard and set(unheard) <= set(sent)
    assert intake.problems == []
    assert Outbox(engine).pending_count(SERIES_KIND) == 0


async def test_series_carry_types_units_tags_and_host(engine, intake):
    exporter = DatadogApiExporter(config(intake), engine, hostname="node-1")
    await exporter.start()
    now = time.time()
    exporter.consume(result(7, now, Status.CRITICAL))
    total = Sample("mlwarden.agent.cpu.time", 10.0, make_tags({"check": "agent"}), now,
                   Kind.MONOTONIC_COUNT)
    exporter.consume(CheckResult("agent", "agent", Status.OK, samples=[total], started=now))
    exporter.consume(CheckResult("agent", "agent", Status.OK, started=now + 1,
                                 samples=[Sample(total.metric, 12.5, total.tags, now + 1, total.kind)]))
    await wait_until(lambda: len(intake.points) >= 3 and len(intake.checks) >= 3, 5, "points")
    await exporter.stop()
    series = [s for p in intake.series_payloads for s in p["series"]]
    by_name = {s["metric"]: s for s in series}
    assert by_name["mlwarden.check.duration"]["type"] == 3  # gauge
    assert by_name["mlwarden.check.duration"]["unit"] == "second"
    assert by_name["mlwarden.check.runs"]["type"] == 1  # count, not a gauge
    # a monotonic total becomes the delta since the previous total (the first only seeds)
    cpu = [s for s in series if s["metric"] == "mlwarden.agent.cpu.time"]
    assert [(s["type"], s["points"][0]["value"]) for s in cpu] == [(1, 2.5)]
    assert by_name["mlwarden.check.duration"]["resources"] == [{"name": "node-1", "type": "host"}]
    assert "check:ranker" in by_name["mlwarden.check.duration"]["tags"]
    crit = [c for c in intake.checks if c["check"] == "mlwarden.model_endpoint.status"]
    assert crit[0]["status"] == 2 and crit[0]["message"] == "endpoint down"
    assert "check:ranker" in crit[0]["tags"] and crit[0]["host_name"] == "node-1"
    assert intake.problems == []


async def test_invalid_api_key_is_one_error_and_a_status_not_a_retry_storm(engine, intake, caplog):
    caplog.set_level(logging.ERROR, logger="agent.export.datadog_api")
    exporter = DatadogApiExporter(config(intake, api_key="not-the-right-key-000000000000000",
                                         retry_max=1.0, service_checks=False),
                                  engine, hostname="node-1")
    started = time.monotonic()
    await exporter.start()
    for k in range(30):
        exporter.consume(result(k, time.time()))
        await asyncio.sleep(0.1)
    status = exporter.status()
    await exporter.stop()
    elapsed = time.monotonic() - started
    forbidden = [r for r in intake.requests if r[1] == 403]
    # a storm would send one per flush (every 0.1 s); a rejected key is re-probed at most once
    # per retry_max (1 s), so the bound follows from how long it ran, however fast the machine
    assert 1 <= len(forbidden) <= int(elapsed / 1.0) + 1, (len(forbidden), elapsed, forbidden)
    errors = [r for r in caplog.records if "403" in r.getMessage()]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert "api_key" in errors[0].getMessage() and "not-the-right-key" not in caplog.text
    assert status["state"] == "rejected" and "403" in status["last_error"]
    assert Outbox(engine).pending_count(SERIES_KIND) >= 1  # kept for when the key is fixed


async def test_rate_limit_reset_is_respected(engine, intake):
    intake.mode = "ratelimit"
    intake.ratelimit_reset = 1
    exporter = DatadogApiExporter(config(intake, retry_initial=0.05, service_checks=False),
                                  engine, hostname="node-1")
    await exporter.start()
    exporter.consume(result(1, time.time()))
    await wait_until(lambda: len(intake.requests) >= 1, 5, "a first request")
    await asyncio.sleep(0.5)
    intake.mode = "ok"
    await wait_until(lambda: len(intake.points) >= 2, 5, "delivery after the reset")
    await exporter.stop()
    first_429 = intake.requests[0]
    assert first_429[1] == 429
    assert len([r for r in intake.requests if r[1] == 429]) == 1
    assert intake.requests[1][2] - first_429[2] >= 0.9  # waited for X-RateLimit-Reset


def test_points_older_than_the_intake_accepts_are_dropped_and_counted(engine, intake):
    intake.__enter__  # the server thread is already running via the fixture
    exporter = DatadogApiExporter(config(intake, service_checks=False), engine, hostname="node-1")
    exporter._configure_client()
    now = time.time()
    exporter.consume(result(1, now - 4000))
    exporter.consume(result(2, now - 10))
    exporter.cycle(now, exporter._take())
    assert durations(intake) == [(round(now - 10), 2.0)]
    assert exporter.health.dropped == {"too_old": 2}  # the old duration and runs points
    assert intake.problems == []


def test_queue_is_bounded_and_overflow_is_counted(engine, intake):
    intake.mode = "error"
    exporter = DatadogApiExporter(config(intake, queue_max_items=3, service_checks=False),
                                  engine, hostname="node-1")
    exporter._configure_client()
    now = time.time()
    for k in range(6):
        exporter.consume(result(k, now + k * 0.01))
        exporter.cycle(now + k * 0.01, exporter._take())
    assert Outbox(engine).pending_count(SERIES_KIND) == 3
    assert exporter.health.dropped["queue_full"] == 6  # three batches of two points
    assert Outbox(engine).pending_count(CHECK_KIND) == 0


async def test_store_unavailable_keeps_points_in_memory_and_logs_once(tmp_path, intake, caplog):
    caplog.set_level(logging.ERROR, logger="agent.export.datadog_api")
    eng = make_engine(f"sqlite:///{tmp_path}/no-schema-yet.db")  # no outbox table: writes fail
    exporter = DatadogApiExporter(config(intake, service_checks=False), eng, hostname="node-1")
    await exporter.start()
    sent = []
    for k in range(10):
        ts = time.time()
        exporter.consume(result(k, ts))
        sent.append((round(ts), float(k)))  # the nearest second
        await asyncio.sleep(0.1)
    assert exporter.status()["state"] == "failing"
    assert "outbox" in exporter.status()["last_error"]
    create_schema(eng)  # the store is back
    await wait_until(lambda: len(durations(intake)) == len(sent), 10, "the kept points")
    await exporter.stop()
    eng.dispose()
    assert durations(intake) == sent
    assert len([r for r in caplog.records if "outbox" in r.getMessage()]) == 1


async def test_runs_a_hair_before_the_second_keep_their_own_second(engine, intake):
    # a 1 s check scheduled on the second starts at 684.9996, then 685.9993: truncated, the
    # first would share a second with the run before it and Datadog would keep one point
    exporter = DatadogApiExporter(config(intake, service_checks=False), engine, hostname="node-1")
    await exporter.start()
    base = float(int(time.time()))
    starts = [base - 3.0004, base - 1.9993, base - 1.0, base - 0.0001]
    for i, ts in enumerate(starts):
        exporter.consume(result(i, ts))
    await wait_until(lambda: len(durations(intake)) >= len(starts), 10, "the four points")
    await exporter.stop()
    assert durations(intake) == [(int(base) - 3, 0.0), (int(base) - 2, 1.0),
                                 (int(base) - 1, 2.0), (int(base), 3.0)]
