"""Leader election on the shared database, so cluster-wide checks run on one agent at a time.

Agents that share a PostgreSQL history store elect one leader through a row of the
``leases`` table. A check instance with ``scope: cluster`` (Airflow, a fleet-wide DCGM
scrape) runs only while this agent holds the lease; ``scope: local`` checks run everywhere.
With SQLite there is one agent per database, so :class:`SoloLeadership` lets every check run.

How the lease works (compare-and-set on holder and expiry):

- Take or renew in one ``UPDATE ... WHERE holder = me OR expires_at <= now``; a missing
  row is inserted with ``ON CONFLICT DO NOTHING``. Only one agent's statement can match
  an expired row, so two agents never both win. ``generation`` grows by one each time the
  holder changes: it is the leadership term, shown in /status.
- Every time in the row (``expires_at``, ``renewed_at``, the "now" it is compared with)
  comes from the database server's clock, inside the statement. Agents' own wall clocks
  are never compared with each other, so skewed or stepped clocks on the nodes cannot
  make two leaders or stall a handover.
- The leader believes in its lease only until ``lease_duration`` after it *sent* the
  renewal, measured on its own monotonic clock. The row cannot expire before that moment
  (the database stamped it later), so a leader cut off from the database stops running
  cluster checks before anyone else can start them.
- The leader renews every ``renew_interval``. A follower retries at the same pace, but
  sleeps only until the lease's expiry when that comes sooner, so after the leader dies
  another agent takes over at most ``lease_duration`` after the last renewal (plus one
  database round trip). A leader that stops cleanly releases the lease at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import Engine, and_, case, or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql.elements import ColumnElement

from agent.durations import Duration
from agent.errors import StoreError
from agent.history import sql
from agent.history.tables import leases
from agent.samples import AGENT_CHECK_TYPE, CheckResult, Kind, Sample, Status, make_tags
from agent.tasks import cancel_and_wait

if TYPE_CHECKING:
    from agent.check import AgentCheck

__all__ = [
    "Lease",
    "LeaseRecord",
    "LeaderConfig",
    "LeaderElector",
    "SoloLeadership",
    "build_leadership",
]

log = logging.getLogger(__name__)


class LeaderConfig(BaseModel):
    """Leader election: which agent runs the `scope: cluster` checks when agents share a database."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lease_name: str = Field(
        "mlwarden-cluster",
        min_length=1,
        max_length=200,
        description="Name of the lease row; agents with the same name elect one leader.",
    )
    lease_duration: Duration = Field(
        15.0,
        gt=0,
        description="How long a lease lasts unless renewed; the bound on handover after the "
        "leader dies.",
    )
    renew_interval: Duration = Field(
        5.0,
        gt=0,
        description="How often the leader renews its lease and followers try to take it.",
    )

    @model_validator(mode="after")
    def _renew_within_lease(self) -> LeaderConfig:
        if self.renew_interval * 2 > self.lease_duration:
            raise ValueError(
                f"renew_interval ({self.renew_interval:g}s) must be at most half of "
                f"lease_duration ({self.lease_duration:g}s), so one lost renewal does not "
                "cost the lease; found a longer renew_interval"
            )
        return self


@dataclass(frozen=True)
class LeaseRecord:
    """The lease row as read in the same transaction as an attempt, with the database's now."""

    name: str
    holder: str
    expires_at: float
    renewed_at: float
    generation: int
    db_now: float

    @property
    def remaining(self) -> float:
        """Seconds until the lease expires, on the database's clock (negative: expired)."""
        return self.expires_at - self.db_now


def db_now(engine: Engine) -> ColumnElement[float]:
    """The database server's clock as epoch seconds: the one clock every agent agrees on."""
    now = sql.db_now(engine)
    if now is None:
        raise StoreError(f"agent.history: leader election for `scope: cluster` checks needs a "
                         f"PostgreSQL database to share (SQLite for one agent); "
                         f"{engine.url.get_backend_name()} is not supported")
    return now


