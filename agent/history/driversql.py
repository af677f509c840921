"""Core statements compiled once for an engine's dialect and run on the driver's own cursor.

Running an already-compiled, cached Core statement through a SQLAlchemy ``Connection``
(the connection object, the execution context, the parameter dict, the result object)
still costs several times what SQLite takes to run a one-row statement. On the outbox's
path (one take a message: an UPDATE, a SELECT, a claiming UPDATE, and the commit) that
overhead was most of the take. Here the same statements, compiled by SQLAlchemy for the
engine's dialect (SQLite or PostgreSQL: the SQL text, the parameter order, the statement's
own literal values, the dialect's bind processors), run on a pooled DBAPI connection, and
the driver's errors are raised as SQLAlchemy's (``IntegrityError``, ``OperationalError``,
...; a lost connection is invalidated), so callers see what they saw through a
``Connection``. An engine's ``schema_translate_map`` is compiled into the SQL; other
execution options are refused (:func:`schema_map`). Only statements whose columns need no
type processing on the way back (ints, floats, strings: the outbox's columns) belong here.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError

__all__ = ["DriverStatement", "DriverTransaction", "driver_transaction", "schema_map"]

# the engine execution options these statements honour (compiled in): anything else an
# engine was given (an isolation level, ...) only a SQLAlchemy Connection applies
_HONOURED = frozenset({"schema_translate_map"})


def schema_map(engine: Engine) -> tuple[tuple[str | None, str | None], ...]:
    """The engine's ``schema_translate_map`` (one schema per tenant or test) as a hashable
    key for compiled statements; ValueError for an execution option this path cannot honour."""
    options = engine.get_execution_options()
    other = sorted(set(options) - _HONOURED)
    if other:
        raise ValueError(f"driver statements cannot honour the engine's execution options {other}")
    return tuple((options.get("schema_translate_map") or {}).items())


class DriverStatement:
    """One Core statement compiled for one dialect: the driver's SQL and how to bind it."""

    __slots__ = ("sql", "_names", "_defaults", "_processors")

    def __init__(self, statement: Any, dialect: Dialect, column_keys: list[str] | None = None,
                 schema_translate_map: Mapping[str | None, str | None] | None = None) -> None:
        translate: dict[str, Any] = (
            {"schema_translate_map": dict(schema_translate_map), "render_schema_translate": True}
            if schema_translate_map else {})
        compiled = statement.compile(dialect=dialect, column_keys=column_keys, **translate)
        if "POSTCOMPILE" in compiled.string:  # rendered per execution: not for this path
            raise ValueError(f"statement needs per-execution rendering: {compiled.string!r}")
        self.sql: str = compiled.string
        # positional drivers (SQLite's qmark) take a tuple in this order (a name repeats
        # where the statement uses it twice); named ones (psycopg's pyformat) a dict
        self._names = tuple(compiled.positiontup) if dialect.positional else None
        self._defaults = dict(compiled.params)  # the statement's literal values
        processors: dict[str, Callable[[Any], Any]] = {}
        for bind, name in compiled.bind_names.items():
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if process is not None:
                processors[name] = process
        self._processors = tuple(processors.items())

    def params(self, values: Mapping[str, Any]) -> Any:
        """The driver's parameters for ``values`` (by bind name) over the literal ones."""
        merged = {**self._defaults, **values}
        for name, process in self._processors:
            value = merged[name]
            if value is not None:
                merged[name] = process(value)
        if self._names is None:
            return merged
        return tuple([merged[name] for name in self._names])


class DriverTransaction:
    """Statements on one DBAPI cursor inside one transaction (see :func:`driver_transaction`)."""

    __slots__ = ("cursor", "_last")

    def __init__(self, cursor: Any) -> None:
        self.cursor = cursor
        self._last: tuple[str, Any] | None = None  # for the error of a failed statement

    def execute(self, statement: DriverStatement, values: Mapping[str, Any]) -> Any:
        """Run ``statement`` with ``values``; returns the cursor (``fetchone``, ``rowcount``,
        ``lastrowid``)."""
        params = statement.params(values)
        self._last = (statement.sql, params)
        self.cursor.execute(statement.sql, params)
        return self.cursor


@contextmanager
def driver_transaction(engine: Engine) -> Iterator[DriverTransaction]:
    """A pooled connection's driver cursor in one transaction, committed when the block
    ends and rolled back if it raises. The driver's errors come out as SQLAlchemy's."""
    dialect = engine.dialect
    dbapi_error = dialect.loaded_dbapi.Error
    conn = engine.raw_connection()
    cursor = None
    txn: DriverTransaction | None = None
    try:
        cursor = conn.cursor()
        txn = DriverTransaction(cursor)
        yield txn
        txn._last = ("COMMIT", ())
        conn.commit()
    except dbapi_error as exc:
        invalidated = _disconnected(dialect, exc, conn, cursor)
        if not invalidated:
            _rollback(conn)
        statement, params = txn._last if txn is not None and txn._last else ("", ())
        raise DBAPIError.instance(
            statement, params, exc, dbapi_error, connection_invalidated=invalidated,
            dialect=dialect).with_traceback(sys.exc_info()[2]) from exc
    except BaseException:
        _rollback(conn)
        raise
    finally:
        if cursor is not None:
            try:
                cursor.close()
            except Exception:  # noqa: BLE001 - closing a cursor of a dead connection
                pass
        conn.close()  # back to the pool


def _disconnected(dialect: Dialect, exc: Exception, conn: Any, cursor: Any) -> bool:
    """Whether ``exc`` means the connection is gone; then it is invalidated (not pooled)."""
    if not dialect.is_disconnect(exc, conn.dbapi_connection, cursor):
        return False
    conn.invalidate(exc)
    return True


def _rollback(conn: Any) -> None:
    try:
        conn.rollback()
    except Exception:  # noqa: BLE001 - the statement's own error is the one to raise
        conn.invalidate()
