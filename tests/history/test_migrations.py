"""Alembic is the only way the schema is made: upgrade head must equal the metadata."""

from __future__ import annotations

import subprocess
import sys

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
import pytest
from sqlalchemy import inspect, select, text

from agent.history import migrations
from agent.errors import StoreError
from agent.history.db import create_schema, make_engine
from agent.history.tables import check_state, metadata


def test_upgrade_head_matches_metadata(db_url):
    engine = make_engine(db_url)
    try:
        migrations.upgrade(engine)
        with engine.connect() as conn:
            diffs = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}),
                                     metadata)
            tables = set(inspect(conn).get_table_names())
        assert diffs == []
        assert set(metadata.tables) <= tables
        assert migrations.current_revision(engine) == migrations.head_revision()
    finally:
        engine.dispose()


def test_upgrade_again_keeps_every_row(db_url):
    engine = make_engine(db_url)
    try:
        migrations.upgrade(engine)
        with engine.begin() as conn:
            conn.execute(check_state.insert().values(check_name="c", key="k", value="1", updated_at=1.0))
        migrations.upgrade(engine)  # a restart of the agent runs it again
        with engine.connect() as conn:
            assert conn.execute(select(check_state.c.value)).scalars().all() == ["1"]
    finally:
        engine.dispose()


def test_sqlite_history_tables_have_no_rowid(sqlite_url):
    # the WITHOUT ROWID layout is half the bytes of a rowid table + index; the migration
    # must create it, not only the metadata
    engine = make_engine(sqlite_url)
    try:
        migrations.upgrade(engine)
        with engine.connect() as conn:
            for table in ("samples", "rollup_1m", "rollup_1h"):
                sql = conn.execute(text("SELECT sql FROM sqlite_master WHERE name = :n"),
                                   {"n": table}).scalar_one()
                assert "WITHOUT ROWID" in sql, table
            assert conn.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
    finally:
        engine.dispose()


def test_a_database_made_by_create_all_is_adopted_not_recreated(db_url):
    # what agents and CLI commands did before migrations existed
    engine = make_engine(db_url)
    try:
        metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(check_state.insert().values(check_name="c", key="k", value="2", updated_at=1.0))
        migrations.upgrade(engine)
        assert migrations.current_revision(engine) == migrations.head_revision()
        with engine.connect() as conn:
            assert conn.execute(select(check_state.c.value)).scalars().all() == ["2"]
    finally:
        engine.dispose()


def test_a_partial_unversioned_schema_is_refused_with_a_reason(sqlite_url):
    engine = make_engine(sqlite_url)
    try:
        check_state.create(engine)
        with pytest.raises(StoreError, match=r"holds some of the agent's tables \(check_state\) "
                                             "but no schema revision"):
            migrations.upgrade(engine)
    finally:
        engine.dispose()


def test_create_schema_is_the_migration(sqlite_url):
    engine = make_engine(sqlite_url)
    try:
        create_schema(engine)
        assert migrations.current_revision(engine) == migrations.head_revision()
    finally:
        engine.dispose()


def test_the_fast_path_head_constant_is_alembics_head():
    # the store skips importing Alembic when the database is already at HEAD
    assert migrations.HEAD == migrations.head_revision()


_DAEMON_START = """
import sys
from agent.history import migrations
from agent.history.db import make_engine
child = migrations.start_upgrade_child(sys.argv[1])
assert child is not None, "a new file is behind head: a child must migrate it"
migrations.finish_upgrade_child(child)
assert child.returncode == 0, child.returncode
engine = make_engine(sys.argv[1])
assert migrations._stamped_revision(engine) == migrations.HEAD
assert migrations.start_upgrade_child(sys.argv[1]) is None, "at head: nothing to start"
leaked = sorted(m for m in sys.modules if m.split(".")[0] in ("alembic", "mako", "pygments"))
assert not leaked, leaked
print("ok")
"""


def test_mlwarden_run_migrates_a_new_sqlite_file_in_a_child_without_importing_alembic(sqlite_url):
    # `mlwarden run`'s start: a process that imported Alembic keeps ~10 MiB for good
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _DAEMON_START, sqlite_url],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
    engine = make_engine(sqlite_url)
    try:
        assert migrations.current_revision(engine) == migrations.head_revision()
        assert set(metadata.tables) <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_the_upgrade_child_leaves_memory_databases_and_postgresql_to_the_store(tmp_path):
    assert migrations.start_upgrade_child("sqlite://") is None
    assert migrations.start_upgrade_child("sqlite:///:memory:") is None
    assert migrations.start_upgrade_child("postgresql+psycopg://u@127.0.0.1:1/db") is None
    assert migrations.start_upgrade_child("not a url") is None
    migrations.finish_upgrade_child(None)  # nothing started: nothing to wait for


def test_a_failed_upgrade_child_leaves_the_error_to_the_store(tmp_path, caplog):
    # a file whose tables are partly there without a revision: the child fails, and the
    # store's own upgrade then refuses it with the reason (as without the child)
    url = f"sqlite:///{tmp_path / 'h.db'}"
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE samples (x INTEGER)"))
        child = migrations.start_upgrade_child(url)
        assert child is not None
        with caplog.at_level("DEBUG", logger="agent.history.migrations"):
            migrations.finish_upgrade_child(child)
        assert child.returncode != 0
        assert "no schema revision" in caplog.text
        with pytest.raises(StoreError, match="no schema revision"):
            migrations.upgrade(engine)
    finally:
        engine.dispose()


def test_a_stuck_upgrade_child_is_stopped_and_left_to_the_store(caplog):
    # start-up must not hang on the child (a hung filesystem, say): past the timeout it is
    # killed and the store migrates in the agent's process, as without the child
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                             stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        with caplog.at_level("WARNING", logger="agent.history.migrations"):
            migrations.finish_upgrade_child(child, timeout=0.5)
        assert child.poll() is not None, "the child was left running"
        assert "still running after 0.5s" in caplog.text
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