class Lease:
    """One named lease for one holder; every method is blocking (call it off the loop)."""

    def __init__(self, engine: Engine, name: str, holder: str, duration: float) -> None:
        self.engine = engine
        self.name = name
        self.holder = holder
        self.duration = float(duration)
        self._now = db_now(engine)

    def ensure_table(self) -> None:
        """Create the ``leases`` table if missing (idempotent; safe when agents race on it)."""
        try:
            leases.create(self.engine, checkfirst=True)
        except SQLAlchemyError:
            # another agent created it between our check and our CREATE
            with self.engine.connect() as conn:
                if not self.engine.dialect.has_table(conn, leases.name):
                    raise

    def try_acquire(self) -> LeaseRecord:
        """Take the lease if it is free or expired, renew it if held; returns the row after."""
        now = self._now
        expiry = now + self.duration
        with self.engine.begin() as conn:
            conn.execute(
                sql.insert_ignore(self.engine, leases)
                .values(name=self.name, holder=self.holder, expires_at=expiry,
                        renewed_at=now, generation=1)
            )
            conn.execute(
                update(leases)
                .where(and_(leases.c.name == self.name,
                            or_(leases.c.holder == self.holder, leases.c.expires_at <= now)))
                .values(
                    holder=self.holder,
                    expires_at=expiry,
                    renewed_at=now,
                    generation=case((leases.c.holder == self.holder, leases.c.generation),
                                    else_=leases.c.generation + 1),
                )
            )
            return self._read(conn)

    def read(self) -> LeaseRecord | None:
        with self.engine.connect() as conn:
            return self._read(conn, missing_ok=True)

    def release(self) -> bool:
        """Give the lease up now (clean shutdown) so a follower need not wait for expiry."""
        with self.engine.begin() as conn:
            res = conn.execute(
                update(leases)
                .where(and_(leases.c.name == self.name, leases.c.holder == self.holder))
                .values(expires_at=self._now)
            )
            return bool(res.rowcount)

    def _read(self, conn: Any, missing_ok: bool = False) -> Any:
        row = conn.execute(
            select(leases, self._now.label("db_now")).where(leases.c.name == self.name)
        ).mappings().first()
        if row is None:
            if missing_ok:
                return None
            raise RuntimeError(f"lease {self.name!r} vanished while it was being taken")
        return LeaseRecord(name=row["name"], holder=row["holder"], expires_at=row["expires_at"],
                           renewed_at=row["renewed_at"], generation=int(row["generation"]),
                           db_now=float(row["db_now"]))


