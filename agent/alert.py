"""The alert as it travels the chain: one value from the rules engine to the notifiers.

The rules engine makes an :class:`Alert` when an alert changes (``Change.alert`` in
``agent/rules/evaluator.py``) and hands it to its sinks inside an :class:`AlertEvent`;
routing groups it as it is (``agent/alerting/``), the dispatcher's group state and the
outbox keep it as JSON (:meth:`Alert.to_json`), and a notification carries it to the
notifiers (``agent/notify/``). It lives below all three, like ``agent/tagmatch.py``, so
none of them imports another for it.

What a notification needs is decided once, where the alert is made: its labels are the
routing labels (:func:`alert_labels`: ``alertname``, ``alert`` and ``severity`` added),
its ``state`` is what a notification says (a flapping alert still fires), and a
resolution carries its end. The rules' own lifecycle (pending, flapping and the flap
count) stays on the event.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Protocol

__all__ = ["Ack", "Alert", "AlertEvent", "AlertSink", "AlertState", "alert_labels", "fingerprint",
           "shown_state"]


class AlertState(str, enum.Enum):
    """The rules' lifecycle state of an alert (``agent/rules/lifecycle.py``)."""

    INACTIVE = "inactive"
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"
    FLAPPING = "flapping"


def fingerprint(rule: str, labels: Mapping[str, str]) -> str:
    """Stable id of one alert: the rule name plus its label set (the rule's labels, before
    :func:`alert_labels` adds the routing ones). Stored state and the outbox carry it."""
    doc = json.dumps([rule, sorted(labels.items())], separators=(",", ":"))
    return hashlib.sha256(doc.encode()).hexdigest()[:32]


def alert_labels(rule: str, labels: Mapping[str, str], severity: str) -> dict[str, str]:
    """The label set an alert is routed, silenced and sent on.

    The rule name appears as ``alertname`` (what Alertmanager and its users expect) and as
    ``alert`` (what mlwarden's config and CLI say); ``severity`` is a label too.
    """
    out = dict(labels)
    out.setdefault("alertname", rule)
    out.setdefault("alert", rule)
    out.setdefault("severity", severity)
    return out


def shown_state(state: AlertState) -> str:
    """What a notification says of a lifecycle state: a flapping alert fires, an alert that
    is over (resolved, or inactive again) is resolved."""
    if state is AlertState.FIRING or state is AlertState.FLAPPING:
        return "firing"
    if state is AlertState.RESOLVED or state is AlertState.INACTIVE:
        return "resolved"
    return state.value


@dataclass(frozen=True)
class Alert:
    """One alert as the rules engine reported it: a value (frozen), grouped as it is by the
    dispatcher, carried by notifications and stored as JSON (:meth:`to_json`).

    ``labels`` are the routing labels (:func:`alert_labels`); ``fingerprint`` is the rule's
    own (:func:`fingerprint` of the rule's labels), kept as it was made.
    """

    fingerprint: str
    rule: str
    labels: dict[str, str]
    state: str  # firing | resolved (shown_state)
    severity: str = "warning"
    annotations: dict[str, str] = field(default_factory=dict)  # summary, runbook_url, ...
    value: float | None = None
    threshold: float | None = None
    active_since: float | None = None
    fired_at: float | None = None
    resolved_at: float | None = None
    metric: str | None = None  # the rule's metric: what the chart draws
    series: list[dict[str, str]] = field(default_factory=list)  # the alert's own series (tags)

    @classmethod
    def of(cls, rule: str, labels: Mapping[str, str], state: str = "firing",
           severity: str = "warning", **more: Any) -> Alert:
        """An alert from a rule's name and own labels: the fingerprint from those, the
        routing labels added (how the rules engine makes them; tests and benchmarks too)."""
        return cls(fingerprint(rule, labels), rule, alert_labels(rule, labels, severity),
                   state, severity, **more)

    def to_json(self) -> dict[str, Any]:
        """The alert as a JSON object (shallow: for ``json.dumps``, not to be changed)."""
        return dict(vars(self))

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Alert:
        """The inverse of :meth:`to_json`; keys it does not know (a newer writer's) are left.
        Rows written as notify's ``AlertInfo`` (the same fields) load unchanged."""
        return cls(**{k: doc[k] for k in _FIELDS if k in doc})

    @property
    def chart_metric(self) -> str | None:
        """The metric to chart: the rule's, or a hand-set ``metric`` annotation."""
        return self.metric or self.annotations.get("metric") or self.labels.get("__metric__")

    @property
    def started(self) -> float | None:
        return self.fired_at or self.active_since


_FIELDS = tuple(f.name for f in fields(Alert))


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """``alert`` moved from ``previous`` to ``state`` (the rules' lifecycle states) at ``at``.

    ``alert.state`` is what a notification says of ``state`` (:func:`shown_state`);
    ``flap_count`` is how often a flapping alert changed.
    """

    alert: Alert
    previous: AlertState
    at: float
    state: AlertState
    flap_count: int = 0


class AlertSink(Protocol):
    """Where the rules engine hands state changes (routing, the console, tests)."""

    def alerts_changed(self, events: Sequence[AlertEvent], now: float) -> None: ...


@dataclass(frozen=True)
class Ack:
    """Someone took an alert: who, when, and what they said. Slack's buttons record it
    (agent.slackapp.store) and the status page shows it (agent.web.view)."""

    by: str
    at: float
    comment: str = ""
