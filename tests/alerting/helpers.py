"""Shared test helpers: a store on a temporary SQLite file, alerts and events, a fake clock."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from sqlalchemy import Engine

from agent.alert import Alert, AlertEvent, AlertState
from agent.history.db import create_schema, make_engine

T0 = 1_790_000_000.0


def store(tmp_path: Path, name: str = "alerts.db") -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path / name}")
    create_schema(engine)
    return engine


class Clock:
    """Time the test moves by hand; the dispatcher only ever sees the ``now`` it is given."""

    def __init__(self, start: float = T0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


def fire(
    rule: str,
    labels: dict[str, str],
    at: float,
    *,
    severity: str = "warning",
    value: float = 0.02,
    threshold: float = 0.05,
    annotations: dict[str, str] | None = None,
) -> AlertEvent:
    alert = Alert.of(
        rule,
        labels,
        "firing",
        severity,
        annotations=annotations if annotations is not None else {"summary": f"{rule} on {labels}"},
        value=value,
        threshold=threshold,
        active_since=at - 60,
        fired_at=at,
    )
    return AlertEvent(alert, AlertState.PENDING, at, AlertState.FIRING)


def resolve(event: AlertEvent, at: float) -> AlertEvent:
    alert = replace(event.alert, state="resolved", value=0.5, resolved_at=at)
    return AlertEvent(alert, AlertState.FIRING, at, AlertState.RESOLVED)
