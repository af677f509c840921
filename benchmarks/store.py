"""History store benchmark: write rate vs raw sqlite3, query latency, bytes per sample.

Prints, from one run on one machine (figures from a shared machine are only comparable
side by side, so each comparison is interleaved and its ratio is the figure):

1. samples/s written through the store (``consume()`` -> writer thread -> SQLAlchemy Core
   executemany) vs raw ``sqlite3.executemany`` into the same schema, same pragmas, same
   batch size; rounds alternate and the medians are compared. Aim: ratio >= 0.6.
2. the time to read one series' last 24 h (15 s samples) out of 1,000 series x 7 days,
   warm, through ``HistoryStore.read_series``. Aim: under 10 ms.
3. bytes on disk per million samples, for samples ingested the way the agent does (every
   series at each tick, time-major) and for the packed 7-day database. Aim: under 25 MiB.
4. maintenance (rollups and retention) in the agent's first hour at ``--maintenance-series``
   series, beside writing the minute of samples it maintains: a pass that folds that
   minute, and a pass with nothing to do; CPU time and statements sent to SQLite. Aim:
   a pass costs what changed (the minute), not the number of series.

Usage: python benchmarks/store.py [--series 1000] [--days 7] [--rounds 3] [--rebuild]
The 7-day database is built once with raw sqlite3 (fast, series-major) and cached under
$TMPDIR/mlwarden-bench; --rebuild makes it again.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.history import migrations  # noqa: E402
from agent.history.config import HistoryConfig, RetentionConfig  # noqa: E402
from agent.history.db import make_engine  # noqa: E402
from agent.history.series import series_key, tags_json  # noqa: E402
from agent.history.store import HistoryStore  # noqa: E402
from agent.samples import CheckResult, Sample, Status, make_tags  # noqa: E402

METRIC = "mlwarden.bench.latency"
STEP = 15.0
BATCH = 5000
INSERT_SQL = "INSERT INTO samples (series_id, ts, value) VALUES (?, ?, ?) ON CONFLICT DO NOTHING"


def _tags(i: int):  # noqa: ANN202
    return make_tags({"model": f"model-{i}", "endpoint": "predict"})


def _fresh_db(path: Path) -> str:
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    url = f"sqlite:///{path}"
    engine = make_engine(url)
    migrations.upgrade(engine)
    engine.dispose()
    return url


def _size(path: Path) -> int:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return sum(Path(str(path) + s).stat().st_size for s in ("", "-wal") if Path(str(path) + s).exists())


def _ticks(n_series: int, n_ticks: int, t0: float, rng: random.Random):
    """Check results as the pipeline delivers them: every series once per tick."""
    tags = [_tags(i) for i in range(n_series)]
    for k in range(n_ticks):
        ts = t0 + k * STEP
        yield [Sample(METRIC, rng.random() * 100, t, ts) for t in tags]


# -- 1. write rate ----------------------------------------------------------------------
def write_store(path: Path, n_series: int, n_ticks: int) -> tuple[float, int]:
    url = _fresh_db(path)
    ticks = list(_ticks(n_series, n_ticks, 1.8e9, random.Random(1)))
    store = HistoryStore(url, HistoryConfig(batch_size=BATCH, batch_interval=0.2,
                                            queue_size=n_series * n_ticks + 1,
                                            maintenance_interval=3600))
    store.start_blocking()
    started, cpu = time.perf_counter(), time.process_time()
    for samples in ticks:
        store.consume(CheckResult("bench", "bench", Status.OK, samples=samples))
    assert store.flush(600), "the store did not finish writing"
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    store.stop_blocking()
    return n_series * n_ticks / elapsed, n_series * n_ticks / cpu, _size(path)


def write_raw(path: Path, n_series: int, n_ticks: int) -> tuple[float, int]:
    url = _fresh_db(path)
    ticks = list(_ticks(n_series, n_ticks, 1.8e9, random.Random(1)))
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    started, cpu = time.perf_counter(), time.process_time()
    # the same series rows the store creates (ids resolved once, cached, as the store does)
    ids: dict = {}
    conn.execute("BEGIN")
    for i, t in enumerate(ticks[0]):
        cur = conn.execute("INSERT INTO series (key, metric, tags, created_at) VALUES (?, ?, ?, ?)",
                           (series_key(METRIC, t.tags), METRIC, tags_json(t.tags), 0.0))
        ids[t.tags] = cur.lastrowid
    conn.execute("COMMIT")
    rows = [(ids[s.tags], s.timestamp, s.value) for samples in ticks for s in samples]
    for i in range(0, len(rows), BATCH):
        conn.execute("BEGIN")
        conn.executemany(INSERT_SQL, rows[i:i + BATCH])
        conn.execute("COMMIT")
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    conn.close()
    del url
    return n_series * n_ticks / elapsed, n_series * n_ticks / cpu, _size(path)


# -- 2. the 7-day database and query latency ------------------------------------------
def build_week(path: Path, n_series: int, days: float) -> tuple[float, int]:
    """Built with raw sqlite3 in primary-key order: minutes instead of an hour of setup."""
    url = _fresh_db(path)
    end = 1.8e9
    n = int(days * 86400 / STEP)
    start = end - n * STEP
    rng = random.Random(2)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("BEGIN")
    for i in range(n_series):
        t = _tags(i)
        conn.execute("INSERT INTO series (id, key, metric, tags, created_at) VALUES (?, ?, ?, ?, ?)",
                     (i + 1, series_key(METRIC, t), METRIC, tags_json(t), start))
    conn.execute("COMMIT")
    for i in range(n_series):
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO samples (series_id, ts, value) VALUES (?, ?, ?)",
                         ((i + 1, start + k * STEP, rng.random() * 100) for k in range(n)))
        conn.execute("COMMIT")
        if i % 100 == 99:
            print(f"  built {i + 1}/{n_series} series", flush=True)
    conn.close()
    del url
    return end, n_series * n


def query_latency(path: Path, end: float, n_series: int, repeats: int = 40):  # noqa: ANN201
    """Store read_series vs the same rows read with raw sqlite3 (id known), interleaved.

    Warm: the same series again (its pages cached, as a rule or chart re-reading it);
    random: a different series each time.
    """
    store = HistoryStore(f"sqlite:///{path}", HistoryConfig(), clock=lambda: end)
    raw = sqlite3.connect(path)
    rng = random.Random(3)

    def one(i: int) -> tuple[float, float, int]:
        started = time.perf_counter()
        got = store.read_series(METRIC, end - 86400, end, tags={"model": f"model-{i}"})
        elapsed = time.perf_counter() - started
        started = time.perf_counter()
        rows = raw.execute("SELECT ts, value FROM samples WHERE series_id = ? AND ts >= ? "
                           "AND ts <= ? ORDER BY ts", (i + 1, end - 86400, end)).fetchall()
        raw_elapsed = time.perf_counter() - started
        points = len(next(iter(got.values())))
        assert len(rows) == points
        return elapsed, raw_elapsed, points

    warm, warm_raw, rand, rand_raw, points = [], [], [], [], 0
    for _ in range(repeats // 10):
        i = rng.randrange(n_series)
        one(i)  # warm its pages and the connection pool
        for _ in range(10):
            a, b, points = one(i)
            warm.append(a)
            warm_raw.append(b)
        a, b, points = one(rng.randrange(n_series))
        rand.append(a)
        rand_raw.append(b)
    store.engine.dispose()
    raw.close()
    med = statistics.median
    return med(warm), med(warm_raw), med(rand), med(rand_raw), points


# -- 4. maintenance ------------------------------------------------------------------------
def maintenance(work: Path, n_series: int) -> None:
    """A pass folding one new minute, and an idle pass, beside writing that minute."""
    from sqlalchemy import event

    path = work / "maintenance.db"
    url = _fresh_db(path)
    now = 1.8e9 + 1800  # half past an hour: the 1h rollup has nothing complete to fold
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    tags = [_tags(i) for i in range(n_series)]
    conn.executemany("INSERT INTO series (id, key, metric, tags, created_at) VALUES (?, ?, ?, ?, ?)",
                     [(i + 1, series_key(METRIC, t), METRIC, tags_json(t), now - 900)
                      for i, t in enumerate(tags)])
    conn.executemany("INSERT INTO samples (series_id, ts, value) VALUES (?, ?, ?)",
                     ((i + 1, now - 900 + k * 10.0, float(k)) for i in range(n_series) for k in range(90)))
    conn.execute("COMMIT")
    conn.close()
    config = HistoryConfig(batch_size=BATCH, batch_interval=0.2, queue_size=n_series * 6 + 1,
                           maintenance_interval=3600, rollup_delay=120,
                           retention=RetentionConfig(raw=7 * 86400))
    store = HistoryStore(url, config, clock=lambda: now)
    store.start_blocking()
    statements = [0]

    def count(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        statements[0] += len(parameters) if executemany else 1

    try:
        store.run_maintenance(now)  # the minutes so far; the store's first pass
        event.listen(store.engine, "before_cursor_execute", count)
        rows = []
        for label, minute in (("fold", 1), ("fold", 2), ("idle", 2)):
            t = now + 60 * minute
            if label == "fold":  # the minute's samples, through the store as the agent writes them
                samples = [Sample(METRIC, 1.0, tg, t - 60 + k * 10.0) for k in range(6) for tg in tags]
                cpu = time.process_time()
                store.consume(CheckResult("bench", "bench", Status.OK, samples=samples))
                assert store.flush(600)
                write_cpu = time.process_time() - cpu
            statements[0] = 0
            cpu = time.process_time()
            store.run_maintenance(t)
            rows.append((label, time.process_time() - cpu, statements[0], write_cpu))
    finally:
        event.remove(store.engine, "before_cursor_execute", count)
        store.stop_blocking()
    print(f"maintenance at {n_series:,} series (first hour: 1m folds each minute, 1h and retention idle); "
          f"CPU of this process (the writer thread writes in it too)")
    for label, cpu, n, write_cpu in rows:
        what = "folds the new minute" if label == "fold" else "nothing new         "
        print(f"  pass that {what}: {cpu * 1000:7.1f} ms CPU, {n:6,} statements; writing that minute "
              f"({n_series * 6:,} samples) {write_cpu * 1000:.1f} ms: ratio {cpu / write_cpu:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--series", type=int, default=1000)
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--write-ticks", type=int, default=200, help="ticks per write round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--maintenance-series", type=int, default=20_000)
    parser.add_argument("--only-maintenance", action="store_true", help="run part 4 alone")
    args = parser.parse_args()
    if args.only_maintenance:
        work = Path(tempfile.mkdtemp(prefix="mlwarden-bench-maint-"))
        try:
            maintenance(work, args.maintenance_series)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return

    work = Path(tempfile.mkdtemp(prefix="mlwarden-bench-write-"))
    try:
        store_rates, raw_rates, sizes, cpu_ratios = [], [], [], []
        n = args.series * args.write_ticks
        print(f"write: {args.rounds} alternating rounds of {n:,} samples "
              f"({args.series} series x {args.write_ticks} ticks, batches of {BATCH})")
        for r in range(args.rounds):
            raw_rate, raw_cpu, _ = write_raw(work / "raw.db", args.series, args.write_ticks)
            store_rate, store_cpu, size = write_store(work / "store.db", args.series, args.write_ticks)
            raw_rates.append(raw_rate)
            store_rates.append(store_rate)
            sizes.append(size)
            cpu_ratios.append(store_cpu / raw_cpu)
            print(f"  round {r + 1}: store {store_rate:,.0f}/s  raw sqlite3 {raw_rate:,.0f}/s  "
                  f"wall ratio {store_rate / raw_rate:.2f}  CPU-time ratio {store_cpu / raw_cpu:.2f}")
        s, w = statistics.median(store_rates), statistics.median(raw_rates)
        print(f"write rate: store {s:,.0f} samples/s vs raw sqlite3.executemany {w:,.0f} samples/s "
              f"-> ratio {s / w:.2f} of medians; per-round CPU-time ratio median "
              f"{statistics.median(cpu_ratios):.2f} (aim >= 0.6)")
        per_m = statistics.median(sizes) / n * 1e6
        print(f"bytes on disk, time-major ingest through the store: {per_m / 2**20:.1f} MiB per "
              f"million samples (aim < 25 MiB)")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    cache = Path(os.environ.get("TMPDIR", "/tmp")) / "mlwarden-bench"
    cache.mkdir(exist_ok=True)
    week = cache / f"week-{args.series}x{args.days:g}d.db"
    marker = Path(str(week) + ".done")
    if args.rebuild or not marker.exists():
        print(f"building {week} ({args.series} series x {args.days:g} days at {STEP:g}s) ...")
        started = time.perf_counter()
        end, total = build_week(week, args.series, args.days)
        marker.write_text(f"{end} {total}")
        print(f"  built {total:,} samples in {time.perf_counter() - started:.0f}s")
    end_s, total_s = marker.read_text().split()
    end, total = float(end_s), int(total_s)
    size = _size(week)
    print(f"bytes on disk, {total:,} samples loaded in key order: "
          f"{size / total * 1e6 / 2**20:.1f} MiB per million samples ({size / 2**20:.0f} MiB)")
    warm, warm_raw, rand, rand_raw, points = query_latency(week, end, args.series)
    print(f"query: one series' last 24 h ({points} points) out of {args.series} series x "
          f"{args.days:g} days through read_series: warm median {warm * 1000:.2f} ms "
          f"(aim < 10 ms), a different series each time {rand * 1000:.2f} ms; the same rows "
          f"by raw sqlite3 with the id known: {warm_raw * 1000:.2f} / {rand_raw * 1000:.2f} ms")


if __name__ == "__main__":
    main()
