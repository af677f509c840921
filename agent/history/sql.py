"""The few SQL constructs whose spelling differs between SQLite and PostgreSQL.

Everything else is plain SQLAlchemy Core; these keep the dialect branches in one place.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Double, Engine, Table, cast, func, literal_column
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement, FunctionElement

__all__ = ["bucket_floor", "db_now", "insert_ignore", "upsert"]


class bucket_floor(FunctionElement[float]):  # noqa: N801 - reads like a SQL function
    """``floor(x / size) * size``: the start of the bucket a timestamp falls in."""

    type = Double()
    inherit_cache = True

    def __init__(self, expr: ColumnElement[Any], size: int) -> None:
        super().__init__(expr)
        self.size = int(size)


@compiles(bucket_floor)
def _bucket_default(element: bucket_floor, compiler: Any, **kw: Any) -> str:
    (arg,) = element.clauses
    return f"(floor({compiler.process(arg, **kw)} / {element.size}) * {element.size})"


@compiles(bucket_floor, "sqlite")
def _bucket_sqlite(element: bucket_floor, compiler: Any, **kw: Any) -> str:
    # SQLite may lack floor(); CAST truncates toward zero, which is floor for epoch times (> 0)
    (arg,) = element.clauses
    return f"(CAST({compiler.process(arg, **kw)} / {element.size} AS INTEGER) * {element.size})"


def _insert(engine: Engine | str, table: Table) -> Any:
    name = engine if isinstance(engine, str) else engine.dialect.name
    if name == "sqlite":
        return sqlite.insert(table)
    # imported here: the PostgreSQL dialect package (and every driver dialect in it) costs
    # an agent on SQLite ~1 MiB of memory for nothing
    from sqlalchemy.dialects import postgresql

    return postgresql.insert(table)


def insert_ignore(engine: Engine | str, table: Table) -> Any:
    """INSERT that skips rows whose primary key or unique key already exists (``engine``:
    the engine, or its dialect's name)."""
    return _insert(engine, table).on_conflict_do_nothing()


def upsert(engine: Engine, table: Table, keys: list[str], update: list[str]) -> Any:
    """INSERT that replaces ``update`` columns of an existing row with the new values."""
    stmt = _insert(engine, table)
    return stmt.on_conflict_do_update(
        index_elements=keys, set_={c: stmt.excluded[c] for c in update})


def db_now(engine: Engine) -> ColumnElement[float] | None:
    """The database server's clock as epoch seconds, read inside the statement (the one
    clock agents sharing a database agree on); None for a backend other than these two."""
    backend = engine.url.get_backend_name()
    if backend == "postgresql":
        return cast(func.extract("epoch", func.clock_timestamp()), Double)
    if backend == "sqlite":
        return literal_column("((julianday('now') - 2440587.5) * 86400.0)", Double)
    return None
