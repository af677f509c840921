"""Alembic migrations of the history database, run by the store at start (``upgrade head``).

The daemon never calls ``metadata.create_all``: every table, shared ones included, is
created and changed by a revision here, so upgrading the agent never loses history.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import SQLAlchemyError

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = ["alembic_config", "upgrade", "current_revision", "head_revision", "HEAD",
           "start_upgrade_child", "finish_upgrade_child"]

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
# The newest revision (a test keeps it equal to Alembic's head). A database already there
# is opened without importing Alembic at all, which keeps agent start-up short.
HEAD = "0006"
# how long `mlwarden run` waits for the migration child before migrating itself
CHILD_TIMEOUT = 600.0


def alembic_config(engine: Engine | None = None) -> Config:
    """An Alembic config pointing at these migrations (no alembic.ini needed)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(HERE))
    if engine is not None:
        config.attributes["engine"] = engine
    return config


# the tables of the first revision: a database holding all of them but no Alembic revision
# was made by ``metadata.create_all`` (agents before migrations existed) and is adopted
BASELINE = "0001"
BASELINE_TABLES = frozenset({
    "alert_transitions", "alerts", "check_state", "leases", "outbox", "rollup_1h", "rollup_1m",
    "rollup_progress", "samples", "series", "silences",
})


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database at ``engine`` up to ``revision`` (blocking)."""
    if revision == "head" and _stamped_revision(engine) == HEAD:
        return
    from alembic import command

    config = alembic_config(engine)
    if current_revision(engine) is None:
        present = set(inspect(engine).get_table_names()) & BASELINE_TABLES
        if present == BASELINE_TABLES:
            command.stamp(config, BASELINE)
        elif present:
            from agent.errors import StoreError

            raise StoreError(
                f"the database holds some of the agent's tables ({', '.join(sorted(present))}) "
                "but no schema revision, so it cannot be upgraded safely; point agent.history "
                "at a new database, or drop those tables")
    command.upgrade(config, revision)


def _stamped_revision(engine: Engine) -> str | None:
    """The revision in ``alembic_version`` read with plain SQL (None when there is none)."""
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT version_num FROM alembic_version")).all()
    except SQLAlchemyError:
        return None
    return rows[0][0] if len(rows) == 1 else None


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def start_upgrade_child(url: str) -> subprocess.Popen[bytes] | None:
    """Start ``upgrade head`` of the SQLite file at ``url`` in a child process, when its
    schema is behind (a new file, an agent upgrade); None when there is nothing to do.

    For the daemon (`mlwarden run`): Alembic, with Mako, Pygments and SQLAlchemy's
    PostgreSQL dialects it imports, costs ~10 MiB of RSS that a process keeps for its
    whole life, for a migration done once (``benchmarks/agent_scale.py``, "RSS per
    check"). The child is only a head start: whatever it did not do (it failed, it could
    not start), the store does at start as before, with the errors it always gave.
    PostgreSQL is left to the store: a fleet's database is usually at head already, which
    the store sees without Alembic.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from agent.history.db import make_engine

    try:
        parsed = make_url(url)
    except ArgumentError:
        return None  # the store says what is wrong with it
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:") \
            or parsed.query.get("mode") == "memory":
        return None
    try:
        engine = make_engine(url)
    except Exception:  # noqa: BLE001 - the store reports it, with its own words
        return None
    try:
        if _stamped_revision(engine) == HEAD:
            return None
    finally:
        engine.dispose()
    import agent

    root = str(Path(agent.__file__).resolve().parents[1])  # where this agent is imported from
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (root, os.environ.get("PYTHONPATH"))))}
    try:
        child = subprocess.Popen([sys.executable, "-m", "agent.history.migrations"], env=env,
                                 stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE)
    except OSError as exc:
        log.debug("schema migration in a child process not started: %s", exc)
        return None
    assert child.stdin is not None
    try:
        child.stdin.write(parsed.render_as_string(hide_password=False).encode())
        child.stdin.close()
    except OSError:
        pass  # the child died at once: finish_upgrade_child says so
    child.stdin = None  # sent and closed: nothing for communicate() to flush
    return child


def finish_upgrade_child(child: subprocess.Popen[bytes] | None,
                         timeout: float = CHILD_TIMEOUT) -> None:
    """Wait for :func:`start_upgrade_child`'s child, at most ``timeout`` seconds (then it is
    stopped); a failure is only logged: the store then migrates in this process and reports
    any error as it always did."""
    if child is None:
        return
    try:
        _, err = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        child.kill()  # SQLite rolls its transaction back: the store starts from where it was
        child.communicate()
        log.warning("schema migration in a child process still running after %gs: stopped; "
                    "migrating in the agent's process instead", timeout)
        return
    if child.returncode != 0:
        lines = (err or b"").decode(errors="replace").strip().splitlines()
        log.debug("schema migration in a child process failed (exit %s): %s", child.returncode,
                  lines[-1] if lines else "")


def _child_main() -> int:
    """``python -m agent.history.migrations``: upgrade head the database whose URL is on stdin."""
    from agent.history.db import make_engine

    engine = make_engine(sys.stdin.read().strip())
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    return 0
