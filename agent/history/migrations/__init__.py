"""Alembic migrations of the history database, run by the store at start (``upgrade head``).

The daemon never calls ``metadata.create_all``: every table, shared ones included, is
created and changed by a revision here, so upgrading the agent never loses history.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import SQLAlchemyError

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = ["alembic_config", "upgrade", "current_revision", "head_revision", "HEAD"]

HERE = Path(__file__).resolve().parent
# The newest revision (a test keeps it equal to Alembic's head). A database already there
# is opened without importing Alembic at all, which keeps agent start-up short.
HEAD = "0006"


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
