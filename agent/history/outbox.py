"""A durable delivery queue on the store's ``outbox`` table.

Whatever must reach the outside world (a Slack notification, Datadog points, an
Alertmanager post) is written here first and removed only once delivered, so an outage
or a restart loses nothing. Rows are claimed in id order per (kind, receiver), which keeps
delivery in order; ``dedup_key`` makes enqueueing the same item twice a no-op, which is
how a restart (or a second agent on a shared store) avoids queueing twice.

Agents that share one database all drain the same rows, so a row is claimed before it is
sent: one compare-and-set UPDATE moves it from ``pending`` to ``sending`` and names the
claimer, and only the agent whose UPDATE changed the row sends it. A claim expires, so the
rows of an agent that died mid-send are claimed again by another one (at least once, never
lost); a retry puts the row back to ``pending``. The claims of a process of this host that
is gone (the agent killed and restarted) are taken back at start-up by
:meth:`Outbox.release_orphans`, so a restart resends at once instead of waiting for them
to expire.

All methods are blocking (they hit the database): call them off the event loop.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import socket
import uuid
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Engine,
    and_,
    bindparam,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError

from agent.history.driversql import (
    DriverStatement,
    DriverTransaction,
    driver_transaction,
    schema_map,
)
from agent.history.sql import insert_ignore
from agent.history.tables import outbox

__all__ = ["Outbox", "OutboxBatch", "OutboxItem", "CLAIM_TIMEOUT"]

log = logging.getLogger(__name__)
# in every claimer name this process makes: a claim naming this PID without it is a
# predecessor's (a restarted container's agent is PID 1 again)
_PROCESS = uuid.uuid4().hex[:8]

# how long a claimed row is left to its claimer before another agent may claim it again;
# far longer than any one send (HTTP timeouts are seconds)
CLAIM_TIMEOUT = 300.0
_KEEP: Any = object()  # OutboxBatch.claim: leave the row's result as it is


@dataclass(frozen=True)
class OutboxItem:
    id: int
    kind: str
    receiver: str
    payload: Any
    created_at: float
    due_at: float
    attempts: int
    dedup_key: str | None
    result: Any
    state: str = "pending"
    claimed_by: str | None = None
    claim_expires: float | None = None


class Outbox:
    """Enqueue, claim and settle deliveries of one or more kinds.

    Each method is one transaction. :meth:`batch` runs several in one (one connection, one
    commit): the delivery stages take, claim and mark an item in one trip to the database.
    """

    def __init__(self, engine: Engine, owner: str | None = None) -> None:
        self.engine = engine
        # unique per process and instance: two agents (or two Outbox objects) never share it
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{_PROCESS}.{uuid.uuid4().hex[:6]}"
        self._sql = _statements(engine.dialect, schema_map(engine))

    @contextmanager
    def batch(self) -> Iterator[OutboxBatch]:
        """Several operations in one transaction (committed when the block ends)."""
        with driver_transaction(self.engine) as txn:
            yield OutboxBatch(txn, self.owner, self._sql)

    def enqueue(self, kind: str, receiver: str, payload: Any, *, now: float,
                dedup_key: str | None = None, due_at: float | None = None) -> int | None:
        """Add an item; returns its id, or None when ``dedup_key`` was already enqueued."""
        try:
            with self.batch() as b:
                return b.enqueue(kind, receiver, payload, now=now, due_at=due_at,
                                 dedup_key=dedup_key)
        except IntegrityError:
            if dedup_key is None:
                raise
            return None

    def enqueue_all(self, items: Sequence[tuple[str, str, Any, str | None]], *,
                    now: float) -> list[int | None]:
        """Add several items ``(kind, receiver, payload, dedup_key)`` in one transaction;
        per item its id, or None when its ``dedup_key`` was already enqueued. All or none:
        if any insert fails, none is kept (the caller decides what to try alone)."""
        if not items:
            return []
        with self.batch() as b:
            return [b.enqueue_new(kind, receiver, payload, now=now, dedup_key=dedup_key)
                    for kind, receiver, payload, dedup_key in items]

    def enqueue_many(self, kind: str, receiver: str, payloads: Sequence[Any], *, now: float) -> int:
        rows = [_row(kind, receiver, p, now=now) for p in payloads]
        if rows:
            with self.engine.begin() as conn:
                conn.execute(insert(outbox), rows)
        return len(rows)

    def due(self, kind: str, *, now: float, limit: int = 100,
            receiver: str | None = None) -> list[OutboxItem]:
        """Pending items of ``kind`` whose time has come, oldest first (with the rows whose
        claimer let its claim expire). Listing is not taking: :meth:`claim` one before
        sending it."""
        cond = [outbox.c.kind == kind, _claimable(now), outbox.c.due_at <= now]
        if receiver is not None:
            cond.append(outbox.c.receiver == receiver)
        query = select(outbox).where(and_(*cond)).order_by(outbox.c.id).limit(limit)
        with self.engine.connect() as conn:
            return [_item(r) for r in conn.execute(query).mappings()]

    def head(self, kind: str, receiver: str) -> OutboxItem | None:
        """The oldest unsettled item of ``kind`` for ``receiver`` (see :meth:`OutboxBatch.head`)."""
        with self.batch() as b:
            return b.head(kind, receiver)

    def result_of(self, dedup_key: str) -> Any:
        """The recorded result of the item enqueued under ``dedup_key`` (None: none yet)."""
        with self.batch() as b:
            return b.result_of(dedup_key)

    def claim(self, item_id: int, *, now: float, timeout: float = CLAIM_TIMEOUT,
              in_order: bool = True, only_due: bool = True, again: bool = False) -> bool:
        """Take ``item_id`` for sending (see :meth:`OutboxBatch.claim`)."""
        with self.batch() as b:
            return b.claim(item_id, now=now, timeout=timeout, in_order=in_order,
                           only_due=only_due, again=again)

    def release_orphans(self) -> int:
        """Put back to ``pending`` the rows that dead processes of this host were sending;
        returns how many.

        Called when the store starts. Rows keep their result, so the notifier still learns
        what the interrupted attempt did. Claims of other hosts are left to expire:
        liveness is unknown there."""
        with self.engine.connect() as conn:
            owners = conn.execute(select(outbox.c.claimed_by).where(
                outbox.c.state == "sending").distinct()).scalars().all()
        dead = sorted(o for o in owners if o and _owner_gone(o))
        if not dead:
            return 0
        with self.engine.begin() as conn:
            res = conn.execute(update(outbox).where(and_(
                outbox.c.state == "sending", outbox.c.claimed_by.in_(dead))).values(
                state="pending", claimed_by=None, claim_expires=None))
        count = int(res.rowcount or 0)
        log.warning("outbox: an earlier agent process (%s) stopped while sending %d queued "
                    "item(s); sending them again now",
                    ", ".join(sorted({o.rsplit(":", 1)[0] for o in dead})), count)
        return count

    def mark_sent(self, item_id: int, *, now: float, result: Any = None) -> None:
        with self.batch() as b:
            b.mark_sent(item_id, now=now, result=result)

    def set_result(self, item_id: int, result: Any) -> None:
        """Record a partial result before the send is final (e.g. a posted message's ts)."""
        with self.batch() as b:
            b.set_result(item_id, result)

    def retry_later(self, item_id: int, *, due_at: float, error: str) -> None:
        """Release a claimed (or pending) item to be tried again at ``due_at``."""
        with self.batch() as b:
            b.retry_later(item_id, due_at=due_at, error=error)

    def mark_dead(self, item_id: int, *, error: str) -> None:
        """Give up on an item (non-retryable error, too old); it stays for inspection."""
        with self.batch() as b:
            b.mark_dead(item_id, error=error)

    def pending_count(self, kind: str | None = None) -> int:
        """Items not yet settled (waiting, or being sent right now)."""
        cond = [outbox.c.state.in_(("pending", "sending"))]
        if kind is not None:
            cond.append(outbox.c.kind == kind)
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(outbox).where(and_(*cond))).scalar_one())

    def pending_by_receiver(self, kind: str) -> dict[str, tuple[int, float]]:
        """Per receiver: how many items of ``kind`` are unsettled and when the oldest was
        queued."""
        query = (select(outbox.c.receiver, func.count(), func.min(outbox.c.created_at))
                 .where(and_(outbox.c.kind == kind, outbox.c.state.in_(("pending", "sending"))))
                 .group_by(outbox.c.receiver))
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return {str(receiver): (int(count), float(oldest)) for receiver, count, oldest in rows}

    def prune(self, *, sent_before: float, kinds: Collection[str] | None = None,
              keep_sent: Collection[str] = ()) -> int:
        """Delete delivered and dead items settled before ``sent_before``; returns how many.

        ``kinds``: only items of these kinds. ``keep_sent``: kinds whose delivered items stay
        (their dedup key is how a restart knows they were already sent)."""
        settled: Any = outbox.c.state.in_(("sent", "dead"))
        if keep_sent:
            settled = or_(outbox.c.state == "dead",
                          and_(outbox.c.state == "sent", outbox.c.kind.not_in(tuple(keep_sent))))
        cond = [settled, func.coalesce(outbox.c.sent_at, outbox.c.created_at) < sent_before]
        if kinds is not None:
            cond.insert(0, outbox.c.kind.in_(tuple(kinds)))
        with self.engine.begin() as conn:
            res = conn.execute(delete(outbox).where(and_(*cond)))
            return int(res.rowcount or 0)


