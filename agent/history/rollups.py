"""Folding finer data into the 1-minute and 1-hour rollups, in small steps.

Each resolution keeps a ``done_until`` watermark in ``rollup_progress``: everything of its
source older than the watermark is folded. Work advances one time window at a time, and
within a window one chunk of series per transaction, so the caller (the writer thread)
can flush samples between steps and writes never wait long. Windows are aligned to whole
buckets and a bucket is written with replace-on-conflict, so a step repeated after a crash
produces the same rows instead of counting twice.
"""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import Connection, Engine, Table, and_, bindparam, func, select

from agent.history.sql import bucket_floor, upsert
from agent.history.tables import ROLLUPS, rollup_1m, rollup_progress, samples, series

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


def _source_select(resolution: str, ids: list[int], start: float, end: float):  # type: ignore[no-untyped-def]
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
            .where(and_(src.c.series_id.in_(ids), time_col >= start, time_col < end))
            .group_by(src.c.series_id, bucket))


def _oldest(engine: Engine, source: str, ids: list[int]) -> float | None:
    """The oldest time in ``source``: one primary-key probe per series, never a scan."""
    table = samples if source == "raw" else rollup_1m
    col = table.c.ts if source == "raw" else table.c.bucket
    query = select(func.min(col)).where(table.c.series_id == bindparam("sid"))
    found = []
    with engine.connect() as conn:
        for sid in ids:
            value = conn.execute(query, {"sid": sid}).scalar_one()
            if value is not None:
                found.append(value)
    return min(found) if found else None


def fold(engine: Engine, resolution: str, until: float, *, chunk: int) -> Iterator[str]:
    """Fold complete buckets older than ``until``; yields after every transaction."""
    size, table = ROLLUPS[resolution]
    window = size * WINDOW_BUCKETS[resolution]
    target = upsert(engine, table, ["series_id", "bucket"], ["min", "max", "sum", "count"])
    with engine.connect() as conn:
        done = progress(conn, resolution)
        end = (until // size) * size
        source = SOURCE[resolution]
        if source != "raw":
            source_done = progress(conn, source)
            end = min(end, ((source_done or 0.0) // size) * size)
        ids = [row[0] for row in conn.execute(select(series.c.id).order_by(series.c.id))]
    if done is None:  # the first fold starts at the oldest source row
        oldest = _oldest(engine, SOURCE[resolution], ids)
        done = ((oldest if oldest is not None else end) // size) * size
    if not ids:
        if end > done:
            with engine.begin() as conn:
                _set_progress(engine, conn, resolution, end)
        return
    while done < end:
        w_end = min(done + window, end)
        for i in range(0, len(ids), chunk):
            part = ids[i:i + chunk]
            last = i + chunk >= len(ids)
            with engine.begin() as conn:
                sel = _source_select(resolution, part, done, w_end)
                conn.execute(target.from_select(_COLUMNS, sel))
                if last:
                    _set_progress(engine, conn, resolution, w_end)
            yield f"{resolution} {done:.0f}..{w_end:.0f} series {part[0]}..{part[-1]}"
        done = w_end


def fold_all(engine: Engine, until: float, *, chunk: int) -> Iterator[str]:
    """1m from raw, then 1h from 1m."""
    yield from fold(engine, "1m", until, chunk=chunk)
    yield from fold(engine, "1h", until, chunk=chunk)
