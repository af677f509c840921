"""Resolution choice and aggregation to a step, against brute force, on both backends."""

from __future__ import annotations

import math
import random
import statistics
from collections import defaultdict

import pytest

from agent.history.config import HistoryConfig, RetentionConfig
from agent.history.query import choose_resolution
from agent.history.store import HistoryStore

from .helpers import NOW, result_of, sample

DAY = 86400.0
RET = RetentionConfig()  # raw 7d, 1m 30d, 1h 400d


@pytest.mark.parametrize(("since_ago", "step", "agg", "expected"), [
    (6 * 3600, None, "avg", "raw"),        # up to a day: raw points
    (2 * DAY, None, "avg", "1m"),          # up to a month: minute means
    (60 * DAY, None, "avg", "1h"),
    (6 * 3600, 15, "avg", "raw"),          # a step finer than a minute needs raw
    (6 * 3600, 90, "avg", "raw"),          # 90 s is not a whole number of minutes
    (6 * 3600, 60, "avg", "1m"),           # the coarsest that divides the step
    (6 * 3600, 300, "avg", "1m"),
    (6 * 3600, 3600, "avg", "1h"),
    (6 * 3600, 7200, "avg", "1h"),
    (6 * 3600, 300, "p95", "raw"),         # percentiles need the samples themselves
    (6 * 3600, 300, "last", "raw"),
    (10 * DAY, 30, "avg", "1m"),           # raw is gone that far back: go coarser
    (10 * DAY, 300, "p95", "1m"),
    (45 * DAY, 60, "avg", "1h"),
    (500 * DAY, 60, "avg", "1h"),          # nothing covers it: the coarsest there is
])
def test_choose_resolution(since_ago, step, agg, expected):
    assert choose_resolution(NOW - since_ago, NOW, step, NOW, RET, agg) == expected


def _brute(points, since, until, step, agg):
    groups = defaultdict(lambda: defaultdict(list))
    for s in points:
        if since <= s.timestamp <= until:
            groups[s.tags][math.floor(s.timestamp / step) * step].append((s.timestamp, s.value))
    fns = {
        "avg": lambda v: statistics.fmean(x for _, x in v),
        "min": lambda v: min(x for _, x in v),
        "max": lambda v: max(x for _, x in v),
        "sum": lambda v: sum(x for _, x in v),
        "count": lambda v: float(len(v)),
        "last": lambda v: max(v)[1],
        "p95": lambda v: statistics.quantiles([x for _, x in v], n=100, method="inclusive")[94]
        if len(v) > 1 else v[0][1],
    }
    return {tags: [(b, pytest.approx(fns[agg](vals), abs=1e-9)) for b, vals in sorted(buckets.items())]
            for tags, buckets in groups.items()}


@pytest.fixture
def store(db_url):
    rng = random.Random(7)
    points = [sample("mlwarden.q", rng.uniform(0, 100), NOW - 4 * 3600 + i * 15 + rng.uniform(0, 14), s=s)
              for i in range(4 * 240) for s in ("a", "b")]
    config = HistoryConfig(batch_interval=0.05, maintenance_interval=3600, rollup_delay=0)
    st = HistoryStore(db_url, config, clock=lambda: NOW)
    st.start_blocking()
    st.consume(result_of(*points))
    assert st.flush(30)
    # fold only up to 90 minutes ago: the newest part of a rollup query comes from raw
    st.run_maintenance(NOW - 5400)
    yield st, points
    st.stop_blocking()


@pytest.mark.parametrize("agg", ["avg", "min", "max", "sum", "count", "last", "p95"])
@pytest.mark.parametrize("step", [300.0, 3600.0])
def test_query_with_a_step_equals_brute_force(store, agg, step):
    st, points = store
    since = NOW - 4 * 3600
    result = st.reader.query("mlwarden.q", since, NOW, step=step, agg=agg)
    expected_res = "raw" if agg in ("p95", "last") else "1h" if step == 3600 else "1m"
    assert result.resolution == expected_res
    assert result.series == _brute(points, since, NOW, step, agg)


def test_read_series_returns_raw_points_in_order(store):
    st, points = store
    got = st.read_series("mlwarden.q", NOW - 3600, NOW, tags={"s": "b"})
    want = sorted((s.timestamp, s.value) for s in points
                  if s.tag("s") == "b" and NOW - 3600 <= s.timestamp <= NOW)
    assert got == {(("s", "b"),): want}


def test_rollup_query_over_a_long_range_reaches_now(db_url):
    # two days of range: 1-minute means, folded part and not-yet-folded part alike
    config = HistoryConfig(batch_interval=0.05, maintenance_interval=3600, rollup_delay=0)
    st = HistoryStore(db_url, config, clock=lambda: NOW)
    st.start_blocking()
    try:
        pts = [sample("mlwarden.q", i % 7, NOW - 2 * DAY + i * 20) for i in range(int(2 * DAY / 20))]
        st.consume(result_of(*pts))
        assert st.flush(30)
        st.run_maintenance(NOW - 3600)
        got = st.read_series("mlwarden.q", NOW - 2 * DAY, NOW)
        want = _brute(pts, NOW - 2 * DAY, NOW, 60, "avg")
        assert got == want
        assert got[()][-1][0] == NOW - 60  # the last minute, from raw samples
    finally:
        st.stop_blocking()


def test_bad_aggregate_and_step_are_refused(store):
    st, _ = store
    with pytest.raises(ValueError, match="unknown aggregate 'median'; use one of avg, min"):
        st.reader.query("mlwarden.q", NOW - 60, agg="median")
    with pytest.raises(ValueError, match="step must be positive"):
        st.reader.query("mlwarden.q", NOW - 60, step=0)


def test_distribution_counts_minute_means_per_value(db_url):
    """One sample a minute for 3 h: the folded part and the raw tail count alike."""
    config = HistoryConfig(batch_interval=0.05, maintenance_interval=3600, rollup_delay=0)
    st = HistoryStore(db_url, config, clock=lambda: NOW)
    st.start_blocking()
    try:
        pts = [sample("mlwarden.d", (0.30, 0.40, 0.4004)[i % 3], NOW - 3 * 3600 + i * 60, s="a")
               for i in range(180)]
        st.consume(result_of(*pts))
        assert st.flush(30)
        st.run_maintenance(NOW - 3600)  # the last hour stays raw
        got = st.reader.distribution("mlwarden.d", NOW - 3 * 3600, NOW, quantum=0.001)
        assert got == {(("s", "a"),): [(pytest.approx(0.3), 60), (pytest.approx(0.4), 120)]}
        # [since, until): the minute at `until` is not counted
        half = st.reader.distribution("mlwarden.d", NOW - 3 * 3600, NOW - 3 * 3600 + 60, quantum=0.001)
        assert half == {(("s", "a"),): [(pytest.approx(0.3), 1)]}
        with pytest.raises(ValueError, match="quantum must be positive"):
            st.reader.distribution("mlwarden.d", NOW - 60, NOW, quantum=0)
    finally:
        st.stop_blocking()
