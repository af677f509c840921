"""Deleting what is older than each resolution's retention, a chunk of series at a time.

Deletes go by (series, time range), the order of each table's primary key, so every
statement is an index range per series and never a scan; one statement and transaction
covers one chunk of series, so the writer flushes between chunks. Rows not yet folded into
the next rollup are kept even past their retention, so a stalled rollup never loses data
silently. SQLite reuses the freed pages, so under a steady load the file stops growing
once retention kicks in.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import Engine, and_, bindparam, delete

from agent.history.config import RetentionConfig
from agent.history.maintenance import TIME_COLUMN, Floors, in_range, series_ranges
from agent.history.rollups import progress
from agent.history.tables import rollup_1h, rollup_1m, samples

__all__ = ["apply_retention", "cutoffs", "RetentionReport"]


@dataclass
class RetentionReport:
    deleted: dict[str, int]


def cutoffs(engine: Engine, retention: RetentionConfig, now: float) -> dict[str, float]:
    """Per resolution, the time before which rows are deleted."""
    with engine.connect() as conn:
        done_1m = progress(conn, "1m")
        done_1h = progress(conn, "1h")
    return {
        "raw": min(now - retention.raw, done_1m if done_1m is not None else 0.0),
        "1m": min(now - retention.minute, done_1h if done_1h is not None else 0.0),
        "1h": now - retention.hour,
    }


def apply_retention(engine: Engine, retention: RetentionConfig, now: float, *, chunk: int,
                    report: RetentionReport | None = None,
                    floors: Floors | None = None) -> Iterator[str]:
    """Delete expired rows of every resolution; yields after each transaction.

    A table whose floor is not below its cutoff has nothing to delete and costs nothing
    (see :mod:`agent.history.maintenance`).
    """
    floors = floors if floors is not None else Floors()
    bounds = cutoffs(engine, retention, now)
    for name, table in (("raw", samples), ("1m", rollup_1m), ("1h", rollup_1h)):
        cutoff = bounds[name]
        if floors.get(engine, table) >= cutoff:
            continue
        stmt = delete(table).where(and_(in_range(table, bindparam("lo"), bindparam("hi")),
                                        TIME_COLUMN[table.name] < cutoff))
        for lo, hi in series_ranges(engine, chunk):
            with engine.begin() as conn:
                result = conn.execute(stmt, {"lo": lo, "hi": hi})
            if report is not None and result.rowcount and result.rowcount > 0:
                report.deleted[name] = report.deleted.get(name, 0) + result.rowcount
            yield f"retention {name} < {cutoff:.0f} series {lo}..{hi - 1}"
        # rows older than the cutoff written by this process during the pass lower the floor
        # again only if they arrive after this line: a sample older than its retention that
        # slips in between stays until the next start (it is expired data either way)
        floors.raise_to(table, cutoff)
