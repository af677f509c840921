"""What rollups and retention share so that a pass costs what changed, not what is stored.

Two ideas:

- **Floors.** Per table, a time no row is older than, kept in memory: read once from the
  database (one statement, an index probe per series inside the database), lowered by
  every batch the writer commits and every window a rollup writes, raised by every
  retention pass. A retention pass whose cutoff is not above the floor has nothing to
  delete and issues no statement; the first rollup of a new database starts at the floor
  instead of asking every series for its oldest row on every pass until it can start.
  Rows written behind this process's back (another agent sharing a PostgreSQL store) do
  not lower it: that agent's own maintenance deletes them.
- **Series ranges.** Work goes one chunk of series at a time, named by an id range
  (``series_id IN (SELECT id FROM series WHERE id >= lo AND id < hi)``), so no pass builds
  a list of every series id, and each statement is still one primary-key range per series
  on both SQLite and PostgreSQL (a bare ``series_id BETWEEN`` would read every row of those
  series, not just the time range).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection, Engine, Table, func, select

from agent.history.tables import rollup_1h, rollup_1m, samples, series

__all__ = ["Floors", "TIME_COLUMN", "series_ranges", "in_range"]

# the time column of each table maintenance works on
TIME_COLUMN = {"samples": samples.c.ts, "rollup_1m": rollup_1m.c.bucket, "rollup_1h": rollup_1h.c.bucket}


class Floors:
    """Per table, a lower bound of its oldest row's time (``math.inf``: the table is empty).

    Safe to use from the writer thread and a caller's thread at once (tests, the CLI).
    """

    def __init__(self) -> None:
        self._known: dict[str, float] = {}
        self._pending: dict[str, float] = {}  # lowered before the floor was first read
        self._lock = threading.Lock()

    def get(self, engine: Engine, table: Table) -> float:
        """The floor of ``table``, read from the database the first time it is asked for."""
        name = table.name
        with self._lock:
            known = self._known.get(name)
        if known is not None:
            return known
        with engine.connect() as conn:
            value = _oldest(conn, table)
        with self._lock:
            value = min(value, self._pending.pop(name, math.inf), self._known.get(name, math.inf))
            self._known[name] = value
        return value

    def lower(self, table: Table, ts: float) -> None:
        """Rows as old as ``ts`` were written to ``table``."""
        name = table.name
        with self._lock:
            if name in self._known:
                if ts < self._known[name]:
                    self._known[name] = ts
            elif ts < self._pending.get(name, math.inf):
                self._pending[name] = ts

    def raise_to(self, table: Table, ts: float) -> None:
        """Every row of ``table`` older than ``ts`` was deleted."""
        with self._lock:
            if table.name in self._known and ts > self._known[table.name]:
                self._known[table.name] = ts


def _oldest(conn: Connection, table: Table) -> float:
    """One statement: each series' oldest row by its primary key, the least of them."""
    col = TIME_COLUMN[table.name]
    per_series = (select(func.min(col)).where(table.c.series_id == series.c.id)
                  .scalar_subquery().label("oldest"))
    inner = select(per_series).select_from(series).subquery()
    value = conn.execute(select(func.min(inner.c.oldest))).scalar_one_or_none()
    return math.inf if value is None else float(value)


def series_ranges(engine: Engine, chunk: int) -> Iterator[tuple[int, int]]:
    """``[lo, hi)`` id ranges of ``chunk`` ids covering every series that exists now."""
    with engine.connect() as conn:
        lo, hi = conn.execute(select(func.min(series.c.id), func.max(series.c.id))).one()
    if lo is None:
        return
    for start in range(lo, hi + 1, chunk):
        yield start, start + chunk


def in_range(table: Table, lo: Any, hi: Any):  # type: ignore[no-untyped-def]
    """``table.series_id`` is one of the series with ids in ``[lo, hi)``."""
    ids = select(series.c.id).where(series.c.id >= lo, series.c.id < hi)
    return table.c.series_id.in_(ids)
