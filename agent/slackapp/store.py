"""The action store: targets, acknowledgements and the action log on the history database.

The only module with SQL on ``action_targets``, ``action_target_alerts`` and
``alert_actions`` (agent/history/tables.py). Agents that share a database (PostgreSQL)
share it, which is how an action applies once whichever agent Slack delivered it to:
:meth:`ActionStore.claim` inserts the action's key (one INSERT wins), and a claim whose
agent died half-way expires and is taken over. An acknowledgement is a compare-and-set on
its target, so the first one stands.

Also the status page's ``AckReader``: :meth:`ActionStore.acks` says who took which live
alert. Every method is blocking (database): call them off the event loop.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, and_, select, update

from agent.alert import Ack as PageAck  # the status page's: who took an alert
from agent.history.sql import insert_ignore
from agent.history.tables import action_target_alerts, action_targets, alert_actions
from agent.slackapp.model import (
    Ack,
    ActionRecord,
    ActionRequest,
    AlertRef,
    Target,
    target_id_for,
)

__all__ = ["ActionStore", "Claim", "CLAIM_TIMEOUT"]

log = logging.getLogger(__name__)

# how long an agent may take to apply one action before another agent may finish it
# (applying is a few database writes: seconds at worst)
CLAIM_TIMEOUT = 60.0


@dataclass(frozen=True)
class Claim:
    """The answer to "may I apply this action?".

    ``new``: yes, first. ``takeover``: yes, an agent that claimed it earlier let its claim
    expire (it may have done part of the work). ``duplicate``: it was applied (or refused)
    already. ``busy``: another agent is applying it right now.
    """

    status: str
    record: ActionRecord | None = None

    @property
    def mine(self) -> bool:
        return self.status in ("new", "takeover")


class ActionStore:
    """Targets of alert messages and the actions taken on them."""

    def __init__(self, engine: Engine, holder: str | None = None) -> None:
        self.engine = engine
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    # -- targets (the notifier's side) ----------------------------------------------------
    def register(self, *, receiver: str, group_key: str, incident: str,
                 group_labels: Mapping[str, str], alerts: Sequence[AlertRef],
                 now: float) -> Target:
        """Record (or update) the target of a message about to be posted or rewritten.

        Called again for the same incident (an update: alerts joined), the alerts are merged:
        a button on the first message still acts on every alert the incident had.
        """
        tid = target_id_for(receiver, incident)
        with self.engine.begin() as conn:
            row = conn.execute(select(action_targets).where(action_targets.c.id == tid)) \
                .mappings().first()
            merged = {a.fingerprint: a for a in
                      (AlertRef.from_json(d) for d in json.loads(row["alerts"]))} if row else {}
            merged.update({a.fingerprint: a for a in alerts})
            doc = json.dumps([a.to_json() for a in merged.values()], separators=(",", ":"),
                             sort_keys=True)
            labels = json.dumps(dict(group_labels), separators=(",", ":"), sort_keys=True)
            if row is None:
                conn.execute(insert_ignore(self.engine, action_targets).values(
                    id=tid, receiver=receiver, group_key=group_key, incident=incident,
                    group_labels=labels, alerts=doc, created_at=now, updated_at=now))
            else:
                conn.execute(update(action_targets).where(action_targets.c.id == tid)
                             .values(alerts=doc, group_labels=labels, updated_at=now))
            rows = [{"target_id": tid, "fingerprint": a.fingerprint, "rule": a.rule}
                    for a in alerts]
            if rows:
                conn.execute(insert_ignore(self.engine, action_target_alerts), rows)
        found = self.target(tid)
        assert found is not None
        return found

    def posted(self, target_id: str, *, channel: str, ts: str, now: float) -> None:
        """The target's message is ``ts`` in channel ``channel`` (its ID): edits go there."""
        with self.engine.begin() as conn:
            conn.execute(update(action_targets).where(action_targets.c.id == target_id)
                         .values(channel=channel, ts=ts, updated_at=now))

    def close(self, target_id: str, *, now: float) -> bool:
        """The target's incident resolved; False when it was closed already (or is unknown)."""
        with self.engine.begin() as conn:
            done = conn.execute(update(action_targets).where(and_(
                action_targets.c.id == target_id, action_targets.c.resolved_at.is_(None)))
                .values(resolved_at=now, updated_at=now))
        return bool(done.rowcount)

    def target(self, target_id: str) -> Target | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(action_targets).where(action_targets.c.id == target_id)) \
                .mappings().first()
        return None if row is None else _target(row)

    def acknowledged(self, target_id: str) -> Ack | None:
        """Who took the target's incident (the dispatcher stops its repeats), if anyone."""
        found = self.target(target_id)
        return None if found is None else found.ack

    # -- actions ---------------------------------------------------------------------------
    def claim(self, req: ActionRequest, *, now: float, timeout: float = CLAIM_TIMEOUT) -> Claim:
        """Take ``req`` to apply it; see :class:`Claim` for the answers."""
        row = {
            "key": req.key, "target_id": req.target_id, "action": req.action, "arg": req.arg,
            "user_id": req.user_id, "user_name": req.user_name, "source": req.source,
            "requested_at": now, "state": "applying", "outcome": "", "silence_ids": "[]",
            "claimed_by": self.holder, "claim_expires": now + timeout,
        }
        with self.engine.begin() as conn:
            # RETURNING, not rowcount: psycopg reports -1 for an INSERT ... ON CONFLICT
            inserted = conn.execute(insert_ignore(self.engine, alert_actions).values(**row)
                                    .returning(alert_actions.c.key)).first()
        if inserted is not None:
            return Claim("new")
        with self.engine.begin() as conn:
            taken = conn.execute(update(alert_actions).where(and_(
                alert_actions.c.key == req.key, alert_actions.c.state == "applying",
                alert_actions.c.claim_expires <= now,
            )).values(claimed_by=self.holder, claim_expires=now + timeout)).rowcount
        record = self.action(req.key)
        if taken:
            return Claim("takeover", record)
        if record is not None and record.state == "applying":
            return Claim("busy", record)
        return Claim("duplicate", record)

    def finish(self, key: str, *, state: str, outcome: str, now: float,
               silence_ids: Iterable[str] = ()) -> bool:
        """Settle a claimed action; False when this agent no longer held the claim."""
        with self.engine.begin() as conn:
            done = conn.execute(update(alert_actions).where(and_(
                alert_actions.c.key == key, alert_actions.c.claimed_by == self.holder,
                alert_actions.c.state == "applying",
            )).values(state=state, outcome=outcome, finished_at=now, claim_expires=None,
                      silence_ids=json.dumps(sorted(silence_ids))))
        if not done.rowcount:
            log.warning("action %s was finished by another agent (this one held it past its "
                        "claim)", key[:12])
        return bool(done.rowcount)

    def release(self, key: str, *, now: float) -> None:
        """Give up this agent's claim on ``key`` (applying it failed): the next delivery
        takes it over at once instead of waiting for the claim to expire."""
        with self.engine.begin() as conn:
            conn.execute(update(alert_actions).where(and_(
                alert_actions.c.key == key, alert_actions.c.claimed_by == self.holder,
                alert_actions.c.state == "applying")).values(claim_expires=now))

    def acknowledge(self, target_id: str, ack: Ack, *, action_key: str) -> Ack | None:
        """Set the target's acknowledgement unless it has one; returns the one that stands
        (None for an unknown target)."""
        with self.engine.begin() as conn:
            conn.execute(update(action_targets).where(and_(
                action_targets.c.id == target_id, action_targets.c.acked_at.is_(None),
            )).values(acked_by=ack.by, acked_by_id=ack.by_id, acked_at=ack.at,
                      ack_action=action_key))
        return self.acknowledged(target_id)

    def action(self, key: str) -> ActionRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(alert_actions).where(alert_actions.c.key == key)) \
                .mappings().first()
        return None if row is None else _record(row)

    def silence_ids(self, target_id: str, *, until_resolved: bool = False) -> list[str]:
        """Silences made by the target's applied silence actions, oldest first."""
        cond = [alert_actions.c.target_id == target_id, alert_actions.c.action == "silence",
                alert_actions.c.state == "done"]
        if until_resolved:
            cond.append(alert_actions.c.arg == "resolved")
        query = select(alert_actions.c.silence_ids).where(and_(*cond)) \
            .order_by(alert_actions.c.requested_at, alert_actions.c.key)
        with self.engine.connect() as conn:
            return [sid for (doc,) in conn.execute(query) for sid in json.loads(doc)]

    def actions(self, *, target_id: str | None = None, rule: str | None = None,
                since: float | None = None, limit: int = 100) -> list[ActionRecord]:
        """Recorded actions (applied, refused or under way), oldest first: the last ``limit``."""
        query = select(alert_actions, action_targets.c.group_labels, action_targets.c.alerts) \
            .select_from(alert_actions.outerjoin(
                action_targets, action_targets.c.id == alert_actions.c.target_id))
        if target_id is not None:
            query = query.where(alert_actions.c.target_id == target_id)
        if rule is not None:
            query = query.where(alert_actions.c.target_id.in_(
                select(action_target_alerts.c.target_id)
                .where(action_target_alerts.c.rule == rule)))
        if since is not None:
            query = query.where(alert_actions.c.requested_at >= since)
        query = query.order_by(alert_actions.c.requested_at.desc(), alert_actions.c.key) \
            .limit(limit)
        with self.engine.connect() as conn:
            rows = [_record(r) for r in conn.execute(query).mappings()]
        rows.reverse()
        return rows

    # -- the status page's AckReader -------------------------------------------------------
    def acks(self, fingerprints: Sequence[str]) -> Mapping[str, PageAck]:
        """Who acknowledged each of ``fingerprints`` (live alerts), for the status page.

        An alert counts as acknowledged when the newest open incident it is part of, for
        some receiver, was acknowledged: an alert that resolved and fired again is a new
        incident, not acknowledged until someone takes it again.
        """
        if not fingerprints:
            return {}
        query = select(action_target_alerts.c.fingerprint, action_targets.c.receiver,
                       action_targets.c.created_at, action_targets.c.acked_by,
                       action_targets.c.acked_at) \
            .select_from(action_target_alerts.join(
                action_targets, action_targets.c.id == action_target_alerts.c.target_id)) \
            .where(and_(action_target_alerts.c.fingerprint.in_(list(fingerprints)),
                        action_targets.c.resolved_at.is_(None)))
        newest: dict[tuple[str, str], tuple[float, str | None, float | None]] = {}
        with self.engine.connect() as conn:
            for fp, receiver, created, by, at in conn.execute(query):
                seen = newest.get((fp, receiver))
                if seen is None or created > seen[0]:
                    newest[(fp, receiver)] = (created, by, at)
        out: dict[str, PageAck] = {}
        for (fp, _), (_, by, at) in sorted(newest.items()):
            if at is not None and (fp not in out or at < out[fp].at):
                out[fp] = PageAck(by=f"@{by}" if by and not by.startswith("@") else str(by),
                                  at=float(at), comment="in Slack")
        return out


