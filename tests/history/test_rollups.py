"""Rollups and retention against brute force on random data, on both backends."""

from __future__ import annotations

import math
import random
from collections import defaultdict

import pytest
from sqlalchemy import func, select

from agent.history.config import HistoryConfig, RetentionConfig
from agent.history.rollups import fold
from agent.history.store import HistoryStore
from agent.history.tables import rollup_1h, rollup_1m, rollup_progress, samples, series

from .helpers import NOW, result_of, sample

START = NOW - 3 * 3600  # three whole hours of data before NOW


def _random_samples(rng: random.Random, n_series: int = 4, n: int = 600):
    out = []
    for s in range(n_series):
        times = sorted({round(START + rng.uniform(0, 3 * 3600), 3) for _ in range(n)})
        out += [sample("mlwarden.r", rng.uniform(-50, 50), t, s=str(s)) for t in times]
    return out


def _brute(points, size):
    """(series tags, bucket) -> (min, max, sum, count) computed the obvious way."""
    acc = defaultdict(list)
    for s in points:
        acc[(s.tags, math.floor(s.timestamp / size) * size)].append(s.value)
    return {k: (min(v), max(v), sum(v), len(v)) for k, v in acc.items()}


def _table(store, table):
    with store.engine.connect() as conn:
        tags = {sid: t for sid, t in conn.execute(select(series.c.id, series.c.tags))}
        rows = conn.execute(select(table)).all()
    import json

    from agent.samples import make_tags

    return {(make_tags(json.loads(tags[r.series_id])), r.bucket): (r.min, r.max, r.sum, r.count)
            for r in rows}


def _assert_same(got, want):
    assert set(got) == set(want)
    for key, (lo, hi, total, n) in want.items():
        g = got[key]
        assert (g[0], g[1], g[3]) == (pytest.approx(lo), pytest.approx(hi), n), key
        assert g[2] == pytest.approx(total, abs=1e-6), key


@pytest.fixture
def store_with_random(db_url):
    rng = random.Random(20261128)
    points = _random_samples(rng)
    config = HistoryConfig(batch_interval=0.05, maintenance_interval=3600, rollup_delay=0,
                           maintenance_chunk=1)
    store = HistoryStore(db_url, config, clock=lambda: NOW)
    store.start_blocking()
    store.consume(result_of(*points))
    assert store.flush(30)
    yield store, points
    store.stop_blocking()


def test_rollups_match_brute_force(store_with_random):
    store, points = store_with_random
    store.run_maintenance(NOW)
    _assert_same(_table(store, rollup_1m), _brute(points, 60))
    _assert_same(_table(store, rollup_1h), _brute(points, 3600))
    with store.engine.connect() as conn:
        done = dict(conn.execute(select(rollup_progress.c.resolution, rollup_progress.c.done_until)).all())
    assert done == {"1m": NOW, "1h": NOW}


def test_a_fold_interrupted_midway_and_repeated_counts_once(store_with_random):
    store, points = store_with_random
    steps = fold(store.engine, "1m", NOW, chunk=1)
    for _ in range(6):  # some series of some windows done, the watermark not yet moved
        next(steps)
    steps.close()  # the "crash"
    for _ in fold(store.engine, "1m", NOW, chunk=1):
        pass
    _assert_same(_table(store, rollup_1m), _brute(points, 60))


def test_only_complete_buckets_before_the_delay_are_folded(db_url):
    config = HistoryConfig(batch_interval=0.05, maintenance_interval=3600, rollup_delay=120)
    store = HistoryStore(db_url, config)
    store.start_blocking()
    try:
        store.consume(result_of(*[sample("mlwarden.r", i, NOW - 600 + i * 10) for i in range(60)]))
        assert store.flush()
        store.run_maintenance(NOW + 5)
        with store.engine.connect() as conn:
            buckets = conn.execute(select(rollup_1m.c.bucket).order_by(rollup_1m.c.bucket)).scalars().all()
            hours = conn.execute(select(func.count()).select_from(rollup_1h)).scalar_one()
        # (NOW + 5 - 120) floors to NOW - 120: the minutes from NOW-600 to NOW-180 are folded
        assert buckets == [NOW - 600 + 60 * i for i in range(8)]
        assert hours == 0  # the hour NOW-3600..NOW is not complete yet
    finally:
        store.stop_blocking()


