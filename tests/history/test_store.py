"""The store as the agent uses it: sink, state store, reader, component status."""

from __future__ import annotations

import asyncio
import logging
import math
import time

import pytest
from sqlalchemy import func, select

from agent.catalog import load_catalog
from agent.check import StateStore
from agent.errors import StoreError
from agent.history.config import HistoryConfig
from agent.history.store import HistoryStore
from agent.history.tables import samples, series
from agent.samples import Kind, Sample

from .helpers import NOW, result_of, sample


async def test_round_trip_by_tag_subset(db_url, fast_config):
    store = HistoryStore(db_url, fast_config, clock=lambda: NOW)
    await store.start()
    try:
        for i in range(120):
            t = NOW - 1800 + i * 15
            store.consume(result_of(
                sample("mlwarden.endpoint.latency", i * 0.5, t, model="ranker", phase="total"),
                sample("mlwarden.endpoint.latency", i * 2.0, t, model="scorer", phase="total"),
                sample("mlwarden.endpoint.up", 1, t, model="ranker"),
            ))
        assert store.flush()
        got = store.read_series("mlwarden.endpoint.latency", NOW - 3600, tags={"model": "ranker"})
        assert list(got) == [(("model", "ranker"), ("phase", "total"))]
        points = got[(("model", "ranker"), ("phase", "total"))]
        assert points == [(NOW - 1800 + i * 15, i * 0.5) for i in range(120)]
        # an exact subset match: a tag value that only prefixes another must not match
        assert store.read_series("mlwarden.endpoint.latency", NOW - 3600, tags={"model": "rank"}) == {}
        both = store.read_series("mlwarden.endpoint.latency", NOW - 3600, tags={"phase": "total"})
        assert len(both) == 2
        # a window selects by time, both ends included
        part = store.read_series("mlwarden.endpoint.up", NOW - 1800 + 15, NOW - 1800 + 45)
        assert [t for t, _ in part[(("model", "ranker"),)]] == [NOW - 1785, NOW - 1770, NOW - 1755]
        status = store.status()
        assert status["written"] == 360 and status["dropped"] == 0 and status["errors"] == 0
        assert status["series_cached"] == 3 and status["last_flush"] is not None
    finally:
        await store.stop()


async def test_a_repeated_sample_keeps_one_row(db_url, fast_config):
    store = HistoryStore(db_url, fast_config)
    await store.start()
    try:
        s = sample("mlwarden.x", 1.0, NOW, a="1")
        store.consume(result_of(s))
        assert store.flush()
        store.consume(result_of(s, sample("mlwarden.x", 2.0, NOW + 1, a="1")))
        assert store.flush()
        with store.engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(samples)).scalar_one() == 2
            assert conn.execute(select(func.count()).select_from(series)).scalar_one() == 1
        assert store.status()["errors"] == 0
    finally:
        await store.stop()


async def test_a_batch_mixing_known_and_new_series_lands_on_the_right_rows(db_url, fast_config):
    # the writer's fast path reads cached ids; a batch with a new series takes the slow one
    store = HistoryStore(db_url, fast_config)
    await store.start()
    try:
        store.consume(result_of(sample("mlwarden.x", 1.0, NOW, a="1")))
        assert store.flush()
        store.consume(result_of(sample("mlwarden.x", 2.0, NOW + 1, a="1"),
                                sample("mlwarden.x", 3.0, NOW + 1, a="2"),
                                sample("mlwarden.y", 4.0, NOW + 1, a="1")))
        assert store.flush()
        store.consume(result_of(sample("mlwarden.x", 5.0, NOW + 2, a="2")))
        assert store.flush()
        got = store.read_series("mlwarden.x", NOW - 10, NOW + 10)
        assert got == {(("a", "1"),): [(NOW, 1.0), (NOW + 1, 2.0)],
                       (("a", "2"),): [(NOW + 1, 3.0), (NOW + 2, 5.0)]}
        assert store.read_series("mlwarden.y", NOW - 10, NOW + 10) == {(("a", "1"),): [(NOW + 1, 4.0)]}
        assert store.status()["series_cached"] == 3
    finally:
        await store.stop()


async def test_state_is_durable_across_restarts(db_url, fast_config):
    store = HistoryStore(db_url, fast_config)
    state: StateStore = store  # what CheckContext.state holds
    await store.start()
    assert await state.get_state("prod-airflow", "last_run") is None
    await state.set_state("prod-airflow", "last_run", {"dag": "train", "run_id": "r1", "n": 3})
    await state.set_state("prod-airflow", "last_run", {"dag": "train", "run_id": "r2", "n": 4})
    await state.set_state("other", "last_run", [1, 2])
    await store.stop()
    again = HistoryStore(db_url, fast_config)
    await again.start()
    try:
        assert await again.get_state("prod-airflow", "last_run") == {"dag": "train", "run_id": "r2", "n": 4}
        assert await again.get_state("other", "last_run") == [1, 2]
        with pytest.raises(StoreError, match="prod-airflow/bad is not JSON-serialisable"):
            await again.set_state("prod-airflow", "bad", object())
    finally:
        await again.stop()


