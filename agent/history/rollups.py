"""Folding finer data into the 1-minute and 1-hour rollups, in small steps.

Each resolution keeps a ``done_until`` watermark in ``rollup_progress``: everything of its
source older than the watermark is folded. Work advances one time window at a time, and
within a window one chunk of series per transaction, so the caller (the writer thread)
can flush samples between steps and writes never wait long. Windows are aligned to whole
buckets and a bucket is written with replace-on-conflict, so a step repeated after a crash
produces the same rows instead of counting twice.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from sqlalchemy import Connection, Engine, Table, and_, func, select

from agent.history.maintenance import Floors, in_range, series_ranges
from agent.history.sql import bucket_floor, upsert
from agent.history.tables import ROLLUPS, rollup_1m, rollup_progress, samples

__all__ = ["fold", "fold_all", "progress", "WINDOW_BUCKETS"]

# buckets per window: 1m folds an hour of raw per step, 1h six hours of 1m rollups
WINDOW_BUCKETS = {"1m": 60, "1h": 6}
SOURCE = {"1m": "raw", "1h": "1m"}
_COLUMNS = ["series_id", "bucket", "min", "max", "sum", "count"]


def progress(conn: Connection, resolution: str) -> float | None:
    return conn.execute(select(rollup_progress.c.done_until).where(
        rollup_progress.c.resolution == resolution)).scalar_one_or_none()


def _set_progress(engine: Engine, conn: Connection, resolution: str, done_until: float) -> None:
    conn.execute(upsert(engine, rollup_progress, ["resolution"], ["done_until"]),
                 {"resolution": resolution, "done_until": done_until})


def _source_select(resolution: str, lo: int, hi: int, start: float, end: float):  # type: ignore[no-untyped-def]
    size, _ = ROLLUPS[resolution]
    if SOURCE[resolution] == "raw":
        src: Table = samples
        bucket = bucket_floor(src.c.ts, size)
        cols = [func.min(src.c.value), func.max(src.c.value), func.sum(src.c.value), func.count()]
        time_col = src.c.ts
    else:
        src = rollup_1m
        bucket = bucket_floor(src.c.bucket, size)
        cols = [func.min(src.c.min), func.max(src.c.max), func.sum(src.c.sum), func.sum(src.c.count)]
        time_col = src.c.bucket
    bucket = bucket.label("bucket")
    return (select(src.c.series_id, bucket, *cols)
            .where(and_(in_range(src, lo, hi), time_col >= start, time_col < end))
            .group_by(src.c.series_id, bucket))


def fold(engine: Engine, resolution: str, until: float, *, chunk: int,
         floors: Floors | None = None) -> Iterator[str]:
    """Fold complete buckets older than ``until``; yields after every transaction.

    A pass with nothing complete to fold costs two primary-key reads; the first fold of a
    new database starts at the source's floor (see :mod:`agent.history.maintenance`).
    """
    floors = floors if floors is not None else Floors()
    size, table = ROLLUPS[resolution]
    window = size * WINDOW_BUCKETS[resolution]
    target = upsert(engine, table, ["series_id", "bucket"], ["min", "max", "sum", "count"])
    source = samples if SOURCE[resolution] == "raw" else rollup_1m
    with engine.connect() as conn:
        done = progress(conn, resolution)
        end = (until // size) * size
        if SOURCE[resolution] != "raw":
            source_done = progress(conn, SOURCE[resolution])
            end = min(end, ((source_done or 0.0) // size) * size)
    if done is None:  # the first fold starts at the oldest source row
        oldest = floors.get(engine, source)
        done = ((oldest if oldest != math.inf else end) // size) * size
    if done >= end:
        return
    ranges = list(series_ranges(engine, chunk))
    if not ranges:
        with engine.begin() as conn:
            _set_progress(engine, conn, resolution, end)
        return
    while done < end:
        w_end = min(done + window, end)
        for i, (lo, hi) in enumerate(ranges):
            last = i == len(ranges) - 1
            with engine.begin() as conn:
                sel = _source_select(resolution, lo, hi, done, w_end)
                conn.execute(target.from_select(_COLUMNS, sel))
                if last:
                    _set_progress(engine, conn, resolution, w_end)
            yield f"{resolution} {done:.0f}..{w_end:.0f} series {lo}..{hi - 1}"
        floors.lower(table, done)
        done = w_end


def fold_all(engine: Engine, until: float, *, chunk: int, floors: Floors | None = None) -> Iterator[str]:
    """1m from raw, then 1h from 1m."""
    floors = floors if floors is not None else Floors()
    yield from fold(engine, "1m", until, chunk=chunk, floors=floors)
    yield from fold(engine, "1h", until, chunk=chunk, floors=floors)