class LeaderElector:
    """Keeps trying to hold the lease; :meth:`gate` lets cluster checks run only on the leader.

    A component of the agent (start/stop/status). All database work runs on one dedicated
    thread so a slow database never blocks the event loop and attempts never pile up.
    """

    name = "leader"

    def __init__(
        self,
        engine: Engine,
        config: LeaderConfig,
        agent_name: str,
        *,
        owns_engine: bool = False,
        monotonic: Callable[[], float] = time.monotonic,
        candidate: Callable[[], bool] = lambda: True,
        on_elected: Callable[[], None] | None = None,
        submit: Callable[[CheckResult], None] | None = None,
    ) -> None:
        self.config = config
        self._submit = submit  # the pipeline: mlwarden.leader.* after every attempt
        self._on_elected = on_elected  # e.g. run the cluster checks now, not at their next slot
        # only agents that have cluster checks campaign: a sidecar must never win the lease
        # and leave the Airflow check unrun
        self._candidate = candidate
        self.agent_name = agent_name
        # unique per process: two agents misconfigured with one hostname still never share a lease
        self.identity = f"{agent_name}/{uuid.uuid4().hex[:8]}"
        self.lease = Lease(engine, config.lease_name, self.identity, config.lease_duration)
        self._owns_engine = owns_engine
        self._monotonic = monotonic
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlwarden-lease")
        self._task: asyncio.Task[None] | None = None
        self._valid_until = 0.0  # monotonic time until which this agent may act as leader
        self._record: LeaseRecord | None = None
        self._last_error: str | None = None
        self._leader_since: float | None = None
        self.transitions = 0

    # -- what the scheduler asks -------------------------------------------------------
    @property
    def is_leader(self) -> bool:
        return self._monotonic() < self._valid_until

    def gate(self, check: AgentCheck) -> str | None:
        """None when ``check`` may run here; otherwise why not (shown in /status)."""
        if check.config.scope != "cluster" or self.is_leader:
            return None
        holder = self._record.holder if self._record is not None else None
        if self._last_error and holder is None:
            return f"scope: cluster; no leader known (database: {self._last_error})"
        return f"scope: cluster; runs on the leader {holder or '(none yet)'}"

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        await self.attempt(first=True)
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="mlwarden-leader")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        if self.is_leader:
            self._valid_until = 0.0
            try:
                released = await self._blocking(self.lease.release)
                if released:
                    log.info("released the leader lease %r", self.config.lease_name)
            except (SQLAlchemyError, asyncio.TimeoutError) as exc:
                log.warning("could not release the leader lease %r (it expires in %gs): %s",
                            self.config.lease_name, self.config.lease_duration, _brief(exc))
        self._executor.shutdown(wait=False, cancel_futures=True)
        if self._owns_engine:
            self.lease.engine.dispose()

    def status(self) -> dict[str, Any]:
        rec = self._record
        leader = self.is_leader
        return {
            "enabled": True,
            "candidate": self._is_candidate(),
            "lease": self.config.lease_name,
            "identity": self.identity,
            "is_leader": leader,
            "leader": rec.holder if rec is not None and (leader or rec.remaining > 0) else None,
            "term": rec.generation if rec is not None else None,
            "leader_since": self._leader_since if leader else None,
            "lease_expires_in": round(rec.remaining, 3) if rec is not None else None,
            "lease_duration": self.config.lease_duration,
            "renew_interval": self.config.renew_interval,
            "transitions": self.transitions,
            "last_error": self._last_error,
        }

    # -- the loop ------------------------------------------------------------------------
    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._next_delay())
            await self.attempt()

    def _next_delay(self) -> float:
        renew = self.config.renew_interval
        rec = self._record
        if self.is_leader or rec is None or self._last_error:
            return renew
        # a follower wakes when the current lease runs out, if that is sooner than a renew
        return max(0.05, min(renew, rec.remaining + 0.05))

    async def attempt(self, first: bool = False) -> None:
        """Try once now to take or renew the lease (the loop calls this every few seconds)."""
        sent = self._monotonic()
        candidate = self._is_candidate()
        try:
            if first or self._last_error:
                await self._blocking(self.lease.ensure_table)
            if candidate:
                rec = await self._blocking(self.lease.try_acquire)
            else:
                if self.is_leader:  # its cluster checks were removed by a reload
                    self._valid_until = 0.0
                    await self._blocking(self.lease.release)
                rec = await self._blocking(self.lease.read)
        except (SQLAlchemyError, asyncio.TimeoutError, OSError) as exc:
            message = _brief(exc)
            if message != self._last_error:
                still = (f"; still leader for {self._valid_until - self._monotonic():.1f}s"
                         if self.is_leader else "")
                log.error("leader election: the database is unreachable (%s)%s; retrying every %gs",
                          message, still, self.config.renew_interval)
            self._last_error = message
            self._after(self.is_leader)
            self._report()
            return
        if self._last_error:
            log.info("leader election: the database answers again")
        self._last_error = None
        self._record = rec
        mine = candidate and rec is not None and rec.holder == self.identity
        self._valid_until = sent + self.config.lease_duration if mine else 0.0
        self._after(mine)
        self._report()

    def metrics(self, now: float) -> CheckResult:
        """Whether this agent leads, as samples: a fleet alerts on "no leader" or flapping."""
        tags = make_tags({"agent": self.agent_name, "lease": self.config.lease_name})
        samples = [
            Sample("mlwarden.leader.is_leader", 1.0 if self.is_leader else 0.0, tags, now),
            Sample("mlwarden.leader.transitions", float(self.transitions), tags, now,
                   Kind.MONOTONIC_COUNT),
        ]
        if self._last_error:
            status, message = Status.WARNING, f"leader election: {self._last_error}"
        else:
            status = Status.OK
            message = "leader" if self.is_leader else f"follower of {self.status()['leader']}"
        return CheckResult(check="leader", check_type=AGENT_CHECK_TYPE, status=status, message=message,
                           samples=samples, started=now, interval=self.config.renew_interval)

    def _report(self) -> None:
        if self._submit is None:
            return
        try:
            self._submit(self.metrics(time.time()))
        except Exception:  # noqa: BLE001 - metrics must never stop the election
            log.exception("leader election: could not submit its metrics")

    def _is_candidate(self) -> bool:
        try:
            return bool(self._candidate())
        except Exception:  # noqa: BLE001 - a broken predicate must not stop the loop
            log.exception("leader election: the candidacy check failed; campaigning anyway")
            return True

    def _after(self, leading: bool) -> None:
        was = self._leader_since is not None
        if leading and not was:
            self._leader_since = time.time()
            self.transitions += 1
            term = self._record.generation if self._record else "?"
            log.info("this agent (%s) is now the leader (lease %r, term %s); "
                     "cluster checks run here", self.identity, self.config.lease_name, term)
            if self._on_elected is not None:
                try:
                    self._on_elected()
                except Exception:  # noqa: BLE001 - leadership stands; the checks run on schedule
                    log.exception("leader election: starting the cluster checks early failed")
        elif not leading and was:
            self._leader_since = None
            self.transitions += 1
            holder = self._record.holder if self._record else "unknown"
            log.warning("this agent (%s) lost the leader lease %r to %s; cluster checks pause here",
                        self.identity, self.config.lease_name, holder)

    async def _blocking(self, fn: Callable[[], Any]) -> Any:
        # bounded: a hung connection costs one attempt, not the loop (the thread finishes later)
        future = asyncio.get_running_loop().run_in_executor(self._executor, fn)
        return await asyncio.wait_for(future, timeout=max(self.config.renew_interval, 1.0))


