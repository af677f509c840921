"""Engines for the history database: SQLite tuned for one writer, or PostgreSQL by URL.

SQLite runs in WAL mode with ``synchronous=NORMAL`` (a crash loses at most the last
transactions, never the file) and a busy timeout, so readers (CLI, /status) never block
the writer for long.
"""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from agent.errors import StoreError
from agent.install import extra_hint

__all__ = ["make_engine", "create_schema", "is_sqlite"]

log = logging.getLogger(__name__)
BUSY_TIMEOUT_MS = 5000


def is_sqlite(engine_or_url: Engine | str) -> bool:
    url = engine_or_url.url if isinstance(engine_or_url, Engine) else make_url(engine_or_url)
    return url.get_backend_name() == "sqlite"


def make_engine(url: str, **kwargs: object) -> Engine:
    """An Engine for ``url``; StoreError naming the URL (without password) when it is unusable."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError(f"agent.history: {url!r} is not a SQLAlchemy URL "
                         "(e.g. sqlite:///mlwarden.db or postgresql+psycopg://user@host/db)") from None
    shown = parsed.render_as_string(hide_password=True)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            parent = Path(parsed.database).expanduser().resolve().parent
            if not parent.is_dir():
                raise StoreError(f"agent.history: directory {parent} for {shown} does not exist")
        engine = create_engine(parsed, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000}, **kwargs)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    try:
        return create_engine(parsed, pool_pre_ping=True, **kwargs)
    except ImportError as exc:
        raise StoreError(f"agent.history: the driver for {shown} is not installed ({exc}); "
                         f"for PostgreSQL, {extra_hint('postgres')}") from None


def create_schema(engine: Engine) -> None:
    """Bring the database to the current schema (Alembic ``upgrade head``), as the store does.

    Never ``metadata.create_all``: a schema made that way has no Alembic revision, and
    every later upgrade would have to guess what it holds.
    """
    from agent.history import migrations

    migrations.upgrade(engine)
