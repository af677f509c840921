"""Deleting what is older than each resolution's retention, a chunk of series at a time.

Deletes go by (series, time range), the order of each table's primary key, so every
statement is an index range and never a scan; one transaction covers one chunk of series,
so the writer flushes between chunks. Rows not yet folded into the next rollup are kept
even past their retention, so a stalled rollup never loses data silently. SQLite reuses
the freed pages, so under a steady load the file stops growing once retention kicks in.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import Engine, and_, bindparam, delete, select

from agent.history.config import RetentionConfig
from agent.history.rollups import progress
from agent.history.tables import rollup_1h, rollup_1m, samples, series

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
                    report: RetentionReport | None = None) -> Iterator[str]:
    """Delete expired rows of every resolution; yields after each transaction."""
    bounds = cutoffs(engine, retention, now)
    with engine.connect() as conn:
        ids = [row[0] for row in conn.execute(select(series.c.id).order_by(series.c.id))]
    for name, table, col in (("raw", samples, samples.c.ts),
                             ("1m", rollup_1m, rollup_1m.c.bucket),
                             ("1h", rollup_1h, rollup_1h.c.bucket)):
        stmt = delete(table).where(and_(table.c.series_id == bindparam("sid"), col < bindparam("cutoff")))
        cutoff = bounds[name]
        for i in range(0, len(ids), chunk):
            part = ids[i:i + chunk]
            with engine.begin() as conn:
                result = conn.execute(stmt, [{"sid": sid, "cutoff": cutoff} for sid in part])
            if report is not None and result.rowcount and result.rowcount > 0:
                report.deleted[name] = report.deleted.get(name, 0) + result.rowcount
            yield f"retention {name} < {cutoff:.0f} series {part[0]}..{part[-1]}"
