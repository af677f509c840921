"""The ``silences`` table's SQL: rows in, rows out, nothing about matching.

:class:`agent.alerting.silences.SilenceStore` owns what a silence means (its matchers, when
it mutes); this module owns how one is stored, so the SQL on the store's tables stays under
``agent/history``. Every method is blocking (call it off the event loop).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine, and_, bindparam, insert, or_, select, update

from agent.history.tables import silences

__all__ = ["SilenceRows"]


class SilenceRows:
    """Insert, expire and select rows of ``silences`` behind one engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def insert(self, row: Mapping[str, Any]) -> None:
        with self.engine.begin() as conn:
            conn.execute(insert(silences).values(**row))

    def expire(self, silence_id: str, now: float) -> None:
        """Set ``expired_at`` of one silence (by its full id)."""
        with self.engine.begin() as conn:
            conn.execute(update(silences).where(silences.c.id == silence_id)
                         .values(expired_at=now))

    def select(self, now: float, include_expired: bool = False) -> list[Mapping[str, Any]]:
        """Rows by start time (then id); without ``include_expired`` only those not over by
        ``now`` (neither past their end nor expired)."""
        with self.engine.connect() as conn:
            if include_expired:
                return list(conn.execute(_ALL).mappings())
            return list(conn.execute(_LIVE, {"now": now}).mappings())


# built once: the dispatcher reads the live silences every tick
_ALL = select(silences).order_by(silences.c.starts_at, silences.c.id)
_LIVE = _ALL.where(and_(
    silences.c.ends_at > bindparam("now"),
    or_(silences.c.expired_at.is_(None), silences.c.expired_at > bindparam("now")),
))
