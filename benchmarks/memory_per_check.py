"""Where a further check's memory goes: the agent at two sizes under tracemalloc, diffed.

Runs ``mlwarden run`` with agent_scale.py's config (N model_endpoint checks every 10 s
against its keep-alive target, 200 rules, store, /metrics and DogStatsD on) at each size,
scrapes /metrics every 15 s as Prometheus would, takes a tracemalloc snapshot (one frame)
``--after`` seconds after start, and prints the
traced heap's growth per further check, by file and by line. tracemalloc's own bookkeeping
inflates RSS: read RSS from agent_scale.py, the split from here.

    .venv/bin/python benchmarks/memory_per_check.py [--sizes 100,1000] [--after 45] [--tree DIR]
"""
from __future__ import annotations

import argparse
import contextlib
import os
import pickle
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

def _drain(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while True:
            sock.recv(65536)


def scrape_until_exit(proc: subprocess.Popen, port: int, every: float, limit: float) -> None:
    """Scrape /metrics as Prometheus does (OpenMetrics, gzip) until the agent exits: a
    scrape's texts are part of what the agent holds."""
    import urllib.request

    deadline = time.monotonic() + limit
    ready = False
    while proc.poll() is None and time.monotonic() < deadline:
        req = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers={
            "Accept": "application/openmetrics-text;version=1.0.0", "Accept-Encoding": "gzip"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                r.read()
            ready = True
        except OSError:
            pass
        waited = time.monotonic()
        while proc.poll() is None and time.monotonic() - waited < (every if ready else 0.5):
            time.sleep(0.1)


WRAP = r'''
import sys, threading, time, tracemalloc, pickle, os, gc
tracemalloc.start(1)
out, after = sys.argv[1], float(sys.argv[2])
def dump():
    time.sleep(after)
    gc.collect()
    snap = tracemalloc.take_snapshot()
    with open("/proc/self/statm") as f: rss = int(f.read().split()[1]) * 4096
    stats = {}
    for st in snap.statistics("lineno"):
        fr = st.traceback[0]
        stats[f"{fr.filename}:{fr.lineno}"] = (st.size, st.count)
    with open(out, "wb") as f: pickle.dump({"rss": rss, "traced": tracemalloc.get_traced_memory()[0], "stats": stats}, f)
    os.kill(os.getpid(), 15)
threading.Thread(target=dump, daemon=True).start()
sys.argv = ["mlwarden", *sys.argv[3:]]
from agent.cli import main
sys.exit(main(sys.argv[1:]))
'''

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tree", default=str(Path(__file__).resolve().parents[1]),
                    help="the checkout whose agent runs (default: this one)")
    ap.add_argument("--sizes", default="100,1000")
    ap.add_argument("--after", type=float, default=45)
    ap.add_argument("--out", default="/tmp/mlwarden-memory-per-check")
    ap.add_argument("--top", type=int, default=45)
    ap.add_argument("--scrape-interval", type=float, default=15.0)
    a = ap.parse_args()
    tree = Path(a.tree).resolve()
    sys.path.insert(0, str(tree / "benchmarks")); sys.path.insert(0, str(tree))
    import agent_scale
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    tport = free_port()
    target = subprocess.Popen([sys.executable, str(tree / "benchmarks/agent_scale.py"), "--serve-target", str(tport)], cwd=tree)
    time.sleep(1.5)
    # DogStatsD's datagrams go to a socket that reads them (a closed port makes the client
    # drop and reopen its socket on every send)
    statsd = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    statsd.bind(("127.0.0.1", 0))
    statsd_port = statsd.getsockname()[1]
    threading.Thread(target=_drain, args=(statsd,), daemon=True).start()
    snaps = {}
    try:
        for size in [int(s) for s in a.sizes.split(",")]:
            folder = out / f"agent-{size}"; folder.mkdir(exist_ok=True)
            for f in folder.glob("history.db*"): f.unlink()
            cfg = folder / "agent.yaml"
            ns = argparse.Namespace(interval=10.0, rules=200)
            port = free_port()
            agent_scale.agent_config(cfg, ns, size, port, f"http://127.0.0.1:{tport}", statsd_port)
            pk = folder / "snap.pkl"
            env = {**os.environ, "PYTHONPATH": str(tree)}
            with (folder / "log").open("wb") as log:
                proc = subprocess.Popen([sys.executable, "-c", WRAP, str(pk), str(a.after), "run", "--config", str(cfg)],
                                        cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT)
                try:
                    scrape_until_exit(proc, port, a.scrape_interval, a.after + 120)
                finally:
                    if proc.poll() is None:
                        proc.kill()
                    proc.wait()
            snaps[size] = pickle.load(open(pk, "rb"))
            print(f"{size}: rss {snaps[size]['rss']/2**20:.1f} MiB traced {snaps[size]['traced']/2**20:.1f} MiB", flush=True)
    finally:
        target.terminate()
        target.wait(10)
    s1, s2 = sorted(snaps)
    n = s2 - s1
    d1, d2 = snaps[s1]["stats"], snaps[s2]["stats"]
    rows = []
    for k in set(d1) | set(d2):
        b = d2.get(k, (0, 0))[0] - d1.get(k, (0, 0))[0]
        c = d2.get(k, (0, 0))[1] - d1.get(k, (0, 0))[1]
        rows.append((b, c, k))
    rows.sort(reverse=True)
    tot = sum(r[0] for r in rows)
    print(f"per further check: rss {(snaps[s2]['rss']-snaps[s1]['rss'])/n/1024:.1f} KiB, traced {tot/n/1024:.2f} KiB")
    byfile = {}
    for b, c, k in rows:
        f = k.rsplit(":", 1)[0].replace(str(tree) + "/", "")
        byfile[f] = byfile.get(f, 0) + b
    for f, b in sorted(byfile.items(), key=lambda x: -x[1])[:20]:
        print(f"  {b/n:8.0f} B  {f}")
    print("lines:")
    for b, c, k in rows[:a.top]:
        print(f"  {b/n:8.0f} B {c/n:6.2f} obj  {k.replace(str(tree) + '/', '')}")


if __name__ == "__main__":
    main()
