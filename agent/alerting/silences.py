"""Silences: label matchers that mute alerts for a time range, kept in the store's ``silences``
table so they hold across restarts and the CLI can add them while the daemon runs.

All methods are blocking (database); the dispatcher reloads the active set off the event loop.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import Engine

from agent.alerting.matchers import LabelMatcher
from agent.history.silences import SilenceRows

__all__ = ["Silence", "SilenceStore", "SilenceNotFound"]


class SilenceNotFound(LookupError):
    def __init__(self, silence_id: str) -> None:
        super().__init__(f"no silence with id {silence_id!r} (see `mlwarden silence list`)")

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class Silence:
    id: str
    matchers: tuple[LabelMatcher, ...]
    starts_at: float
    ends_at: float
    created_by: str
    comment: str
    created_at: float
    expired_at: float | None = None

    def active(self, now: float) -> bool:
        end = self.ends_at if self.expired_at is None else min(self.ends_at, self.expired_at)
        return self.starts_at <= now < end

    def mutes(self, labels: Mapping[str, str], now: float) -> bool:
        return self.active(now) and all(m.matches(labels) for m in self.matchers)

    def state(self, now: float) -> str:
        if self.active(now):
            return "active"
        return "pending" if now < self.starts_at else "expired"


class SilenceStore:
    """Add, list and expire silences; ``refresh`` keeps an in-memory copy of the live ones."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.rows = SilenceRows(engine)
        self._live: tuple[Silence, ...] = ()

    def add(
        self,
        matchers: Sequence[LabelMatcher],
        *,
        starts_at: float,
        ends_at: float,
        now: float,
        created_by: str = "",
        comment: str = "",
    ) -> Silence:
        if not matchers:
            raise ValueError("a silence needs at least one matcher (e.g. --match alert=GpuIdle)")
        if ends_at <= starts_at:
            raise ValueError("a silence must end after it starts")
        silence = Silence(
            str(uuid.uuid4()), tuple(matchers), starts_at, ends_at, created_by, comment, now
        )
        self.rows.insert({
            "id": silence.id,
            "matchers": json.dumps([m.as_dict() for m in matchers]),
            "starts_at": starts_at,
            "ends_at": ends_at,
            "created_by": created_by,
            "comment": comment,
            "created_at": now,
        })
        self._live = (*self._live, silence)
        return silence

    def expire(self, silence_id: str, *, now: float) -> Silence:
        """End a silence now; accepts a unique prefix of the id, as `silence list` shows it."""
        found = [s for s in self.list(now=now, include_expired=True) if s.id.startswith(silence_id)]
        if len(found) != 1:
            if len(found) > 1:
                raise ValueError(
                    f"id prefix {silence_id!r} matches {len(found)} silences; give more of it"
                )
            raise SilenceNotFound(silence_id)
        self.rows.expire(found[0].id, now)
        self._live = tuple(s for s in self._live if s.id != found[0].id)
        return found[0]

    def list(self, *, now: float, include_expired: bool = False) -> list[Silence]:
        return [_silence(r) for r in self.rows.select(now, include_expired)]

    def refresh(self, now: float) -> None:
        """Re-read the live silences (the CLI writes to the table from another process)."""
        self._live = tuple(self.list(now=now))

    def active_ids(self, now: float) -> tuple[str, ...]:
        """The silences in force at ``now`` (what can change a mute verdict between rounds)."""
        return tuple(s.id for s in self._live if s.active(now))

    def muted_by(self, labels: Mapping[str, str], now: float) -> Silence | None:
        for silence in self._live:
            if silence.mutes(labels, now):
                return silence
        return None


def _silence(row: Mapping[str, object]) -> Silence:
    matchers = tuple(
        LabelMatcher(m["name"], m["op"], m["value"]) for m in json.loads(str(row["matchers"]))
    )
    return Silence(
        id=str(row["id"]),
        matchers=matchers,
        starts_at=float(row["starts_at"]),  # type: ignore[arg-type]
        ends_at=float(row["ends_at"]),
        created_by=str(row["created_by"] or ""),  # type: ignore[arg-type]
        comment=str(row["comment"] or ""),
        created_at=float(row["created_at"]),  # type: ignore[arg-type]
        expired_at=None if row["expired_at"] is None else float(row["expired_at"]),  # type: ignore[arg-type]
    )
