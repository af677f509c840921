"""Reading history back: series lookup, resolution choice and aggregation to a step.

Three resolutions exist: raw samples, 1-minute and 1-hour rollups (min/max/sum/count).
A query picks the coarsest resolution whose bucket divides its step (reading 24 h of
1-minute rollups is 4x less than raw at 15 s, an hour rollup 240x), and goes coarser still
when the range reaches past a resolution's retention. Rollups lag the present by the
rollup delay; the part after a rollup's watermark is folded from the finer data on the
fly, so a rollup query still reaches "now".

All functions are blocking (they hit the database): call them off the event loop.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, and_, func, select

from agent.history.config import RetentionConfig
from agent.history.rollups import progress
from agent.history.series import tags_from_json
from agent.history.tables import ROLLUPS, samples, series
from agent.samples import Tags

__all__ = [
    "AGGREGATES", "HistoryReader", "QueryResult", "SeriesInfo", "RESOLUTIONS", "choose_resolution",
    "Distribution",
]

# name -> bucket seconds (raw: 0, any step)
RESOLUTIONS: dict[str, int] = {"raw": 0, "1m": 60, "1h": 3600}
# with no step, ranges up to this long are answered from raw samples, then from 1m rollups
NATIVE_RAW_MAX = 86400.0
NATIVE_1M_MAX = 31 * 86400.0
EXACT_ONLY_RAW = ("p95", "last")

Points = list[tuple[float, float]]
Distribution = list[tuple[float, int]]  # (value, how many buckets had it), by value


@dataclass(frozen=True)
class SeriesInfo:
    id: int
    metric: str
    tags: Tags
    created_at: float


@dataclass
class QueryResult:
    """Points per series (keyed by tags), and how they were computed."""

    metric: str
    resolution: str
    step: float | None
    agg: str
    series: dict[Tags, Points]


class _Acc:
    """One bucket being aggregated: enough for every aggregate the CLI offers."""

    __slots__ = ("min", "max", "sum", "count", "last", "last_t", "values")

    def __init__(self) -> None:
        self.min = math.inf
        self.max = -math.inf
        self.sum = 0.0
        self.count = 0
        self.last = math.nan
        self.last_t = -math.inf
        self.values: list[float] = []

    def add(self, t: float, lo: float, hi: float, total: float, n: int) -> None:
        self.min = min(self.min, lo)
        self.max = max(self.max, hi)
        self.sum += total
        self.count += n
        mean = total / n if n else math.nan
        if t >= self.last_t:
            self.last, self.last_t = mean, t
        self.values.append(mean)


def _p95(acc: _Acc) -> float:
    values = sorted(acc.values)
    if not values:
        return math.nan
    pos = 0.95 * (len(values) - 1)  # linear interpolation, as numpy.percentile's default
    lo = math.floor(pos)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (pos - lo)


AGGREGATES: dict[str, Callable[[_Acc], float]] = {
    "avg": lambda a: a.sum / a.count if a.count else math.nan,
    "min": lambda a: a.min,
    "max": lambda a: a.max,
    "sum": lambda a: a.sum,
    "count": lambda a: float(a.count),
    "last": lambda a: a.last,
    "p95": _p95,
}


def choose_resolution(since: float, until: float, step: float | None, now: float,
                      retention: RetentionConfig, agg: str = "avg") -> str:
    """The coarsest resolution that answers ``step`` and still holds data at ``since``.

    ``p95`` and ``last`` need the samples themselves, so they read raw data while it is
    kept; past raw retention they fall back to rollup means (an approximation).
    """
    if agg in EXACT_ONLY_RAW:
        pick = "raw"
    elif step is None:
        span = until - since
        pick = "raw" if span <= NATIVE_RAW_MAX else "1m" if span <= NATIVE_1M_MAX else "1h"
    else:
        pick = "raw"
        for name in ("1h", "1m"):
            size = RESOLUTIONS[name]
            if step >= size and abs(step / size - round(step / size)) < 1e-9:
                pick = name
                break
    order = ["raw", "1m", "1h"]
    for name in order[order.index(pick):]:
        if since >= now - retention.for_resolution(name):
            return name
    return "1h"


def _matches(tags: Tags, wanted: Mapping[str, str]) -> bool:
    have = dict(tags)
    return all(have.get(k) == str(v) for k, v in wanted.items())


class HistoryReader:
    """Queries over the store's tables (any engine, any process: the CLI uses it directly)."""

    def __init__(self, engine: Engine, retention: RetentionConfig | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.retention = retention or RetentionConfig()
        self.clock = clock

    # -- series ------------------------------------------------------------------------
    def list_series(self, metric: str | None = None, tags: Mapping[str, str] | None = None,
                    prefix: bool = False) -> list[SeriesInfo]:
        """Series whose metric equals ``metric`` (or starts with it) and whose tags include ``tags``."""
        query = select(series.c.id, series.c.metric, series.c.tags, series.c.created_at)
        if metric:
            query = query.where(series.c.metric.startswith(metric, autoescape=True) if prefix
                                else series.c.metric == metric)
        for key, value in (tags or {}).items():  # narrows in SQL; _matches decides exactly
            pair = json.dumps({str(key): str(value)}, separators=(",", ":"), ensure_ascii=False)[1:-1]
            query = query.where(series.c.tags.contains(pair, autoescape=True))
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(series.c.metric, series.c.id)).all()
        out = [SeriesInfo(r[0], r[1], tags_from_json(r[2]), r[3]) for r in rows]
        return [s for s in out if _matches(s.tags, tags or {})]

    # -- points ------------------------------------------------------------------------
    def read_series(self, metric: str, since: float, until: float | None = None,
                    tags: Mapping[str, str] | None = None) -> dict[Tags, Points]:
        """Points of every matching series at the native resolution the range calls for.

        Up to a day of range: raw samples; up to a month: 1-minute means; beyond: hourly
        means (each coarser when the range reaches past a resolution's retention).
        """
        return self.query(metric, since, until, tags=tags).series

    def query(self, metric: str, since: float, until: float | None = None, *,
              tags: Mapping[str, str] | None = None, step: float | None = None,
              agg: str = "avg") -> QueryResult:
        if agg not in AGGREGATES:
            raise ValueError(f"unknown aggregate {agg!r}; use one of {', '.join(AGGREGATES)}")
        if step is not None and step <= 0:
            raise ValueError(f"step must be positive, got {step!r}")
        now = self.clock()
        until = now if until is None else until
        resolution = choose_resolution(since, until, step, now, self.retention, agg)
        found = self.list_series(metric, tags)
        out: dict[Tags, Points] = {}
        if not found:
            return QueryResult(metric, resolution, step, agg, out)
        with self.engine.connect() as conn:
            if resolution == "raw" and step is None:  # the hot path of rules and charts
                for info in found:
                    points = self._points(conn, info.id, since, until)
                    if points:
                        out[info.tags] = points
                return QueryResult(metric, resolution, step, agg, out)
            if resolution == "raw":
                rows = self._raw(conn, [s.id for s in found], since, until)
            else:
                rows = self._rollup(conn, resolution, [s.id for s in found], since, until)
        by_id = {s.id: s.tags for s in found}
        fn = AGGREGATES[agg]
        for sid, buckets in rows.items():
            if not buckets:
                continue
            size = step if step is not None else RESOLUTIONS[resolution]
            accs: dict[float, _Acc] = {}
            for t, lo, hi, total, n in buckets:
                key = float(math.floor(t / size) * size)
                acc = accs.get(key)
                if acc is None:
                    acc = accs[key] = _Acc()
                acc.add(t, lo, hi, total, n)
            out[by_id[sid]] = [(t, fn(accs[t])) for t in sorted(accs)]
        return QueryResult(metric, resolution, step, agg, out)

    def distribution(self, metric: str, since: float, until: float, *, quantum: float,
                     tags: Mapping[str, str] | None = None) -> dict[Tags, Distribution]:
        """How often each value occurred, per series, in ``[since, until)``: one-minute means
        rounded to ``quantum``, counted in the database (a week of a series is a few hundred
        rows, not ten thousand). Percentiles over them are exact up to ``quantum``.

        Minutes past the 1m rollup's watermark count their raw samples; a range older than
        the 1m retention counts hourly means instead.
        """
        if quantum <= 0:
            raise ValueError(f"quantum must be positive, got {quantum!r}")
        found = self.list_series(metric, tags)
        if not found:
            return {}
        now = self.clock()
        coarse = since < now - self.retention.for_resolution("1m")
        size, table = ROLLUPS["1h" if coarse else "1m"]
        ids = [s.id for s in found]
        counts: dict[int, dict[float, int]] = {}
        with self.engine.connect() as conn:
            done = progress(conn, "1h" if coarse else "1m") or 0.0
            value = func.round(table.c.sum / table.c.count / quantum)
            folded = (select(table.c.series_id, value, func.count())
                      .where(and_(table.c.series_id.in_(ids),
                                  table.c.bucket >= math.floor(since / size) * size,
                                  table.c.bucket < min(until, done), table.c.count > 0))
                      .group_by(table.c.series_id, value))
            queries = [folded]
            if done < until:
                raw = func.round(samples.c.value / quantum)
                queries.append(select(samples.c.series_id, raw, func.count())
                               .where(and_(samples.c.series_id.in_(ids), samples.c.ts >= max(since, done),
                                           samples.c.ts < until))
                               .group_by(samples.c.series_id, raw))
            for query in queries:
                for sid, bucket, n in conn.execute(query):
                    acc = counts.setdefault(sid, {})
                    acc[float(bucket)] = acc.get(float(bucket), 0) + int(n)
        by_id = {s.id: s.tags for s in found}
        return {by_id[sid]: [(b * quantum, n) for b, n in sorted(acc.items())] for sid, acc in counts.items()}

    # -- per resolution ------------------------------------------------------------------
    Bucket = tuple[float, float, float, float, int]  # t, min, max, sum, count

    def _points(self, conn: Connection, sid: int, since: float, until: float) -> Points:
        query = (select(samples.c.ts, samples.c.value)
                 .where(and_(samples.c.series_id == sid, samples.c.ts >= since, samples.c.ts <= until))
                 .order_by(samples.c.ts))
        result = conn.execute(query)
        try:  # plain DBAPI tuples: Row objects would cost as much again on this hot read
            return result.cursor.fetchall()  # type: ignore[union-attr]
        finally:
            result.close()

    def _raw(self, conn: Connection, ids: list[int], since: float, until: float
             ) -> dict[int, list[Bucket]]:
        out: dict[int, list[HistoryReader.Bucket]] = {i: [] for i in ids}
        query = (select(samples.c.series_id, samples.c.ts, samples.c.value)
                 .where(and_(samples.c.series_id.in_(ids), samples.c.ts >= since, samples.c.ts <= until))
                 .order_by(samples.c.series_id, samples.c.ts))
        for sid, t, v in conn.execute(query).all():
            out[sid].append((t, v, v, v, 1))
        return out

    def _rollup(self, conn: Connection, resolution: str, ids: list[int], since: float,
                until: float) -> dict[int, list[Bucket]]:
        size, table = ROLLUPS[resolution]
        done = progress(conn, resolution) or 0.0
        start = math.floor(since / size) * size
        out: dict[int, list[HistoryReader.Bucket]] = {i: [] for i in ids}
        query = (select(table.c.series_id, table.c.bucket, table.c.min, table.c.max,
                        table.c.sum, table.c.count)
                 .where(and_(table.c.series_id.in_(ids), table.c.bucket >= start,
                             table.c.bucket <= until, table.c.bucket < done))
                 .order_by(table.c.series_id, table.c.bucket))
        for sid, t, lo, hi, total, n in conn.execute(query):
            out[sid].append((t, lo, hi, total, n))
        tail_from = max(start, done)
        if tail_from <= until:  # not folded yet: fold the finer data here
            finer = "raw" if resolution == "1m" else "1m"
            tail = (self._raw(conn, ids, tail_from, until) if finer == "raw"
                    else self._rollup(conn, finer, ids, tail_from, until))
            for sid, buckets in tail.items():
                out[sid].extend(_fold(buckets, size))
        return out


def _fold(buckets: Iterable[HistoryReader.Bucket], size: int) -> list[HistoryReader.Bucket]:
    accs: dict[float, list[float]] = {}
    for t, lo, hi, total, n in buckets:
        key = float(math.floor(t / size) * size)
        a = accs.get(key)
        if a is None:
            accs[key] = [lo, hi, total, n]
        else:
            a[0] = min(a[0], lo)
            a[1] = max(a[1], hi)
            a[2] += total
            a[3] += n
    return [(t, a[0], a[1], a[2], int(a[3])) for t, a in sorted(accs.items())]
