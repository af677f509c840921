"""The action model: what a button press asks for, what it acts on, and what came of it.

Plain values, no I/O. A Slack ``block_actions`` payload becomes an :class:`ActionRequest`
(:func:`requests_from_payload`); its ``key`` is derived from the payload itself (team,
user, message, button, Slack's ``action_ts``), so the same press redelivered, or received by
two agents, has the same key and is applied once. A :class:`Target` is what one message's
buttons act on: one incident of one alert group as one receiver posted it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ACTIONS", "ACTION_PREFIX", "CHART_WINDOWS", "SILENCES", "Ack", "ActionRecord",
    "ActionRequest", "ActionState",
    "AlertRef", "BadPayload", "ChartRequest", "Outcome", "Target", "action_id", "button_value",
    "common_labels", "requests_from_payload", "target_id_for",
]

ACTION_PREFIX = "mlwarden"
ACTIONS = ("acknowledge", "silence", "unsilence", "chart")
# silence lengths a button offers: seconds, or None for "until the alert resolves"
SILENCES: dict[str, float | None] = {"1h": 3600.0, "4h": 14400.0, "resolved": None}
CHART_WINDOWS = {"24h": 86400.0}
_VALUE_VERSION = "v1"


class BadPayload(ValueError):
    """An interactive payload that is not what Slack sends for a button press."""


def target_id_for(receiver: str, incident: str) -> str:
    """The id of the target of ``incident`` as posted by ``receiver`` (stable, 24 hex chars)."""
    doc = json.dumps([receiver, incident], separators=(",", ":"))
    return hashlib.sha256(doc.encode()).hexdigest()[:24]


def action_id(action: str, arg: str = "") -> str:
    """The ``action_id`` of a button: ``mlwarden:silence:1h``."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r} (one of {', '.join(ACTIONS)})")
    return f"{ACTION_PREFIX}:{action}" + (f":{arg}" if arg else "")


def button_value(target_id: str) -> str:
    return f"{_VALUE_VERSION}:{target_id}"


@dataclass(frozen=True)
class AlertRef:
    """One alert of a target: enough to silence it, chart it and find it by fingerprint."""

    fingerprint: str
    rule: str
    labels: Mapping[str, str]  # the labels it is routed and silenced on (alertname included)
    metric: str | None = None
    series: tuple[Mapping[str, str], ...] = ()
    # for the chart: its threshold line, its title, its pending and firing spans
    threshold: float | None = None
    summary: str = ""
    fired_at: float | None = None
    active_since: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"fingerprint": self.fingerprint, "rule": self.rule, "labels": dict(self.labels),
                "metric": self.metric, "series": [dict(s) for s in self.series],
                "threshold": self.threshold, "summary": self.summary,
                "fired_at": self.fired_at, "active_since": self.active_since}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> "AlertRef":
        return cls(str(doc["fingerprint"]), str(doc["rule"]), dict(doc.get("labels") or {}),
                   doc.get("metric"), tuple(dict(s) for s in doc.get("series") or ()),
                   threshold=_float(doc.get("threshold")), summary=str(doc.get("summary") or ""),
                   fired_at=_float(doc.get("fired_at")),
                   active_since=_float(doc.get("active_since")))


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) else None


@dataclass(frozen=True)
class Ack:
    """Someone took the incident: who (Slack name and ID) and when."""

    by: str
    by_id: str
    at: float


@dataclass(frozen=True)
class Target:
    """What one message's buttons act on: one incident of one alert group, for one receiver."""

    id: str
    receiver: str
    group_key: str
    incident: str
    group_labels: Mapping[str, str]
    alerts: tuple[AlertRef, ...]
    created_at: float
    updated_at: float
    channel: str | None = None
    ts: str | None = None
    resolved_at: float | None = None
    ack: Ack | None = None

    @property
    def rules(self) -> list[str]:
        return sorted({a.rule for a in self.alerts})

    def describe(self) -> str:
        """``EndpointDown model=ranker``: the rule(s) and the group's labels, for texts."""
        labels = " ".join(f"{k}={v}" for k, v in sorted(self.group_labels.items())
                          if v != "" and k not in ("alert", "alertname"))
        return " ".join(p for p in (", ".join(self.rules) or "alert", labels) if p)


@dataclass(frozen=True)
class ActionRequest:
    """One button press, as Slack delivered it."""

    key: str
    action: str  # one of ACTIONS
    arg: str  # SILENCES / CHART_WINDOWS key, or ""
    target_id: str
    user_id: str
    user_name: str
    team_id: str
    source: str  # slack-socket | slack-http
    channel_id: str | None = None
    message_ts: str | None = None
    response_url: str | None = None
    message: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)

    @property
    def who(self) -> str:
        """How the store and the CLI name the person: ``ana (Slack U0ANA)``."""
        return f"{self.user_name} (Slack {self.user_id})" if self.user_name else \
            f"Slack {self.user_id}"


@dataclass(frozen=True)
class ChartRequest:
    """Post the chart of ``target``'s alerts over ``window`` seconds in its thread."""

    target: Target
    window: float