async def test_samples_survive_a_clean_restart(db_url, fast_config):
    store = HistoryStore(db_url, fast_config.model_copy(update={"batch_interval": 30.0}))
    await store.start()
    store.consume(result_of(*[sample("mlwarden.x", i, NOW + i) for i in range(10)]))
    await store.stop()  # flushes what waited for the batch interval
    again = HistoryStore(db_url, fast_config)
    await again.start()
    try:
        assert len(again.read_series("mlwarden.x", NOW - 1, NOW + 100)[()]) == 10
    finally:
        await again.stop()


async def test_full_queue_sheds_counts_and_says_so(sqlite_url, caplog):
    config = HistoryConfig(queue_size=100, batch_size=50, batch_interval=60)
    store = HistoryStore(sqlite_url, config)
    store.emit = lambda result: None
    await store.start()
    try:
        # one result larger than the queue: what fits is taken, the rest shed at once
        with caplog.at_level(logging.WARNING, logger="agent.history.writer"):
            accepted = store.writer.offer([sample("mlwarden.x", i, NOW + i) for i in range(250)])
        assert accepted == 100
        assert store.status()["dropped"] == 150
        assert "queue full at 100 samples, shed 150" in caplog.text
        metrics = {s.metric: s for s in store.self_samples(NOW)}
        assert metrics["mlwarden.history.samples_shed"].value == 150
        assert metrics["mlwarden.history.samples_shed"].kind is Kind.COUNT
        assert store.flush(15)
        assert store.status()["written"] == 100
        # counts are deltas since the previous report
        assert {s.metric: s.value for s in store.self_samples(NOW)}["mlwarden.history.samples_shed"] == 0
    finally:
        await store.stop()


async def test_own_metrics_are_declared_and_reach_the_pipeline(sqlite_url, catalog_check):
    emitted = []
    store = HistoryStore(sqlite_url, HistoryConfig(batch_interval=0.05, metrics_interval=0.1))
    store.emit = emitted.append
    await store.start()
    try:
        store.consume(result_of(sample("mlwarden.x", 1, NOW)))
        assert store.flush(15)
        for _ in range(300):
            if emitted and any(s.metric == "mlwarden.history.samples_written" and s.value
                               for r in emitted for s in r.samples):
                break
            await asyncio.sleep(0.05)
        assert emitted, "the store never reported its metrics"
        for result in emitted:
            catalog_check(result)
        names = {s.metric for r in emitted for s in r.samples}
        assert {"mlwarden.history.queue_depth", "mlwarden.history.samples_written",
                "mlwarden.history.samples_shed", "mlwarden.history.flush_duration",
                "mlwarden.history.db_size"} <= names
        declared = {s.name for s in load_catalog() if s.name.startswith("mlwarden.history.")}
        assert names <= declared
    finally:
        await store.stop()


async def test_status_never_shows_the_password(pg_url, fast_config):
    url = pg_url.replace("postgres@", "postgres:s3cret-pw@")  # trust auth ignores it
    store = HistoryStore(url, fast_config)
    await store.start()
    try:
        status = store.status()
        assert "s3cret-pw" not in repr(status)
        assert status["url"].startswith("postgresql+psycopg://postgres:***@127.0.0.1")
    finally:
        await store.stop()


async def test_unreachable_database_is_a_clear_error():
    store = HistoryStore("postgresql+psycopg://postgres:pw-x1@127.0.0.1:1/test?connect_timeout=2")
    with pytest.raises(StoreError) as err:
        await store.start()
    assert "cannot open or migrate postgresql+psycopg://postgres:***@127.0.0.1:1/test" in str(err.value)
    assert "pw-x1" not in str(err.value)


async def test_writes_retry_after_a_failure_and_nothing_is_lost(db_url, fast_config, caplog):
    store = HistoryStore(db_url, fast_config)
    await store.start()
    try:
        store.consume(result_of(sample("mlwarden.x", 0, NOW - 1)))
        assert store.flush()
        with store.engine.begin() as conn:  # the table disappears under the writer...
            conn.exec_driver_sql("ALTER TABLE samples RENAME TO samples_away")
        with caplog.at_level(logging.ERROR, logger="agent.history.writer"):
            store.consume(result_of(sample("mlwarden.x", 1, NOW)))
            deadline = time.monotonic() + 10
            while "history write of 1" not in caplog.text and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
        with store.engine.begin() as conn:  # ...and comes back
            conn.exec_driver_sql("ALTER TABLE samples_away RENAME TO samples")
        assert store.status()["errors"] >= 1
        assert "history write of 1 samples failed (will retry)" in caplog.text
        assert "samples" in store.status()["last_error"]
        assert store.flush(15)
        assert store.read_series("mlwarden.x", NOW - 1, NOW + 1) == {(): [(NOW - 1, 0.0), (NOW, 1.0)]}
    finally:
        await store.stop()


def test_nan_sample_is_written_as_given(sqlite_url, fast_config):
    # checks drop non-finite values before the pipeline; the store does not re-check
    store = HistoryStore(sqlite_url, fast_config)
    store.start_blocking()
    try:
        store.consume(result_of(Sample("mlwarden.x", 2.5, (), NOW)))
        assert store.flush()
        assert not math.isnan(store.read_series("mlwarden.x", NOW - 1, NOW + 1)[()][0][1])
    finally:
        store.stop_blocking()
