"""The dispatcher's alert groups and how they outlive a restart.

A :class:`Group` is what the dispatcher knows of one route's alerts that share the
group_by labels: the alerts, what was last said about each, and the incident's timers.
:class:`GroupStates` holds the groups of one dispatcher, remembers which changed, and
saves those in one transaction to the store's ``check_state`` rows (component
``alerting``, through :class:`agent.history.checkstate.CheckStateRows`), so a restart
neither repeats nor forgets an incident.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from agent.alert import Alert
from agent.history.checkstate import CheckStateRows

__all__ = ["STATE_CHECK", "Group", "GroupStates", "digest"]

log = logging.getLogger(__name__)
STATE_CHECK = "alerting"


def digest(*parts: object) -> str:
    """A stable 40-hex key of ``parts`` (group rows, incidents, dedup keys)."""
    return hashlib.sha256(_encode_parts(parts).encode()).hexdigest()[:40]


# json.dumps with non-default options builds an encoder each call: built once
_encode_parts = json.JSONEncoder(default=str).encode
_encode_compact = json.JSONEncoder(separators=(",", ":")).encode


@dataclass
class Group:
    """The alerts of one route that share the group_by labels, and what was last sent about them."""

    route_id: str
    key: str
    labels: dict[str, str]
    receiver: str
    alerts: dict[str, Alert] = field(default_factory=dict)  # by fingerprint
    notified: dict[str, str] = field(default_factory=dict)  # fingerprint -> state last sent
    incident: str | None = None
    seq: int = 0
    next_flush: float = 0.0
    last_notify: float | None = None
    linked: dict[str, str] = field(default_factory=dict)  # fingerprint -> cause|effect (causes.py)

    def to_json(self) -> str:
        doc = dict(vars(self))
        doc["alerts"] = {fp: a.to_json() for fp, a in self.alerts.items()}
        return _encode_compact(doc)

    @classmethod
    def from_json(cls, text: str) -> "Group":
        doc: dict[str, Any] = json.loads(text)
        doc["alerts"] = {fp: Alert.from_json(a) for fp, a in doc.get("alerts", {}).items()}
        return cls(**doc)


class GroupStates:
    """The groups by key, with the keys changed or removed since the last :meth:`save`."""

    def __init__(self, engine: Engine) -> None:
        self.rows = CheckStateRows(engine)
        self.groups: dict[str, Group] = {}
        self._dirty: set[str] = set()
        self._removed: set[str] = set()

    def __len__(self) -> int:
        return len(self.groups)

    def __iter__(self) -> Iterator[Group]:
        return iter(list(self.groups.values()))

    def get(self, key: str) -> Group | None:
        return self.groups.get(key)

    def add(self, group: Group) -> None:
        self.groups[group.key] = group
        self._dirty.add(group.key)

    def changed(self, key: str) -> None:
        self._dirty.add(key)

    def remove(self, key: str) -> None:
        self.groups.pop(key, None)
        self._removed.add(key)
        self._dirty.discard(key)

    def load(self) -> None:
        """Resume groups from the store (blocking)."""
        for key, value in self.rows.all(STATE_CHECK):
            try:
                group = Group.from_json(value)
                self.groups[group.key] = group
            except (TypeError, ValueError) as exc:
                log.warning("alerting: ignoring unreadable saved group %s: %s", key, exc)

    def save(self, now: float) -> None:
        """Write changed groups and delete removed ones (one transaction, blocking). Rows are
        keyed by a digest of the group key, which holds label values of any length; the key
        itself is inside the JSON."""
        if not self._dirty and not self._removed:
            return
        kept = {digest(k): self.groups[k].to_json() for k in self._dirty if k in self.groups}
        gone = {digest(k) for k in self._removed | self._dirty if k not in self.groups}
        self.rows.replace(STATE_CHECK, kept, gone, now)
        self._dirty.clear()
        self._removed.clear()
