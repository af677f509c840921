"""Backends for the store tests: every test runs on SQLite and on the real PostgreSQL.

PostgreSQL is the server on 127.0.0.1:5432 (trust auth, database ``test``); each test gets
its own schema (through the connection's ``search_path``), dropped afterwards. A missing
server fails the test with how to reach one; it never skips.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from agent.history.config import HistoryConfig

PG_BASE = os.environ.get("MLWARDEN_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _pg_admin():  # type: ignore[no-untyped-def]
    import psycopg

    dsn = PG_BASE.replace("postgresql+psycopg://", "postgresql://")
    try:
        return psycopg.connect(dsn, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {dsn} ({exc}); the store tests need the "
                    "server on 127.0.0.1:5432 with database `test` (or set MLWARDEN_TEST_PG)",
                    pytrace=False)


@pytest.fixture
def pg_url() -> Iterator[str]:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with _pg_admin() as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{PG_BASE}?options=-csearch_path%3D{schema}"
    finally:
        with _pg_admin() as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'history.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request) -> str:
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


@pytest.fixture
def fast_config() -> HistoryConfig:
    return HistoryConfig(batch_interval=0.05, maintenance_interval=3600, rollup_delay=0)