class OutboxBatch:
    """The outbox's row operations on one open transaction (from :meth:`Outbox.batch`).

    The statements are built once and compiled once for the engine's dialect, and run on
    the driver's cursor (:mod:`agent.history.driversql`): building or executing a statement
    through SQLAlchemy costs more CPU than SQLite running it."""

    def __init__(self, txn: DriverTransaction, owner: str, sql: _Statements) -> None:
        self.txn = txn
        self.owner = owner
        self.sql = sql

    def enqueue(self, kind: str, receiver: str, payload: Any, *, now: float,
                dedup_key: str | None = None, due_at: float | None = None) -> int:
        """Add an item; a duplicate ``dedup_key`` raises IntegrityError."""
        row = _row(kind, receiver, payload, now=now, dedup_key=dedup_key, due_at=due_at)
        return self._inserted(self.sql.insert, row)

    def enqueue_new(self, kind: str, receiver: str, payload: Any, *, now: float,
                    dedup_key: str | None = None) -> int | None:
        """Add an item unless ``dedup_key`` was enqueued before (then None): no error, so the
        transaction goes on (on PostgreSQL an error ends it)."""
        row = _row(kind, receiver, payload, now=now, dedup_key=dedup_key)
        return self._inserted(self.sql.insert_new, row)

    def _inserted(self, statement: DriverStatement, row: dict[str, Any]) -> int | None:
        cursor = self.txn.execute(statement, row)
        if self.sql.lastrowid:
            return int(cursor.lastrowid) if cursor.rowcount == 1 else None
        got = cursor.fetchone()  # INSERT ... RETURNING id
        return None if got is None else int(got[0])

    def head(self, kind: str, receiver: str) -> OutboxItem | None:
        """The oldest unsettled item of ``kind`` for ``receiver``, due or not, claimed by
        another agent or not: the one in-order delivery must settle first."""
        row = self.txn.execute(self.sql.head, {"b_kind": kind, "b_receiver": receiver}).fetchone()
        return None if row is None else _item(row)

    def result_of(self, dedup_key: str) -> Any:
        """The recorded result of the item enqueued under ``dedup_key`` (None: none yet)."""
        row = self.txn.execute(self.sql.result_of, {"b_dedup": dedup_key}).fetchone()
        return json.loads(row[0]) if row is not None and row[0] else None  # dedup_key is unique

    def claim(self, item_id: int, *, now: float, timeout: float = CLAIM_TIMEOUT,
              in_order: bool = True, only_due: bool = True, again: bool = False,
              result: Any = _KEEP) -> bool:
        """Take ``item_id`` for sending; False when another claimer has it (or it is settled).

        One compare-and-set UPDATE, so of several agents claiming the same row at once exactly
        one succeeds (PostgreSQL re-checks the WHERE on the row it waited for). ``in_order``:
        only while no earlier row of the same kind and receiver is pending or being sent, which
        keeps each receiver's messages in the order they were queued across agents.
        ``only_due``: only once ``due_at`` has come. ``again``: also when this Outbox's own
        earlier claim is still held (an attempt that failed before settling the row).
        ``result``: also record this (the claimer's "sending" marker) in the same UPDATE."""
        record = result is not _KEEP
        params = {"b_id": item_id, "b_now": now, "b_owner": self.owner,
                  "b_expires": now + timeout}
        if record:
            params["b_result"] = _json_or_none(result)
        statement = self.sql.claim(in_order, only_due, again, record)
        return int(self.txn.execute(statement, params).rowcount or 0) == 1

    def mark_sent(self, item_id: int, *, now: float, result: Any = None) -> None:
        self.txn.execute(self.sql.mark_sent, {"b_id": item_id, "b_now": now,
                                              "b_result": _json_or_none(result)})

    def set_result(self, item_id: int, result: Any) -> None:
        """Record a partial result before the send is final (e.g. a posted message's ts)."""
        self.txn.execute(self.sql.set_result, {"b_id": item_id, "b_result": json.dumps(result)})

    def retry_later(self, item_id: int, *, due_at: float, error: str) -> None:
        """Release a claimed (or pending) item to be tried again at ``due_at``."""
        self.txn.execute(self.sql.retry_later, {"b_id": item_id, "b_due": due_at,
                                                "b_error": error[:2000]})

    def mark_dead(self, item_id: int, *, error: str) -> None:
        """Give up on an item (non-retryable error, too old); it stays for inspection."""
        self.txn.execute(self.sql.mark_dead, {"b_id": item_id, "b_error": error[:2000]})


