"""Maintenance costs what changed, not what is stored, and still misses nothing (both backends).

Statements are counted at the driver (each parameter set of an executemany counts: SQLite
runs them one by one), so these tests see what the database is asked to do.
"""

from __future__ import annotations

import contextlib

from sqlalchemy import event, func, select

from agent.history.config import HistoryConfig, RetentionConfig
from agent.history.store import HistoryStore
from agent.history.tables import rollup_1m, samples

from .helpers import NOW, result_of, sample


@contextlib.contextmanager
def counting(engine):
    """Statements sent to the driver, as (first word + table, parameter sets)."""
    seen: list[str] = []

    def before(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        n = len(parameters) if executemany else 1
        seen.extend([" ".join(statement.split()[:3])] * n)

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", before)


def _store(url: str, **config) -> HistoryStore:
    store = HistoryStore(url, HistoryConfig(batch_interval=0.05, maintenance_interval=3600,
                                            **config))
    store.start_blocking()
    return store


def _fill(store: HistoryStore, n_series: int, times: list[float]) -> None:
    store.consume(result_of(*[sample("mlwarden.m", i, t, s=str(i))
                              for i in range(n_series) for t in times]))
    assert store.flush(60)


def _idle_pass_statements(url: str, n_series: int) -> list[str]:
    """Statements of a pass with nothing to fold (data newer than the delay) or delete."""
    store = _store(url, rollup_delay=300)
    try:
        _fill(store, n_series, [NOW - 60, NOW - 30])
        store.run_maintenance(NOW)  # reads the floors once
        with counting(store.engine) as seen:
            store.run_maintenance(NOW + 60)
        with store.engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(rollup_1m)).scalar_one() == 0
        return seen
    finally:
        store.stop_blocking()


def test_a_pass_with_nothing_to_do_does_not_visit_the_series(db_url):
    # before: one min() per series per pass until the first rollup could start, and one
    # DELETE per series per table per pass
    few = _idle_pass_statements(db_url, 5)
    many = _idle_pass_statements(db_url, 600)
    assert len(many) == len(few) <= 8, many


def test_a_pass_with_work_issues_a_statement_per_chunk_of_series(db_url):
    retention = RetentionConfig(raw=600, minute=7200, hour=86400)
    store = _store(db_url, rollup_delay=0, maintenance_chunk=100, retention=retention)
    try:
        _fill(store, 450, [NOW - 900 + 20 * k for k in range(30)])  # 10 minutes, 15 min ago
        with counting(store.engine) as seen:
            store.run_maintenance(NOW)
        inserts = [s for s in seen if s.startswith("INSERT INTO rollup_1m")]
        deletes = [s for s in seen if s.startswith("DELETE FROM samples")]
        assert len(inserts) == 5, seen  # one window of 1m, 450 series in chunks of 100
        assert len(deletes) == 5, seen
        assert len(seen) < 40, seen
        with store.engine.connect() as conn:
            oldest = conn.execute(select(func.min(samples.c.ts))).scalar_one()
            buckets = conn.execute(select(func.count()).select_from(rollup_1m)).scalar_one()
        assert oldest == NOW - 600  # everything older than raw retention went, nothing else
        assert buckets == 450 * 10
        with counting(store.engine) as again:  # the same cutoff: nothing left to delete
            store.run_maintenance(NOW)
        assert not [s for s in again if s.startswith("DELETE")], again
    finally:
        store.stop_blocking()


def test_samples_older_than_what_was_stored_at_the_first_pass_are_still_folded(db_url):
    store = _store(db_url, rollup_delay=0)
    try:
        _fill(store, 3, [NOW - 300, NOW - 290])
        store.run_maintenance(NOW - 600)  # nothing complete yet; the floor is read now
        _fill(store, 3, [NOW - 1800, NOW - 1790])  # late, older samples through the writer
        store.run_maintenance(NOW)
        with store.engine.connect() as conn:
            buckets = sorted(set(conn.execute(select(rollup_1m.c.bucket)).scalars()))
        assert buckets == [NOW - 1800, NOW - 300]
    finally:
        store.stop_blocking()
