"""The ``check_state`` table: small JSON documents kept per component and key.

The checks keep their cursors here (``HistoryStore.get_state``/``set_state``, the checks'
``CheckContext.state``) and the dispatcher its alert groups (``agent/alerting/groupstate.py``,
component ``alerting``). This module is the only one that writes SQL on the table, so its
key layout and its upsert are spelled once. Every call blocks (SQLAlchemy).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sqlalchemy import Engine, and_, delete, select

from agent.history.sql import upsert
from agent.history.tables import check_state

__all__ = ["CheckStateRows"]

_CHUNK = 500  # keys per DELETE ... IN (...): well under every backend's parameter limit


class CheckStateRows:
    """The ``check_state`` rows behind one engine; values are JSON text the caller owns."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._upsert = upsert(engine, check_state, ["check_name", "key"], ["value", "updated_at"])

    def get(self, check: str, key: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(select(check_state.c.value).where(
                (check_state.c.check_name == check) & (check_state.c.key == key))
            ).scalar_one_or_none()

    def put(self, check: str, key: str, value: str, now: float) -> None:
        """Insert or replace one row, committed when this returns."""
        self.replace(check, {key: value}, (), now)

    def all(self, check: str) -> list[tuple[str, str]]:
        """Every (key, value) of one component."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(check_state.c.key, check_state.c.value).where(
                check_state.c.check_name == check)).all()
        return [(str(k), str(v)) for k, v in rows]

    def replace(self, check: str, rows: Mapping[str, str], gone: Iterable[str],
                now: float) -> None:
        """Upsert ``rows`` (key -> value) and delete the ``gone`` keys, in one transaction.

        Changed rows are upserted, never deleted and re-inserted: agents sharing the store
        save the same keys at the same moments, and an upsert cannot collide with another
        agent's insert. Rows go in key order, so two savers lock them in the same order."""
        gone = sorted(gone)
        values = [{"check_name": check, "key": k, "value": rows[k], "updated_at": now}
                  for k in sorted(rows)]
        if not gone and not values:
            return
        with self.engine.begin() as conn:
            for i in range(0, len(gone), _CHUNK):
                conn.execute(delete(check_state).where(and_(
                    check_state.c.check_name == check,
                    check_state.c.key.in_(gone[i:i + _CHUNK]))))
            if values:
                conn.execute(self._upsert, values)