def _unsettled(table: Any) -> Any:
    # an OR, not IN: an IN of literals is an "expanding" parameter, re-rendered every run
    return or_(table.c.state == "pending", table.c.state == "sending")


_ROW_KEYS = ["kind", "receiver", "dedup_key", "payload", "created_at", "due_at", "attempts", "state"]
_HEAD = (select(outbox)
         .where(outbox.c.kind == bindparam("b_kind"), outbox.c.receiver == bindparam("b_receiver"),
                _unsettled(outbox))
         .order_by(outbox.c.id).limit(1))
_RESULT_OF = select(outbox.c.result).where(outbox.c.dedup_key == bindparam("b_dedup"))
_MARK_SENT = update(outbox).where(outbox.c.id == bindparam("b_id")).values(
    state="sent", sent_at=bindparam("b_now"), result=bindparam("b_result"))
_SET_RESULT = update(outbox).where(outbox.c.id == bindparam("b_id")).values(
    result=bindparam("b_result"))
_RETRY_LATER = update(outbox).where(
    outbox.c.id == bindparam("b_id"), _unsettled(outbox)).values(
    state="pending", claimed_by=None, claim_expires=None, due_at=bindparam("b_due"),
    attempts=outbox.c.attempts + 1, last_error=bindparam("b_error"))
