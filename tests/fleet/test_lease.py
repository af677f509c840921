"""The lease's compare-and-set on the real PostgreSQL: one holder, takeover after expiry,
renewal, release, races between agents, and the database clock as the only clock."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import select, update

from agent.history.db import make_engine
from agent.history.tables import leases
from agent.leader import Lease

pytestmark = pytest.mark.integration


def test_first_agent_takes_the_free_lease_and_others_see_it(pg_engine):
    a = Lease(pg_engine, "cluster", "agent-a", duration=30)
    b = Lease(pg_engine, "cluster", "agent-b", duration=30)
    first = a.try_acquire()
    assert (first.holder, first.generation) == ("agent-a", 1)
    assert 29 < first.remaining <= 30
    seen_by_b = b.try_acquire()
    assert seen_by_b.holder == "agent-a"
    assert seen_by_b.generation == 1


def test_renewal_extends_the_lease_without_a_new_term(pg_engine):
    a = Lease(pg_engine, "cluster", "agent-a", duration=30)
    one = a.try_acquire()
    time.sleep(0.05)
    two = a.try_acquire()
    assert two.holder == "agent-a" and two.generation == one.generation
    assert two.expires_at > one.expires_at and two.renewed_at > one.renewed_at


def test_an_expired_lease_goes_to_the_next_agent_with_a_new_term(pg_engine):
    a = Lease(pg_engine, "cluster", "agent-a", duration=0.3)
    b = Lease(pg_engine, "cluster", "agent-b", duration=0.3)
    a.try_acquire()
    assert b.try_acquire().holder == "agent-a"
    time.sleep(0.4)
    taken = b.try_acquire()
    assert (taken.holder, taken.generation) == ("agent-b", 2)
    # the old leader's renewal is a compare-and-set on the holder: it fails now
    assert a.try_acquire().holder == "agent-b"


def test_release_hands_the_lease_over_without_waiting(pg_engine):
    a = Lease(pg_engine, "cluster", "agent-a", duration=60)
    b = Lease(pg_engine, "cluster", "agent-b", duration=60)
    a.try_acquire()
    assert b.release() is False  # not b's to release
    assert a.release() is True
    assert b.try_acquire().holder == "agent-b"


def test_leases_with_other_names_are_independent(pg_engine):
    a = Lease(pg_engine, "airflow", "agent-a", duration=60)
    b = Lease(pg_engine, "dcgm", "agent-b", duration=60)
    assert a.try_acquire().holder == "agent-a"
    assert b.try_acquire().holder == "agent-b"


def test_racing_agents_on_separate_connections_elect_exactly_one(pg_url, pg_engine):
    """Six agents, each with its own engine, hit a free (then expired) lease at once."""
    engines = [make_engine(pg_url) for _ in range(6)]
    try:
        contenders = [Lease(e, "cluster", f"agent-{i}", duration=0.5) for i, e in enumerate(engines)]
        for c in contenders:  # warm the pools so the threads start together
            c.read()
        generation = 0
        for round_no in range(3):
            barrier = threading.Barrier(len(contenders))
            results: dict[str, str] = {}

            def attempt(c: Lease) -> None:
                barrier.wait(timeout=10)
                results[c.holder] = c.try_acquire().holder

            threads = [threading.Thread(target=attempt, args=(c,)) for c in contenders]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=20)
            winners = set(results.values())
            assert len(results) == len(contenders)
            assert len(winners) == 1, f"round {round_no}: several holders {winners}"
            with pg_engine.connect() as conn:
                row = conn.execute(select(leases)).mappings().one()
            assert row["holder"] in winners
            # a new holder bumps the generation; the old holder re-taking its own expired lease
            # (possible when this loaded machine delays the other threads) may count as a renewal
            assert row["generation"] in (generation, generation + 1), row
            assert round_no > 0 or row["generation"] == 1
            generation = row["generation"]
            time.sleep(0.6)  # let it expire for the next round
    finally:
        for e in engines:
            e.dispose()


def test_agent_wall_clocks_do_not_matter(pg_engine, monkeypatch):
    """An agent whose clock runs an hour ahead cannot steal a live lease, and one whose clock
    runs an hour behind cannot keep an expired one: only the database's clock counts."""
    a = Lease(pg_engine, "cluster", "agent-a", duration=0.5)
    b = Lease(pg_engine, "cluster", "agent-b", duration=0.5)
    a.try_acquire()
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 3600)
    assert b.try_acquire().holder == "agent-a"
    monkeypatch.setattr(time, "time", lambda: real() - 3600)
    time.sleep(0.6)
    assert b.try_acquire().holder == "agent-b"


def test_the_lease_row_is_stamped_with_the_database_clock(pg_engine):
    """Shift the row's expiry by the database's own arithmetic: only that decides."""
    a = Lease(pg_engine, "cluster", "agent-a", duration=60)
    b = Lease(pg_engine, "cluster", "agent-b", duration=60)
    rec = a.try_acquire()
    with pg_engine.begin() as conn:
        conn.execute(update(leases).values(expires_at=rec.db_now - 0.001))
    assert b.try_acquire().holder == "agent-b"


def test_ensure_table_creates_the_leases_table_once(pg_url):
    engine = make_engine(pg_url)
    try:
        lease = Lease(engine, "cluster", "agent-a", duration=5)
        lease.ensure_table()
        lease.ensure_table()
        assert lease.try_acquire().holder == "agent-a"
    finally:
        engine.dispose()
