"""Cost report benchmark: ``mlwarden report cost --since 7d`` over 7 days of 1,000 series.

Builds once (cached under $TMPDIR/mlwarden-bench) the history the cost meter writes for a
fleet of 100 models on 60 GPU nodes, one reading a minute for 7 days:

- 100 models x 7 series (spend, gpu_seconds, predictions, gpus, utilization, memory.used,
  memory.total) and 60 nodes x 5 series (spend, gpu_seconds, idle.spend, idle.gpu_seconds,
  rate): 1,000 series, 10.08 million samples;
- plus one series per DAG run (10 DAGs, 4 runs a day: 280).

The rollups are folded by the store's own maintenance (the time is printed once: a running
agent folds a minute at a time). Then, in interleaved rounds:

1. the report: :func:`agent.cost.report.build_report` over the 7 days, what the CLI computes;
2. its floor: raw sqlite3 reading what the report reads (hourly rollup rows of the summed
   series, the percentile series' minute means counted per value, the run series) and
   computing nothing;
3. a naive report: the same sums and percentiles from the raw samples of those series.

Aim: the report in under 5 s on the dev machine. The ratio to the floor says how much of
it is Python above the rows it must read.

Usage: python benchmarks/cost_report.py [--rounds 3] [--rebuild]
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.cost.config import CostConfig  # noqa: E402
from agent.cost.report import build_report  # noqa: E402
from agent.history import migrations  # noqa: E402
from agent.history.config import HistoryConfig  # noqa: E402
from agent.history.db import make_engine  # noqa: E402
from agent.history.query import HistoryReader  # noqa: E402
from agent.history.series import series_key, tags_json  # noqa: E402
from agent.history.store import HistoryStore  # noqa: E402
from agent.samples import make_tags  # noqa: E402

STEP = 60.0
DAYS = 7
END = 1_800_000_000.0 - 1_800_000_000.0 % 3600  # an hour boundary
START = END - DAYS * 86400
MODELS, NODES, DAGS = 100, 60, 10
C = "mlwarden.cost."
MODEL_SERIES = ("model.spend", "model.gpu_seconds", "model.predictions", "model.gpus",
                "model.utilization", "model.memory.used", "model.memory.total")
NODE_SERIES = ("node.spend", "node.gpu_seconds", "node.idle.spend", "node.idle.gpu_seconds", "node.rate")
SUMMED = {"model.spend", "model.gpu_seconds", "model.predictions", "node.spend", "node.gpu_seconds",
          "node.idle.spend", "node.idle.gpu_seconds"}
PERCENTILES = {"model.utilization", "model.memory.used", "model.memory.total"}
CONFIG = CostConfig(prices=[{"gpu_model": "*H100*", "price_per_hour": 4.1, "memory_gib": 80},
                            {"gpu_model": "*L4*", "price_per_hour": 0.8, "memory_gib": 24}],
                    cpu_tier={"price_per_hour": 0.2})


def _value(metric: str, rng: random.Random) -> float:
    return {"model.spend": 4.1 / 60, "model.gpu_seconds": 60.0, "model.predictions": rng.randint(0, 50),
            "model.gpus": 1.0, "model.utilization": rng.randint(0, 100) / 100,  # NVML and DCGM: whole %
            "model.memory.used": rng.random() * 8e10,  # any value: the worst case for counting
            "model.memory.total": 8.5e10, "node.spend": 8 * 4.1 / 60, "node.gpu_seconds": 480.0,
            "node.idle.spend": 4.1 / 60, "node.idle.gpu_seconds": 60.0, "node.rate": 32.8}[metric]


def build(path: Path) -> dict[str, list[int]]:
    """Raw sqlite3 in primary-key order, then the store's maintenance folds the rollups."""
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    engine = make_engine(f"sqlite:///{path}")
    migrations.upgrade(engine)
    engine.dispose()
    series: list[tuple[str, dict[str, str]]] = []
    for m in range(MODELS):
        series += [(C + s, {"model": f"model-{m:03d}", "check": f"cost:gpu-{m % NODES}"}) for s in MODEL_SERIES]
    for n in range(NODES):
        series += [(C + s, {"node": f"gpu-node-{n:02d}", "capacity": "on_demand", "check": f"cost:gpu-{n}"})
                   for s in NODE_SERIES]
    assert len(series) == 1000
    rng = random.Random(3)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    ticks = int(DAYS * 86400 / STEP)
    ids: dict[str, list[int]] = {"main": [], "runs": []}
    for i, (metric, tags) in enumerate(series, start=1):
        t = make_tags(tags)
        conn.execute("INSERT INTO series (id, key, metric, tags, created_at) VALUES (?, ?, ?, ?, ?)",
                     (i, series_key(metric, t), metric, tags_json(t), START))
        conn.execute("BEGIN")
        short = metric.removeprefix(C)
        conn.executemany("INSERT INTO samples (series_id, ts, value) VALUES (?, ?, ?)",
                         ((i, START + k * STEP, _value(short, rng)) for k in range(ticks)))
        conn.execute("COMMIT")
        ids["main"].append(i)
        if i % 100 == 0:
            print(f"  built {i}/1000 series", flush=True)
    sid = len(series)
    for d in range(DAGS):
        for run in range(DAYS * 4):
            for metric, value in (("dag_run.gpu_seconds", 7200.0), ("dag_run.cost", 8.2)):
                sid += 1
                t = make_tags({"dag_id": f"dag-{d}", "run_id": f"scheduled__{run}", "check": "cost:airflow"})
                conn.execute("INSERT INTO series (id, key, metric, tags, created_at) VALUES (?, ?, ?, ?, ?)",
                             (sid, series_key(C + metric, t), C + metric, tags_json(t), START))
                conn.execute("INSERT INTO samples (series_id, ts, value) VALUES (?, ?, ?)",
                             (sid, START + run * 21600 + 3600, value))
                ids["runs"].append(sid)
    conn.close()
    store = HistoryStore(f"sqlite:///{path}", HistoryConfig())
    started = time.perf_counter()
    store.run_maintenance(END + 3600)  # in a running agent this is spread over the week
    print(f"  rollups folded in {time.perf_counter() - started:.1f} s (once)", flush=True)
    store.stop_blocking()
    return ids