_MARK_DEAD = update(outbox).where(outbox.c.id == bindparam("b_id")).values(
    state="dead", attempts=outbox.c.attempts + 1, last_error=bindparam("b_error"))


class _Statements:
    """The batch's statements compiled for one dialect and schema map (once per engine:
    see :func:`_statements`)."""

    def __init__(self, dialect: Dialect, schemas: tuple[tuple[str | None, str | None], ...]) -> None:
        self._compile = functools.partial(DriverStatement, dialect=dialect,
                                          schema_translate_map=dict(schemas))
        # SQLite reports the new row's id on the cursor; PostgreSQL returns it
        self.lastrowid = bool(dialect.postfetch_lastrowid)

        def inserting(stmt: Any) -> DriverStatement:
            if not self.lastrowid:
                stmt = stmt.returning(outbox.c.id)
            return self._compile(stmt, column_keys=_ROW_KEYS)

        self.insert = inserting(insert(outbox))
        self.insert_new = inserting(insert_ignore(dialect.name, outbox))
        self.head = self._compile(_HEAD)
        self.result_of = self._compile(_RESULT_OF)
        self.mark_sent = self._compile(_MARK_SENT)
        self.set_result = self._compile(_SET_RESULT)
        self.retry_later = self._compile(_RETRY_LATER)
        self.mark_dead = self._compile(_MARK_DEAD)
        self._claims: dict[tuple[bool, bool, bool, bool], DriverStatement] = {}

    def claim(self, in_order: bool, only_due: bool, again: bool, record: bool) -> DriverStatement:
        key = (in_order, only_due, again, record)
        statement = self._claims.get(key)
        if statement is None:
            statement = self._claims[key] = self._compile(_claim_statement(*key))
        return statement


