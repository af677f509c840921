"""Durable alert state: the ``alerts`` row of every alert and its ``alert_transitions``.

The rules engine writes a row whenever an alert's state or timers move (and a transition
row for every public state change) in one transaction, before any sink hears of the
change; on start it reads the rows back, so a restart neither re-fires nor forgets an
alert. Every call blocks (SQLAlchemy): the engine runs them off the event loop; the CLI
calls them directly.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, or_, select
from sqlalchemy.exc import SQLAlchemyError

from agent.alert import AlertState
from agent.errors import StoreError
from agent.history.sql import upsert
from agent.history.tables import alert_transitions, alerts
from agent.rules.lifecycle import AlertRecord

__all__ = ["AlertStateStore", "TransitionRow"]

TransitionRow = dict[str, Any]
_LIVE = (AlertState.PENDING.value, AlertState.FIRING.value, AlertState.FLAPPING.value)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def record_row(rec: AlertRecord, agent: str | None) -> dict[str, Any]:
    """The ``alerts`` row of a record (built on the loop, written off it)."""
    return {
        "fingerprint": rec.fingerprint,
        "rule": rec.rule,
        "labels": _dumps(rec.labels),
        "annotations": _dumps(rec.annotations),
        "state": rec.state.value,
        "severity": rec.severity,
        "value": rec.value,
        "active_since": rec.active_since,
        "fired_at": rec.fired_at,
        "resolved_at": rec.resolved_at,
        "last_eval": rec.last_eval,
        "last_transition": rec.last_transition,
        "transitions_window": _dumps(rec.flips),
        "agent": agent,
        "detail": _dumps({
            "phase": rec.phase.value,
            "clear_since": rec.clear_since,
            "flap_count": rec.flap_count,
            "group": [list(pair) for pair in rec.group],
        }),
    }


def row_record(row: Any) -> AlertRecord:
    """The record a row describes (the inverse of :func:`record_row`)."""
    detail = json.loads(row.detail or "{}")
    state = AlertState(row.state)
    return AlertRecord(
        fingerprint=row.fingerprint,
        rule=row.rule,
        labels=json.loads(row.labels),
        severity=row.severity,
        state=state,
        phase=AlertState(detail.get("phase", state.value)),
        value=row.value,
        active_since=row.active_since,
        clear_since=detail.get("clear_since"),
        fired_at=row.fired_at,
        resolved_at=row.resolved_at,
        last_eval=row.last_eval,
        last_transition=row.last_transition,
        flips=[float(t) for t in json.loads(row.transitions_window or "[]")],
        flap_count=int(detail.get("flap_count", 0)),
        annotations=json.loads(row.annotations or "{}"),
        group=tuple((str(k), str(v)) for k, v in detail.get("group", [])),
    )


class AlertStateStore:
    """The alert tables behind one SQLAlchemy engine (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine, agent: str | None = None) -> None:
        self.engine = engine
        self.agent = agent
        self._upsert = upsert(engine, alerts, ["fingerprint"],
                              [c.name for c in alerts.columns if c.name != "fingerprint"])

    def prepare(self) -> None:
        """Bring the database to the current schema (the history migrations; a no-op when the
        store already did, as it does in the daemon)."""
        from agent.history.db import create_schema

        try:
            create_schema(self.engine)
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot create the alert tables in {self.where()}: "
                             f"{type(exc).__name__}: {getattr(exc, 'orig', None) or exc}") from exc

    def save(self, rows: Sequence[dict[str, Any]], transitions: Sequence[TransitionRow]) -> None:
        """Upsert alert rows and append transitions, all in one transaction."""
        if not rows and not transitions:
            return
        try:
            with self.engine.begin() as conn:
                if rows:  # one statement, built once, for every row (an insert or an update)
                    conn.execute(self._upsert, list(rows))
                if transitions:
                    conn.execute(alert_transitions.insert(), list(transitions))
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot save alert state to {self.where()}: "
                             f"{type(exc).__name__}: {getattr(exc, 'orig', None) or exc}") from exc

    def load(self, now: float, flap_window: float) -> list[AlertRecord]:
        """Alerts to resume: every live one, and those over whose flap history still counts
        (the evaluator drops the ones whose history aged out)."""
        query = select(alerts).where(
            or_(alerts.c.state.in_(_LIVE), alerts.c.last_transition >= now - flap_window)
        )
        if self.agent is not None:
            query = query.where(or_(alerts.c.agent == self.agent, alerts.c.agent.is_(None)))
        try:
            with self.engine.connect() as conn:
                return [row_record(row) for row in conn.execute(query)]
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot read alert state from {self.where()}: "
                             f"{type(exc).__name__}") from exc

    def list_alerts(self, state: str | None = None) -> list[dict[str, Any]]:
        """Rows for `mlwarden alerts list`, newest change first."""
        query = select(alerts).order_by(alerts.c.last_transition.desc().nulls_last())
        if state:
            query = query.where(alerts.c.state == state)
        with self.engine.connect() as conn:
            return [_plain(row) for row in conn.execute(query)]

    def history(self, rule: str, limit: int = 100) -> list[dict[str, Any]]:
        """The last ``limit`` transitions of one rule, oldest first."""
        query = (select(alert_transitions).where(alert_transitions.c.rule == rule)
                 .order_by(alert_transitions.c.at.desc(), alert_transitions.c.id.desc()).limit(limit))
        with self.engine.connect() as conn:
            rows = [_plain(row) for row in conn.execute(query)]
        rows.reverse()
        return rows

    def rules(self) -> list[str]:
        with self.engine.connect() as conn:
            return sorted({r[0] for r in conn.execute(select(alerts.c.rule).distinct())})

    def where(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)


def _plain(row: Any) -> dict[str, Any]:
    out = dict(row._mapping)
    for key in ("labels", "annotations", "detail", "transitions_window"):
        if isinstance(out.get(key), str):
            out[key] = json.loads(out[key])
    return out