@dataclass(frozen=True)
class ActionState:
    """What a message's action area shows: its acknowledgement, its silence, whether it is over."""

    target_id: str
    ack: Ack | None = None
    silenced_until: float | None = None  # the latest end of an active silence made from it
    silenced_by: str = ""  # Slack user ID of who made that silence
    until_resolved: bool = False
    resolved: bool = False

    @property
    def silenced(self) -> bool:
        return self.silenced_until is not None


@dataclass(frozen=True)
class Outcome:
    """What applying a request did, and what to tell whom.

    ``status``: ``applied`` (the store changed), ``noop`` (nothing to change: already
    acknowledged, nothing to unsilence), ``refused`` (not allowed, unknown target),
    ``duplicate`` (this press was applied before: say nothing again) or ``busy`` (another
    agent is applying it now). ``reply`` is for the person only (ephemeral); ``thread`` is
    for the incident's thread; ``changed``: the message should be redrawn.
    """

    request: ActionRequest
    status: str
    reply: str | None = None
    thread: str | None = None
    chart: ChartRequest | None = None
    target: Target | None = None
    changed: bool = False


@dataclass(frozen=True)
class ActionRecord:
    """One recorded action, as `alerts history` and audits read it."""

    key: str
    target_id: str
    action: str
    arg: str
    user_id: str
    user_name: str
    source: str
    requested_at: float
    state: str  # applying | done | refused
    outcome: str
    silence_ids: tuple[str, ...]
    rules: tuple[str, ...] = ()
    group_labels: Mapping[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        names = {"acknowledge": "acknowledged", "silence": f"silenced {self.arg}",
                 "unsilence": "unsilenced", "chart": f"chart {self.arg}"}
        what = names.get(self.action, self.action)
        if self.action == "silence" and self.arg == "resolved":
            what = "silenced until resolved"
        who = self.user_name or self.user_id
        tail = "" if self.state == "done" else f" ({self.state}: {self.outcome})"
        return f"{what} by {who}{tail}"


def _str(doc: Mapping[str, Any], *path: str) -> str:
    cur: Any = doc
    for part in path:
        if not isinstance(cur, Mapping):
            return ""
        cur = cur.get(part)
    return cur if isinstance(cur, str) else ""


def requests_from_payload(payload: Mapping[str, Any], source: str) -> list[ActionRequest]:
    """The mlwarden button presses in a Slack interactive payload (none for anything else:
    a link button, another app's element, a shortcut).

    Raises:
        BadPayload: a ``block_actions`` payload without the fields Slack always sends.
    """
    if not isinstance(payload, Mapping) or payload.get("type") != "block_actions":
        return []
    actions = payload.get("actions")
    user_id = _str(payload, "user", "id")
    if not isinstance(actions, list) or not user_id:
        raise BadPayload("a block_actions payload without `actions` or `user.id`")
    team_id = _str(payload, "team", "id") or _str(payload, "user", "team_id")
    channel = _str(payload, "container", "channel_id") or _str(payload, "channel", "id")
    message_ts = _str(payload, "container", "message_ts") or _str(payload, "message", "ts")
    user_name = _str(payload, "user", "username") or _str(payload, "user", "name")
    out = []
    for act in actions:
        if not isinstance(act, Mapping):
            raise BadPayload("an element of `actions` is not an object")
        aid = act.get("action_id")
        parts = aid.split(":") if isinstance(aid, str) else []
        if len(parts) < 2 or parts[0] != ACTION_PREFIX or parts[1] not in ACTIONS:
            continue  # a link button, or not ours
        action, arg = parts[1], ":".join(parts[2:])
        if action == "silence" and arg not in SILENCES or \
                action == "chart" and arg not in CHART_WINDOWS or \
                action in ("acknowledge", "unsilence") and arg:
            raise BadPayload(f"button {aid!r} names no action mlwarden offers")
        value = act.get("value")
        version, _, target = value.partition(":") if isinstance(value, str) else ("", "", "")
        if version != _VALUE_VERSION or not target:
            raise BadPayload(f"button {aid!r} carries no target (value {value!r})")
        action_ts = act.get("action_ts")
        if not isinstance(action_ts, str) or not action_ts:
            raise BadPayload(f"button {aid!r} without `action_ts`")
        doc = [team_id, user_id, channel, message_ts, act.get("block_id"), aid, action_ts]
        key = hashlib.sha256(json.dumps(doc, separators=(",", ":")).encode()).hexdigest()[:40]
        message = payload.get("message")
        out.append(ActionRequest(
            key=key, action=action, arg=arg, target_id=target, user_id=user_id,
            user_name=user_name, team_id=team_id, source=source, channel_id=channel or None,
            message_ts=message_ts or None,
            response_url=_str(payload, "response_url") or None,
            message=message if isinstance(message, Mapping) else None,
        ))
    return out


def common_labels(alerts: Sequence[AlertRef]) -> dict[str, str]:
    """The labels every alert of ``alerts`` has with the same value."""
    if not alerts:
        return {}
    first = dict(alerts[0].labels)
    return {k: v for k, v in first.items() if all(a.labels.get(k) == v for a in alerts[1:])}
