"""The alert value types shared by rules (which produce them) and routing (which sends them).

An :class:`AlertEvent` is one state change of one alert; the rules engine hands batches of
them to an :class:`AlertSink` (routing/dispatch), which never reaches back into rules.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["Alert", "AlertEvent", "AlertSink", "AlertState", "fingerprint"]


class AlertState(str, enum.Enum):
    INACTIVE = "inactive"
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"
    FLAPPING = "flapping"


def fingerprint(rule: str, labels: Mapping[str, str]) -> str:
    """Stable id of one alert: the rule name plus its label set."""
    doc = json.dumps([rule, sorted(labels.items())], separators=(",", ":"))
    return hashlib.sha256(doc.encode()).hexdigest()[:32]


@dataclass
class Alert:
    """One alert (a rule applied to one series or label set) as it stands now."""

    rule: str
    labels: dict[str, str]
    state: AlertState = AlertState.INACTIVE
    severity: str = "warning"
    annotations: dict[str, str] = field(default_factory=dict)  # summary, description, runbook_url, dashboard_url, ...
    value: float | None = None
    threshold: float | None = None
    active_since: float | None = None
    fired_at: float | None = None
    resolved_at: float | None = None
    last_eval: float | None = None
    flap_count: int = 0
    metric: str | None = None  # the rule's metric
    series: list[dict[str, str]] = field(default_factory=list)  # tags of the alert's own series

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.rule, self.labels)


@dataclass(frozen=True)
class AlertEvent:
    """``alert`` moved from ``previous`` to ``alert.state`` at ``at``."""

    alert: Alert
    previous: AlertState
    at: float


class AlertSink(Protocol):
    """Where the rules engine hands state changes (routing, the console, tests)."""

    def alerts_changed(self, events: Sequence[AlertEvent], now: float) -> None: ...