def report(path: Path) -> float:
    engine = make_engine(f"sqlite:///{path}")
    reader = HistoryReader(engine, HistoryConfig().retention, clock=lambda: END + 3600)
    started = time.perf_counter()
    result = build_report(reader, CONFIG, START, END)
    took = time.perf_counter() - started
    assert len(result.models) == MODELS and len(result.nodes) == NODES and len(result.pipelines) == DAGS
    engine.dispose()
    return took


def _series_ids(conn: sqlite3.Connection, names: set[str]) -> list[int]:
    marks = ",".join("?" * len(names))
    return [r[0] for r in conn.execute(f"SELECT id FROM series WHERE metric IN ({marks})",
                                       [C + n for n in names])]


def floor(path: Path) -> float:
    """The rows the report reads, fetched with raw sqlite3, nothing computed."""
    conn = sqlite3.connect(path)
    started = time.perf_counter()
    summed, pct = _series_ids(conn, SUMMED), _series_ids(conn, PERCENTILES)
    rows = 0
    marks = ",".join("?" * len(summed))
    rows += len(conn.execute(f"SELECT series_id, bucket, min, max, sum, count FROM rollup_1h "
                             f"WHERE series_id IN ({marks}) AND bucket >= ? AND bucket < ?",
                             [*summed, START, END]).fetchall())
    for name, quantum in (("model.utilization", 0.001), ("model.memory.used", 2.0**26)):
        ids = _series_ids(conn, {name})
        marks = ",".join("?" * len(ids))
        rows += len(conn.execute(f"SELECT series_id, ROUND(sum / count / ?) AS v, COUNT(*) FROM rollup_1m "
                                 f"WHERE series_id IN ({marks}) AND bucket >= ? AND bucket < ? "
                                 "GROUP BY series_id, v", [quantum, *ids, START, END]).fetchall())
    del pct
    runs = _series_ids(conn, {"dag_run.gpu_seconds", "dag_run.cost"})
    for sid in runs:
        rows += len(conn.execute("SELECT ts, value FROM samples WHERE series_id = ? AND ts >= ? AND ts < ?",
                                 (sid, START, END)).fetchall())
    took = time.perf_counter() - started
    conn.close()
    return took


def naive(path: Path) -> float:
    """Sums and percentiles straight from the raw samples of the same series."""
    conn = sqlite3.connect(path)
    started = time.perf_counter()
    ids = _series_ids(conn, SUMMED | PERCENTILES)
    for sid in ids:
        values = [v for (v,) in conn.execute(
            "SELECT value FROM samples WHERE series_id = ? AND ts >= ? AND ts < ?", (sid, START, END))]
        values.sort()
        math.fsum(values)
        _ = values[int(0.95 * (len(values) - 1))] if values else None
    took = time.perf_counter() - started
    conn.close()
    return took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rebuild", action="store_true")
    args = parser.parse_args()
    folder = Path(os.environ.get("TMPDIR", tempfile.gettempdir())) / "mlwarden-bench"
    folder.mkdir(exist_ok=True)
    path = folder / "cost-7d-1000.db"
    if args.rebuild or not path.exists():
        print(f"building {path} (1,000 series x 7 days at one reading a minute) ...", flush=True)
        started = time.perf_counter()
        build(path)
        print(f"  built in {time.perf_counter() - started:.0f} s", flush=True)
    times: dict[str, list[float]] = {"report": [], "floor": [], "naive": []}
    for r in range(args.rounds):
        for name, fn in (("report", report), ("floor", floor), ("naive", naive)):
            times[name].append(fn(path))
        print(f"  round {r + 1}: report {times['report'][-1]:.2f} s, floor {times['floor'][-1]:.2f} s, "
              f"naive {times['naive'][-1]:.2f} s", flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"report over 7 days of 1,000 series: {med['report']:.2f} s median (aim < 5 s); "
          f"floor (raw sqlite3, the same rows) {med['floor']:.2f} s: {med['report'] / med['floor']:.1f}x; "
          f"naive (raw samples) {med['naive']:.2f} s: the report is {med['naive'] / med['report']:.1f}x faster")
    return 0 if med["report"] < 5.0 else 1


if __name__ == "__main__":
    sys.exit(main())
