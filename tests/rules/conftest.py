"""Databases for the alert-state tests: SQLite files and a private schema on the local
PostgreSQL (127.0.0.1:5432, database `test`), so the same contract runs on both."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text

from agent.history.db import create_schema, make_engine

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.fixture
def sqlite_engine(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'mlwarden.db'}")
    create_schema(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def pg_engine():
    schema = f"rules_{uuid.uuid4().hex[:12]}"
    admin = make_engine(PG_URL)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:  # noqa: BLE001 - say what is missing, never skip
        pytest.fail(f"PostgreSQL on 127.0.0.1:5432 (database test) is needed: {exc}", pytrace=False)
    engine = make_engine(PG_URL, connect_args={"options": f"-csearch_path={schema}"})
    create_schema(engine)
    yield engine
    engine.dispose()
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_engine(request):
    return request.getfixturevalue(f"{'sqlite' if request.param == 'sqlite' else 'pg'}_engine")