class SoloLeadership:
    """One agent per database (SQLite): this agent leads, every check runs locally."""

    name = "leader"

    def __init__(self, reason: str) -> None:
        self.reason = reason

    is_leader = True

    def gate(self, check: AgentCheck) -> str | None:
        return None

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def status(self) -> dict[str, Any]:
        return {"enabled": False, "is_leader": True, "reason": self.reason}


def build_leadership(
    history_url: str,
    config: LeaderConfig,
    agent_name: str,
    engine: Engine | None = None,
    candidate: Callable[[], bool] = lambda: True,
    on_elected: Callable[[], None] | None = None,
    submit: Callable[[CheckResult], None] | None = None,
) -> LeaderElector | SoloLeadership:
    """The leadership that fits the history store: an elector on PostgreSQL, solo on SQLite.

    Pass the store's ``engine`` to share its connection pool; without one an engine is made
    from ``history_url`` and owned (disposed) by the elector. ``candidate`` says whether this
    agent should campaign now (it has enabled ``scope: cluster`` checks); ``on_elected`` runs
    when it becomes the leader; ``submit`` receives the election's metrics.
    """
    from sqlalchemy.engine import make_url

    from agent.history.db import is_sqlite, make_engine
    from agent.secrets import register_secret

    password = make_url(history_url).password if "://" in history_url else None
    if password:  # a fleet's URL carries the database password: never log or show it
        register_secret(str(password))
    if is_sqlite(engine if engine is not None else history_url):
        return SoloLeadership("SQLite history: one agent per database, every check runs here")
    if engine is None:
        engine, owned = make_engine(history_url), True
    else:
        owned = False
    return LeaderElector(engine, config, agent_name, owns_engine=owned, candidate=candidate,
                         on_elected=on_elected, submit=submit)


def _brief(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "no answer within the renew interval"
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip().splitlines()
    return f"{type(orig or exc).__name__}: {text[0] if text else ''}"