def _target(row: Any) -> Target:
    ack = None
    if row["acked_at"] is not None:
        ack = Ack(str(row["acked_by"] or ""), str(row["acked_by_id"] or ""),
                  float(row["acked_at"]))
    return Target(
        id=str(row["id"]), receiver=str(row["receiver"]), group_key=str(row["group_key"]),
        incident=str(row["incident"]), group_labels=json.loads(row["group_labels"]),
        alerts=tuple(AlertRef.from_json(d) for d in json.loads(row["alerts"])),
        created_at=float(row["created_at"]), updated_at=float(row["updated_at"]),
        channel=row["channel"], ts=row["ts"],
        resolved_at=None if row["resolved_at"] is None else float(row["resolved_at"]),
        ack=ack,
    )


def _record(row: Any) -> ActionRecord:
    alerts = json.loads(row["alerts"]) if row.get("alerts") else []
    return ActionRecord(
        key=str(row["key"]), target_id=str(row["target_id"]), action=str(row["action"]),
        arg=str(row["arg"]), user_id=str(row["user_id"]), user_name=str(row["user_name"]),
        source=str(row["source"]), requested_at=float(row["requested_at"]),
        state=str(row["state"]), outcome=str(row["outcome"]),
        silence_ids=tuple(json.loads(row["silence_ids"])),
        rules=tuple(sorted({str(a["rule"]) for a in alerts})),
        group_labels=json.loads(row["group_labels"]) if row.get("group_labels") else {},
    )
