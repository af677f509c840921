"""The history database in trouble, under the real daemon: locked by another process,
on a read-only filesystem, and on a full disk.

Read-only and full disk use a real tmpfs mounted for the test (the tests run as root in
CI; ``mount`` works here). File modes are no use for "read-only" as root, who ignores them,
so the filesystem itself is made read-only. After each fault: the agent is running, /status
(``components.history``) and the log say what is wrong, and every sample the store accepted
(not shed) is in the database once the fault is gone.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import sys

from tests.faults.daemon import RUNNER, Daemon
from tests.support.procs import Proc
from tests.support.procs import wait_for

pytestmark = pytest.mark.integration

CONFIG = """
agent:
  listen: 127.0.0.1:{port}
  history: sqlite:///{db}
  self_check_interval: 1s
  log_format: json
history:
  batch_interval: 200ms
checks:
  - {{type: test_fast, name: fast, interval: 300ms}}
"""


def history(agent: Daemon) -> dict:
    return agent.status()["components"]["history"]


def persisted_runs(db: Path) -> int:
    """Rows of the fast check's status metric: one per run that reached the database."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)) as conn:
        return conn.execute(
            "SELECT count(*) FROM samples JOIN series ON series.id = samples.series_id "
            "WHERE series.metric = 'mlwarden.check.status' AND series.tags LIKE '%\"check\":\"fast\"%'"
        ).fetchone()[0]


def assert_nothing_lost(agent: Daemon) -> None:
    """Every run the agent made up to now reaches the database, and nothing was shed."""
    runs = agent.check("fast")["runs"]
    wait_for(lambda: persisted_runs(agent.db) >= runs, 30, what=f"{runs} runs of `fast` in the database")
    assert history(agent)["dropped"] == 0


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir()
    out = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                         capture_output=True, text=True)
    assert out.returncode == 0, f"cannot mount a tmpfs (these tests run as root): {out.stderr}"
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_database_locked_by_another_process(tmp_path):
    with Daemon(tmp_path, CONFIG) as agent:
        wait_for(lambda: history(agent)["written"] > 0, 20, what="first write")
        locker = sqlite3.connect(agent.db, timeout=1, isolation_level=None)
        try:
            locker.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
            wait_for(lambda: history(agent)["errors"] > 0, 30, what="a failed write while locked")
            h = history(agent)
            assert "locked" in h["last_error"], h
            assert agent.alive()
            assert agent.check("fast")["status"] == "OK"  # checks go on; samples wait in memory
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        written = history(agent)["written"]
        wait_for(lambda: history(agent)["written"] > written, 30, what="writes after the lock")
        assert_nothing_lost(agent)
        assert agent.alive()
    log = agent.log()
    assert "history write of" in log and "database is locked" in log


def test_read_only_filesystem_is_a_clear_start_up_error(tmp_path):
    """A volume that is read-only when the agent starts. (A running agent's filesystem cannot
    be made read-only here: Linux refuses ``remount,ro`` while SQLite holds files open for
    writing, and only the kernel's error path does it anyway; see docs/operations.md.)
    The agent refuses to start and says why and what to do, rather than running without its
    store, whose alert state and outbox are what make notifications exactly-once."""
    with tmpfs(tmp_path / "ro", "16m") as mnt:
        body = CONFIG.replace("{db}", str(mnt / "history.db"))
        with Daemon(tmp_path, body) as agent:  # first run makes the database
            agent.db = mnt / "history.db"
            wait_for(lambda: persisted_runs(agent.db) > 0, 20, what="a run of `fast` written")
        assert subprocess.run(["mount", "-o", "remount,ro", str(mnt)]).returncode == 0
        try:
            again = Daemon(tmp_path, body, port=agent.port)
            again.proc = Proc("agent", [sys.executable, str(RUNNER), "run", "--config", str(again.config)],
                              cwd=tmp_path, log_dir=tmp_path / "second").start()
            assert again.proc.wait(timeout=30) == 1
            said = again.proc.log_tail(5)
            assert "cannot start: agent.history: cannot open or migrate" in said, said
            assert str(mnt / "history.db") in said and "mounted read-only" in said, said
        finally:
            subprocess.run(["mount", "-o", "remount,rw", str(mnt)], check=False)
        # what was written before is intact (read once writable: WAL needs its -shm file)
        assert persisted_runs(mnt / "history.db") > 0


def test_full_disk(tmp_path):
    with tmpfs(tmp_path / "small", "4m") as mnt:
        body = CONFIG.replace("{db}", str(mnt / "history.db"))
        with Daemon(tmp_path, body) as agent:
            agent.db = mnt / "history.db"
            wait_for(lambda: history(agent)["written"] > 0, 20, what="first write")
            filler = mnt / "filler"
            with filler.open("wb", buffering=0) as f:  # fill the filesystem to the last block
                for chunk in (1 << 16, 4096):
                    with contextlib.suppress(OSError):
                        for _ in range(100_000):  # bounded: 4 MiB fills long before
                            f.write(b"\0" * chunk)
            assert os.statvfs(mnt).f_bavail == 0
            wait_for(lambda: history(agent)["errors"] > 0, 60, what="a failed write on a full disk")
            h = history(agent)
            assert "full" in h["last_error"].lower(), h
            assert agent.alive() and agent.check("fast")["status"] == "OK"
            filler.unlink()  # space is freed: the held samples are written
            assert_nothing_lost(agent)
            assert agent.alive()
        assert "disk is full" in agent.log()
