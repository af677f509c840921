"""A real kill -9 of a real process writing under load: no corruption, bounded loss."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.history.config import HistoryConfig
from agent.history.store import HistoryStore

from .helpers import result_of, sample

BATCH_INTERVAL = 0.25
# a batch is committed once its oldest sample waited BATCH_INTERVAL; allow the commit
# itself this long on a shared, loaded machine
COMMIT_ALLOWANCE = 0.25


@pytest.mark.slow
@pytest.mark.integration
def test_kill_9_loses_at_most_the_last_batch_and_never_corrupts(tmp_path):
    db = tmp_path / "crash.db"
    acks = tmp_path / "acks.txt"
    script = Path(__file__).with_name("crash_writer.py")
    proc = subprocess.Popen(  # noqa: S603 - our own test script
        [sys.executable, str(script), f"sqlite:///{db}", str(acks), str(BATCH_INTERVAL)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # let it write under load for a while
            lines = acks.read_text().splitlines() if acks.exists() else []
            if len(lines) > 100 and float(lines[-1].split()[1]) - float(lines[0].split()[1]) > 3:
                break
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.1)
        else:
            pytest.fail("the writer subprocess never got going")
        os.kill(proc.pid, signal.SIGKILL)
        killed_at = time.time()
        proc.wait(10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL

    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        stored = {int(v) for (v,) in conn.execute("SELECT value FROM samples")}
    finally:
        conn.close()
    acked = [(int(a), float(b)) for a, b in (ln.split() for ln in acks.read_text().splitlines()
                                                   if len(ln.split()) == 2)]
    boundary = killed_at - BATCH_INTERVAL - COMMIT_ALLOWANCE
    must_have = max((seq for seq, t in acked if t < boundary), default=0)
    assert must_have > 1000, "too little was written before the kill to prove anything"
    missing = [s for s in range(1, must_have + 1) if s not in stored]
    assert not missing, (f"{len(missing)} samples acknowledged more than "
                         f"{BATCH_INTERVAL + COMMIT_ALLOWANCE}s before the kill are lost, "
                         f"first {missing[:5]}")
    lost = acked[-1][0] - len(stored)
    print(f"\nkill -9 after {acked[-1][0]} acknowledged samples: {len(stored)} stored, {lost} lost")

    # the database works on restart: migrations are a no-op and writes resume
    store = HistoryStore(f"sqlite:///{db}", HistoryConfig(batch_interval=0.05))
    store.start_blocking()
    try:
        store.consume(result_of(sample("mlwarden.crash", -1.0, time.time(), series="after")))
        assert store.flush()
        assert store.read_series("mlwarden.crash", time.time() - 60, tags={"series": "after"})
    finally:
        store.stop_blocking()
