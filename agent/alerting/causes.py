"""The dispatcher's side of the cause graph: it describes its groups to
:func:`agent.causes.placement.decide`, and applies the decision to each group's message.

The decision is made once per round, after new alert events joined their groups and before
any group is flushed, so every group sees the same picture. What it changes in a group:

- an effect said under its cause in another group of the same receiver is not said here
  (``notified`` is ``linked``; it resolves silently, like a muted alert);
- a group that holds an alert waiting for its cause flushes when the hold ends;
- a group whose effects were let go by a resolved cause flushes now;
- the cause's group carries the explanation in its notification (``Notification.causes``):
  the cause first, its effects with why each was linked, which effects joined since the last
  message (they make it an update: a thread reply in Slack) and which paged on their own.

Every link said or reported is written to ``alert_links`` once (``mlwarden alerts history``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from sqlalchemy import Engine, or_, select

from agent.alert import Alert
from agent.causes.config import CausesConfig
from agent.causes.graph import CauseGraph
from agent.causes.model import Link, Signal
from agent.causes.placement import Carried, Decision, Member, decide
from agent.causes.render import describe
from agent.history.sql import insert_ignore
from agent.history.tables import alert_links

__all__ = ["CauseLinks", "link_rows"]

log = logging.getLogger(__name__)
# fingerprints whose kinds are remembered (a fingerprint's labels never change)
_KINDS_CACHE = 20_000


class CauseLinks:
    """Built from the ``causes:`` section; ``decide`` each round, then ask per group."""

    def __init__(self, config: CausesConfig | None) -> None:
        self.config = config or CausesConfig()
        self.graph = CauseGraph.build(self.config)
        self.decision = Decision()
        self.changed = False  # whether the last round decided anew
        self._signature: object = None
        self._kinds: dict[str, bool] = {}
        self._recorded: set[str] = set()

    @property
    def enabled(self) -> bool:
        return self.config.enabled and bool(self.graph.edges)

    def _placeable(self, fingerprint: str, signal: Signal) -> bool:
        """Whether the alert is of any kind of the graph (the rest is never linked)."""
        known = self._kinds.get(fingerprint)
        if known is None:
            if len(self._kinds) > _KINDS_CACHE:
                self._kinds.clear()
            known = self._kinds[fingerprint] = bool(self.graph.kinds_of(signal))
        return known

    def decide(self, groups: Iterable[Any], now: float, *,
               muted: Callable[[Mapping[str, str]], bool],
               moves: Callable[[str], bool],
               group_wait: Callable[[Any], float] = lambda group: 0.0,
               epoch: object = None) -> Decision:
        """The round's decision over the dispatcher's groups (``muted(labels)``: silenced or
        inhibited now; ``moves(receiver)``: False for receivers that group alerts themselves;
        ``group_wait(group)``: its route's, the hold unless ``causes.hold`` is set).

        A round whose alerts, states and ``epoch`` (the silences in force) are those of the
        round before keeps its decision: the answer depends on nothing else that changes
        (a hold's end is a time, already in it), and most rounds change nothing."""
        if not self.enabled:
            self.decision = Decision()
            return self.decision
        placeable = []
        for group in groups:
            linked = getattr(group, "linked", {})
            for fp, alert in group.alerts.items():
                if self._kinds.get(fp) is False:
                    continue  # of no kind: never linked (most alerts; checked once)
                placeable.append((group, fp, alert, linked.get(fp)))
        signature = (epoch, tuple((g.key, fp, alert.state, g.notified.get(fp), role)
                                  for g, fp, alert, role in placeable))
        if signature == self._signature:
            self.changed = False
            return self.decision
        self._signature, self.changed = signature, True
        members = []
        hold = self.config.hold
        for group, fp, alert, role in placeable:
            own_hold = float(hold) if hold is not None else group_wait(group)
            signal = Signal.from_alert(alert)
            if not self._placeable(fp, signal):
                continue
            firing = alert.state == "firing"
            members.append(Member(
                group=group.key, receiver=group.receiver, signal=signal,
                fired_at=float(alert.fired_at or alert.active_since or now),
                said=group.notified.get(fp), live=not (firing and muted(alert.labels)),
                moves=moves(group.receiver), was_cause=role == "cause", hold=own_hold))
        self.decision = decide(members, now, self.graph) if members else Decision()
        return self.decision

    def decide_again(self) -> None:
        """Make the next round decide (and record) anew even if nothing changed."""
        self._signature = None

    # -- per group -----------------------------------------------------------------------
    def away(self, group_key: str, fingerprint: str) -> bool:
        return (group_key, fingerprint) in self.decision.away

    def carried(self, group: Any) -> tuple[tuple[Carried, ...], set[str]]:
        """What the group's message says under causes, and the effects new to it."""
        carried = self.decision.carries.get(group.key, ())
        linked = getattr(group, "linked", {})
        new = {k for c in carried for k in c.effect_keys
               if linked.get(k) != "effect" and k not in c.paged}
        return carried, new

    def plan(self, group: Any, now: float) -> None:
        """Move the group's next flush for a hold (later) or for let-go effects (now)."""
        until = self.decision.wait_until.get(group.key)
        if until is not None and group.incident is None:
            group.next_flush = max(group.next_flush, until)
        if group.key in self.decision.due:
            group.next_flush = min(group.next_flush, now)

    @staticmethod
    def docs(carried: Iterable[Carried], new: set[str]) -> list[dict[str, Any]] | None:
        """``Notification.causes``: each explanation, which effects are new and which paged."""
        out = [{"explanation": c.explanation.to_json(), "paged": sorted(c.paged),
                "new": sorted(k for k in c.effect_keys if k in new)} for c in carried]
        return out or None

    @staticmethod
    def said(group: Any, carried: Iterable[Carried]) -> None:
        """Remember what the group's message now says (causes and their effects)."""
        linked: dict[str, str] = {}
        for c in carried:
            for key in c.effect_keys:
                linked[key] = "effect"
            linked[str(c.explanation.cause.key)] = "cause"
        group.linked = linked

    def annotate(self, group_key: str, alerts: list[Alert]) -> list[Alert]:
        """Alerts said on their own although a cause explains them (another receiver,
        Alertmanager, paged before the cause came) carry the cause in their annotations."""
        out = []
        for alert in alerts:
            item = self.decision.explained.get((group_key, alert.fingerprint))
            if item is None or alert.state != "firing":
                out.append(alert)
                continue
            said = describe(item.cause, item.cause_kind, graph=self.graph, as_cause=True)
            out.append(dataclasses.replace(alert, annotations={
                **alert.annotations, "cause": said, "cause_reason": item.reason}))
        return out

    # -- the history -----------------------------------------------------------------------
    def record(self, engine: Engine, now: float, receivers: Mapping[str, str]) -> int:
        """Write this round's links not written yet (blocking). ``receivers``: group key ->
        receiver."""
        rows = []
        for (gkey, _fp), item in self.decision.explained.items():
            placement = ("grouped" if (gkey, item.effect.key) in self.decision.away
                         else "reported")
            row = link_row(item, receivers.get(gkey, ""), placement, now)
            if row["id"] not in self._recorded:
                rows.append(row)
        if not rows:
            return 0
        unique = {r["id"]: r for r in rows}
        with engine.begin() as conn:
            conn.execute(insert_ignore(engine, alert_links), list(unique.values()))
        self._recorded.update(unique)
        if len(self._recorded) > _KINDS_CACHE:
            self._recorded = set(unique)
        return len(unique)


def link_row(item: Link, receiver: str, placement: str, now: float) -> dict[str, Any]:
    key = json.dumps([item.effect.key, item.cause.key, item.effect.since, receiver], default=str)
    return {
        "id": hashlib.sha256(key.encode()).hexdigest()[:40],
        "effect": str(item.effect.key)[:64], "effect_rule": item.effect.rule,
        "effect_labels": json.dumps(dict(item.effect.labels), sort_keys=True),
        "effect_kind": item.effect_kind, "effect_since": item.effect.since,
        "cause": str(item.cause.key)[:64], "cause_rule": item.cause.rule,
        "cause_labels": json.dumps(dict(item.cause.labels), sort_keys=True),
        "cause_kind": item.cause_kind, "cause_since": item.cause.since,
        "reason": item.reason, "receiver": receiver, "placement": placement, "at": now,
    }


def link_rows(engine: Engine, rule: str, limit: int = 100) -> list[dict[str, Any]]:
    """The links of a rule's alerts, as effect or as cause, oldest first (blocking)."""
    query = (select(alert_links)
             .where(or_(alert_links.c.effect_rule == rule, alert_links.c.cause_rule == rule))
             .order_by(alert_links.c.at.desc()).limit(limit))
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
    for row in rows:
        for key in ("effect_labels", "cause_labels"):
            row[key] = json.loads(row[key] or "{}")
    rows.reverse()
    return rows
