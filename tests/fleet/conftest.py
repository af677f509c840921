"""Fixtures for the fleet tests: a fresh PostgreSQL database per test on the real server.

PostgreSQL runs on 127.0.0.1:5432 (trust auth). Each test gets its own database, created
from the ``test`` database and dropped afterwards, so agents in different tests never
share a lease or an outbox.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

PG_ADMIN = os.environ.get("MLWARDEN_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def _admin_connect():  # type: ignore[no-untyped-def]
    import psycopg

    try:
        return psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN} ({exc}); the fleet tests need the "
                    "real server (start it, or set MLWARDEN_TEST_PG)", pytrace=False)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A SQLAlchemy URL of an empty database that exists for this test only."""
    name = f"mlw_fleet_{uuid.uuid4().hex[:12]}"
    with _admin_connect() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        with _admin_connect() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_engine(pg_url: str) -> Iterator:
    from agent.history.db import create_schema, make_engine

    engine = make_engine(pg_url)
    create_schema(engine)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def live_agent(tmp_path_factory):  # type: ignore[no-untyped-def]
    """A real `mlwarden run` process on a free loopback port (SQLite history): (proc, port)."""
    import json
    import sys
    from pathlib import Path

    from tests.support.procs import Proc, free_port, wait_http

    tmp = tmp_path_factory.mktemp("live-agent")
    port = free_port()
    config = tmp / "mlwarden.yaml"
    config.write_text(json.dumps({"agent": {"history": f"sqlite:///{tmp}/history.db",
                                            "listen": f"127.0.0.1:{port}", "log_format": "text"}}))
    exe = Path(sys.executable).with_name("mlwarden")
    proc = Proc("live-agent", [str(exe), "run", "-c", str(config)], log_dir=tmp, cwd=tmp)
    proc.start()
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", timeout=60, proc=proc)
        yield proc, port
    finally:
        proc.stop(timeout=10)
