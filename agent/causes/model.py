"""The values the cause graph reads and writes: signals in, links and explanations out.

A :class:`Signal` is one alert as the graph sees it (its rule, labels and when it started),
built from whatever alert type the alert chain carries by :meth:`Signal.from_alert`: that
one function is the seam to the chain, so the graph does not depend on its types. Every
value here is frozen and turns into JSON (:meth:`as_dict`), so a link can be stored in the
alert history and shown by ``mlwarden routes test``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Explanation", "Link", "Signal"]


@dataclass(frozen=True, slots=True)
class Signal:
    """One alert, cause or effect: ``since`` is when its condition began (epoch seconds),
    ``until`` when it resolved (None while it fires)."""

    rule: str
    labels: tuple[tuple[str, str], ...]
    since: float
    fingerprint: str = ""
    summary: str = ""
    severity: str = ""
    until: float | None = None

    @classmethod
    def of(cls, rule: str, labels: Mapping[str, object], since: float, **more: Any) -> Signal:
        """A signal from a plain mapping of labels (values become strings)."""
        pairs = tuple(sorted((str(k), "" if v is None else str(v)) for k, v in labels.items()))
        return cls(rule, pairs, float(since), **more)

    @classmethod
    def from_alert(cls, alert: Any) -> Signal:
        """The signal of an alert of the chain (anything with ``rule``, ``labels``,
        ``fingerprint``, ``annotations``, ``severity`` and ``active_since``/``fired_at``/
        ``resolved_at``, as the chain's :class:`agent.alert.Alert` has).

        The condition's start (``active_since``) is preferred to the firing time: a rule's
        ``for:`` delays the firing, not the fault. ``until`` is kept only for a resolved
        alert (a firing one may still hold the end of an earlier episode).
        """
        since = getattr(alert, "active_since", None) or getattr(alert, "fired_at", None) or 0.0
        annotations = getattr(alert, "annotations", None) or {}
        state = getattr(alert, "state", None)
        resolved = getattr(state, "value", state) == "resolved"
        return cls.of(
            alert.rule, alert.labels, since,
            fingerprint=str(getattr(alert, "fingerprint", "") or ""),
            summary=str(annotations.get("summary", "")),
            severity=str(getattr(alert, "severity", "") or ""),
            until=getattr(alert, "resolved_at", None) if resolved else None,
        )

    @property
    def key(self) -> str | tuple[str, tuple[tuple[str, str], ...]]:
        """What makes two signals the same alert."""
        return self.fingerprint or (self.rule, self.labels)

    def label(self, name: str) -> str:
        """The value of a label; ``alert`` is the rule name; "" when absent."""
        if name == "alert":
            return self.rule
        for key, value in self.labels:
            if key == name:
                return value
        return ""

    @property
    def label_dict(self) -> dict[str, str]:
        return {**dict(self.labels), "alert": self.rule}

    def as_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "labels": dict(self.labels), "since": self.since,
                "fingerprint": self.fingerprint, "summary": self.summary,
                "severity": self.severity, "until": self.until}

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Signal:
        return cls.of(doc["rule"], doc.get("labels") or {}, doc.get("since") or 0.0,
                      fingerprint=doc.get("fingerprint") or "", summary=doc.get("summary") or "",
                      severity=doc.get("severity") or "", until=doc.get("until"))


@dataclass(frozen=True, slots=True)
class Link:
    """``cause`` explains ``effect`` through the edge ``cause_kind -> effect_kind``;
    ``reason`` says why in words ("same node gpu-node-7 within 10m")."""

    cause: Signal
    effect: Signal
    cause_kind: str
    effect_kind: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        """What the alert history keeps of a link (the signals by fingerprint and rule)."""
        return {"cause": self.cause.fingerprint, "cause_rule": self.cause.rule,
                "effect": self.effect.fingerprint, "effect_rule": self.effect.rule,
                "cause_kind": self.cause_kind, "effect_kind": self.effect_kind,
                "reason": self.reason}


@dataclass(frozen=True, slots=True)
class Explanation:
    """One root cause and every effect it explains, directly or through other effects (a
    lost GPU explains the model server being down, which explains its probe errors): the
    content of one message, cause first. ``links`` are in the order the effects started;
    each is the link by which its effect joined (its ``cause`` may be an intermediate)."""

    cause: Signal
    kind: str
    links: tuple[Link, ...]

    @property
    def effects(self) -> tuple[Signal, ...]:
        return tuple(link.effect for link in self.links)

    def to_json(self) -> dict[str, Any]:
        """The whole explanation, signals included (what a queued notification carries)."""
        return {"cause": self.cause.as_dict(), "kind": self.kind,
                "links": [{"cause": i.cause.as_dict(), "effect": i.effect.as_dict(),
                           "cause_kind": i.cause_kind, "effect_kind": i.effect_kind,
                           "reason": i.reason} for i in self.links]}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Explanation:
        links = tuple(Link(Signal.from_dict(i["cause"]), Signal.from_dict(i["effect"]),
                           str(i.get("cause_kind") or ""), str(i.get("effect_kind") or ""),
                           str(i.get("reason") or "")) for i in doc.get("links") or ())
        return cls(Signal.from_dict(doc["cause"]), str(doc.get("kind") or ""), links)
