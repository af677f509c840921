"""Agent start-up time and idle RSS with 100 configured check instances, beside the floor.

The instances probe healthy endpoints (a local keep-alive target in its own process,
``agent_scale.py``'s), so the first round fills what a real agent holds: pooled
connections, latency windows, series in the store, the exporter and the rules
(``--closed-port`` probes a closed port instead, as this script once did: cheaper, and not
what users run). The floor is a bare Python process importing the same libraries the
agent imports at start-up, measured in the same run, so the ratio holds on a noisy shared
machine. Start-up is from spawn to the first 200 from /readyz; idle RSS is read after the
first round of checks has run, and the checks' verdicts are printed so a run against a
broken target is not mistaken for a figure. Aims (issue #2): start-up under 1.5 s, idle
RSS under 90 MB.

    python benchmarks/startup.py [--instances 100] [--rounds 3] [--closed-port]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from agent.scheduler import FIRST_RUN_SPREAD  # noqa: E402
from tests.support.procs import free_port, wait_http  # noqa: E402

FLOOR_IMPORTS = ("import aiohttp, aiohttp.web, apscheduler.schedulers.asyncio, sqlalchemy, pydantic, "
                 "yaml, prometheus_client, psutil, json, logging")


def config(path: Path, port: int, instances: int, target: str | None) -> None:
    lines = [f"agent: {{listen: '127.0.0.1:{port}', history: 'sqlite:///{path.parent}/h.db', "
             "log_level: warning}", "checks:"]
    kinds = _instance_kinds(target)
    for i in range(instances):
        lines.append("  - " + kinds[i % len(kinds)].format(i=i))
    path.write_text("\n".join(lines) + "\n")


def _instance_kinds(target: str | None) -> list[str]:
    """Realistic instances where those check types are installed, else the self-check type."""
    from agent.plugins import check_types

    types = check_types()
    kinds = []
    if "model_endpoint" in types and target:
        kinds.append("{{type: model_endpoint, name: ep-{i}, url: '" + target + "/ep/{i}', "
                     "protocol: http, interval: 60s}}")
    elif "model_endpoint" in types:
        kinds.append("{{type: model_endpoint, name: ep-{i}, url: 'http://127.0.0.1:9/', "
                     "protocol: v2, model: m{i}, interval: 60s}}")
    return kinds or ["{{type: agent, name: agent-{i}, interval: 60s}}"]


def measure_agent(instances: int, target: str | None) -> tuple[float, float, dict[str, int]]:
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        cfg = Path(tmp) / "agent.yaml"
        config(cfg, port, instances, target)
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "agent.cli", "run", "--config", str(cfg)],
                                cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = t0 + 30
            while time.perf_counter() < deadline:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                        if r.status == 200:
                            break
                except OSError:
                    time.sleep(0.01)
            else:
                raise RuntimeError("agent did not become ready: " + proc.stderr.read(2000).decode())
            startup = time.perf_counter() - t0
            time.sleep(FIRST_RUN_SPREAD + 1.0)  # the first runs of every instance are done
            rss = psutil.Process(proc.pid).memory_info().rss
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=10) as r:
                verdicts: dict[str, int] = {}
                for c in json.loads(r.read())["checks"]:
                    verdicts[c["status"]] = verdicts.get(c["status"], 0) + 1
        finally:
            proc.terminate()
            proc.wait(15)
    return startup, rss / 2**20, verdicts


def measure_floor() -> tuple[float, float]:
    code = FLOOR_IMPORTS + "; import psutil, os; print(psutil.Process(os.getpid()).memory_info().rss)"
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return time.perf_counter() - t0, int(out.stdout) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--closed-port", action="store_true",
                        help="probe a closed port instead of healthy endpoints")
    args = parser.parse_args()
    target_proc, target = None, None
    if not args.closed_port:
        tport = free_port()
        target_proc = subprocess.Popen([sys.executable, str(REPO / "benchmarks" / "agent_scale.py"),
                                        "--serve-target", str(tport), "--interval", "60"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        target = f"http://127.0.0.1:{tport}"
    agent_t, agent_m, floor_t, floor_m, seen = [], [], [], [], {}
    try:
        if target:
            wait_http(f"{target}/_stats", timeout=30)
        for _ in range(args.rounds):
            t, m = measure_floor()
            floor_t.append(t)
            floor_m.append(m)
            t, m, seen = measure_agent(args.instances, target)
            agent_t.append(t)
            agent_m.append(m)
    finally:
        if target_proc is not None:
            target_proc.terminate()
            target_proc.wait(10)
    at, am = statistics.median(agent_t), statistics.median(agent_m)
    ft, fm = statistics.median(floor_t), statistics.median(floor_m)
    kind = "healthy endpoints" if target else "a closed port"
    print(f"instances: {args.instances} model_endpoint probing {kind}, rounds: {args.rounds}; "
          f"verdicts after the first round (last round): {seen}; load average "
          + "/".join(f"{x:.2f}" for x in os.getloadavg()))
    print(f"start-up to /readyz: agent {at:.3f} s   floor (imports only) {ft:.3f} s   ratio {at / ft:.2f}x"
          f"   aim < 1.5 s: {'yes' if at < 1.5 else 'NO'}")
    print(f"idle RSS:            agent {am:.1f} MiB  floor {fm:.1f} MiB  ratio {am / fm:.2f}x"
          f"   aim < 90 MB: {'yes' if am * 1.048576 < 90 else 'NO'}")


if __name__ == "__main__":
    main()