def test_retention_deletes_exactly_what_is_older_than_the_boundary(db_url):
    retention = RetentionConfig(raw=3600, minute=2 * 3600, hour=30 * 86400)
    config = HistoryConfig(batch_interval=0.05, maintenance_interval=3600, rollup_delay=0,
                           retention=retention)
    store = HistoryStore(db_url, config)
    store.start_blocking()
    try:
        # one sample every 30 s over the last 3 hours, two series
        points = [sample("mlwarden.r", i, NOW - 3 * 3600 + i * 30, s=s)
                  for i in range(360) for s in ("a", "b")]
        store.consume(result_of(*points))
        assert store.flush()
        store.run_maintenance(NOW)
        with store.engine.connect() as conn:
            raw = conn.execute(select(func.min(samples.c.ts), func.count()).select_from(samples)).one()
            m1 = conn.execute(select(func.min(rollup_1m.c.bucket), func.count()).select_from(rollup_1m)).one()
            h1 = conn.execute(select(func.count()).select_from(rollup_1h)).scalar_one()
        assert raw == (NOW - 3600, 2 * 120)  # ts == boundary is kept, every older one is gone
        assert m1 == (NOW - 7200, 2 * 120)
        assert h1 == 2 * 3
        assert store.retention_report.deleted == {"raw": 2 * 240, "1m": 2 * 60}
    finally:
        store.stop_blocking()


def test_unfolded_samples_outlive_their_retention(sqlite_url):
    # a rollup that has not caught up must not lose the raw data it still needs
    retention = RetentionConfig(raw=600, minute=3600, hour=86400)
    config = HistoryConfig(batch_interval=0.05, rollup_delay=60, retention=retention)
    store = HistoryStore(sqlite_url, config)
    store.start_blocking()
    try:
        store.consume(result_of(*[sample("mlwarden.r", i, NOW - 1200 + i * 60) for i in range(20)]))
        assert store.flush()
        from agent.history.retention import apply_retention

        for _ in apply_retention(store.engine, retention, NOW, chunk=10):
            pass  # no rollup ran: nothing may go
        with store.engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(samples)).scalar_one() == 20
    finally:
        store.stop_blocking()


@pytest.mark.slow
def test_sqlite_file_stops_growing_under_steady_load(tmp_path):
    retention = RetentionConfig(raw=600, minute=1200, hour=86400)
    config = HistoryConfig(batch_interval=0.05, rollup_delay=0, retention=retention)
    store = HistoryStore(f"sqlite:///{tmp_path / 'steady.db'}", config)
    store.start_blocking()
    pages = []
    try:
        t0 = NOW - 86400
        for minute in range(150):  # 100 series every 15 s, maintenance each simulated minute
            base = t0 + minute * 60
            store.consume(result_of(*[sample("mlwarden.r", minute + j, base + j * 15, s=str(s))
                                      for s in range(100) for j in range(4)]))
            assert store.flush()
            store.run_maintenance(base + 60)
            with store.engine.connect() as conn:
                pages.append(conn.exec_driver_sql("PRAGMA page_count").scalar_one())
    finally:
        store.stop_blocking()
    # once raw (10 min) and 1m (20 min + the hour not yet folded) retention apply, freed
    # pages are reused; what still grows is the 1h rollup (100 rows an hour, kept a day)
    assert pages[-1] <= pages[89] * 1.1, " ".join(map(str, pages))
    assert pages[89] > pages[5] * 1.3  # it did grow before retention applied