@functools.lru_cache(maxsize=16)
def _statements(dialect: Dialect,
                schemas: tuple[tuple[str | None, str | None], ...]) -> _Statements:
    """The outbox's statements for an engine's ``dialect`` and schema map (engines made by
    ``execution_options`` share their base engine's dialect)."""
    return _Statements(dialect, schemas)


@functools.cache
def _claim_statement(in_order: bool, only_due: bool, again: bool, record: bool) -> Any:
    """The claim's compare-and-set UPDATE for one combination of options (built once)."""
    claimable = _claimable(bindparam("b_now"))
    if again:
        claimable = or_(claimable, and_(outbox.c.state == "sending",
                                        outbox.c.claimed_by == bindparam("b_owner")))
    cond = [outbox.c.id == bindparam("b_id"), claimable]
    if only_due:
        cond.append(outbox.c.due_at <= bindparam("b_now"))
    if in_order:
        earlier = outbox.alias("earlier")
        cond.append(~exists().where(
            earlier.c.kind == outbox.c.kind, earlier.c.receiver == outbox.c.receiver,
            earlier.c.id < outbox.c.id, _unsettled(earlier)))
    values: dict[str, Any] = {"state": "sending", "claimed_by": bindparam("b_owner"),
                              "claim_expires": bindparam("b_expires")}
    if record:
        values["result"] = bindparam("b_result")
    return update(outbox).where(and_(*cond)).values(**values)


def _row(kind: str, receiver: str, payload: Any, *, now: float, dedup_key: str | None = None,
         due_at: float | None = None) -> dict[str, Any]:
    return {
        "kind": kind, "receiver": receiver, "dedup_key": dedup_key,
        "payload": _encode_payload(payload),
        "created_at": now, "due_at": now if due_at is None else due_at,
        "attempts": 0, "state": "pending",
    }


# json.dumps with non-default options builds an encoder each call: built once
_encode_payload = json.JSONEncoder(separators=(",", ":"), default=str).encode


def _json_or_none(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def _claimable(now: Any) -> Any:
    """Pending, or claimed by someone whose claim ran out (it died mid-send)."""
    return or_(outbox.c.state == "pending",
               and_(outbox.c.state == "sending", outbox.c.claim_expires < now))


def _owner_gone(owner: str) -> bool:
    """Whether the claimer ``host:pid:process.instance`` was a process of this host that has
    exited."""
    parts = owner.rsplit(":", 2)
    if len(parts) != 3 or parts[0] != socket.gethostname() or not parts[1].isdigit():
        return False
    pid = int(parts[1])
    if pid == os.getpid():
        return not parts[2].startswith(f"{_PROCESS}.")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, another user's
    return False


def _item(row: Any) -> OutboxItem:
    """An item from a row of ``select(outbox)``: a mapping (Core) or a tuple in the table's
    column order (the driver's)."""
    if not isinstance(row, tuple):
        row = tuple(row[key] for key in _COLUMNS)
    (id_, kind, receiver, dedup_key, payload, created_at, due_at, attempts, state,
     _last_error, _sent_at, result, claimed_by, claim_expires) = row
    return OutboxItem(
        id=id_, kind=kind, receiver=receiver,
        payload=json.loads(payload), created_at=created_at, due_at=due_at,
        attempts=attempts, dedup_key=dedup_key,
        result=json.loads(result) if result else None,
        state=state, claimed_by=claimed_by, claim_expires=claim_expires,
    )


_COLUMNS = tuple(outbox.c.keys())
assert _COLUMNS == ("id", "kind", "receiver", "dedup_key", "payload", "created_at", "due_at",
                    "attempts", "state", "last_error", "sent_at", "result", "claimed_by",
                    "claim_expires"), _COLUMNS
