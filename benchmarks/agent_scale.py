"""The whole agent as it runs, at 100 to 5,000 checks, beside blackbox_exporter in one run.

Per size N, three phases against one local keep-alive target (a separate, unmeasured
process that answers every path with a small JSON body and records when each path was
hit):

1. blackbox_exporter probes the N targets, each every ``--interval`` seconds, driven
   through ``/probe`` the way Prometheus drives it (the driver is this process, not
   measured); its process's CPU per probe is the reference;
2. ``mlwarden run`` with N ``model_endpoint`` checks at the same interval, with the
   history store (SQLite), the Prometheus exporter (/metrics scraped every
   ``--scrape-interval`` s), DogStatsD (to a UDP socket this process holds) and
   ``--rules`` alert rules on: CPU of the agent's process (every thread) per check run,
   RSS, schedule drift (each path's hits against its own interval, seen by the target),
   check duration p99 (``mlwarden_check_duration_seconds`` in the scrapes), /metrics
   scrape time and size, bytes per stored sample;
3. blackbox_exporter again, so a machine whose load changed during the run shows it.

The figure is the ratio of CPU per check run to blackbox's CPU per probe (the mean of
before and after). Absolute figures wander on a shared machine: the load average is
printed with every phase. Sizes, durations and rules are flags, so a short run is
possible (``--sizes 100,1000 --duration 30``); the full run is for a quiet machine.

    MLWARDEN_PEERS=/work/peers .venv/bin/python benchmarks/agent_scale.py \\
        [--sizes 100,1000,3000,5000] [--interval 10] [--warmup 40] [--duration 90] \\
        [--rules 200] [--py-spy DIR] [--baseline DIR]

Everything binds 127.0.0.1; every process started here is stopped by its PID.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import json
import os
import random
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MIB = 2**20
BLACKBOX_CONFIG = """modules:
  http_2xx:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
"""


# the agent's CLI, with the time of each garbage collection appended to a file (--gc-stats)
GC_WRAPPER = """
import gc, json, runpy, sys, time
out = open(sys.argv.pop(1), "a", buffering=1)
started = {}
def timing(phase, info):
    if phase == "start":
        # a full pass: how many objects it walks (counting them costs a fraction of the pass)
        started[1] = len(gc.get_objects(2)) if info["generation"] == 2 else None
        started[0] = time.perf_counter()
    else:
        out.write(json.dumps([time.time(), info["generation"], time.perf_counter() - started[0],
                              info["collected"], started[1]]) + "\\n")
gc.callbacks.append(timing)
sys.argv[0] = "mlwarden"
runpy.run_module("agent.cli", run_name="__main__", alter_sys=True)
"""


# -- the target (its own process) -------------------------------------------------------
def serve_target(port: int, interval: float) -> None:
    """A keep-alive HTTP/1.1 server that answers any GET with 200 and a JSON body.

    Written on asyncio's Protocol so it costs little beside the processes measured. It
    keeps each path's hit times; ``/_stats`` returns the number of hits and the schedule
    lateness of every hit against its path's own interval (the earliest hit sets the
    phase), ``/_reset`` starts a new phase.
    """
    hits: dict[bytes, list[float]] = {}
    total = [0]
    started = [time.time()]
    ok = b'{"status":"ok"}'
    head = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n" % len(ok))

    def stats() -> bytes:
        late: list[float] = []
        when: dict[int, float] = {}  # second of the phase -> the worst lateness in it
        for times in hits.values():
            base = times[0]
            offsets = [t - round((t - base) / interval) * interval for t in times]
            phase = min(offsets)  # the path's earliest run sets its phase
            for t, o in zip(times, offsets):
                late.append(o - phase)
                sec = int(t - started[0])
                when[sec] = max(when.get(sec, 0.0), o - phase)
        late.sort()
        return json.dumps({"requests": total[0], "paths": len(hits), "late": late[-2000:],
                           "late_n": len(late),
                           "p50": late[len(late) // 2] if late else None,
                           "p99": late[min(len(late) - 1, int(len(late) * 0.99))] if late else None,
                           "max": late[-1] if late else None,
                           "worst_seconds": sorted(when.items(), key=lambda kv: -kv[1])[:12],
                           "over_ms": {ms: sum(x > ms / 1e3 for x in late) for ms in (25, 50, 100, 200)},
                           }).encode()

    class Target(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport  # type: ignore[assignment]
            self.buf = b""

        def data_received(self, data: bytes) -> None:
            self.buf += data
            while True:
                end = self.buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                request, self.buf = self.buf[:end], self.buf[end + 4:]
                path = request.split(b" ", 2)[1] if request.count(b" ") >= 2 else b"/"
                close = b"connection: close" in request.lower()
                if path.startswith(b"/_"):
                    if path.startswith(b"/_reset"):
                        hits.clear()
                        total[0] = 0
                        started[0] = time.time()
                        body = b"{}"
                    else:
                        body = stats()
                    out = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                           b"Content-Length: %d\r\n\r\n" % len(body)) + body
                else:
                    total[0] += 1
                    times = hits.get(path)
                    if times is None:
                        hits[path] = [time.time()]
                    else:
                        times.append(time.time())
                    out = head + (b"Connection: close\r\n\r\n" if close else b"\r\n") + ok
                self.transport.write(out)  # type: ignore[attr-defined]
                if close:
                    self.transport.close()
                    return

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Target, "127.0.0.1", port, backlog=4096)
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        async with server:
            await stop.wait()

    asyncio.run(main())


# -- helpers ------------------------------------------------------------------------------
def loadavg() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def cpu_seconds(ps: Any) -> float:
    t = ps.cpu_times()
    return t.user + t.system


async def http_json(session: Any, url: str) -> Any:
    async with session.get(url) as r:
        return json.loads(await r.read())


def _die_with_parent() -> None:
    """In a child: SIGTERM it when this process dies, however it dies (Linux)."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Phase:
    """One measured window of one process."""

    name: str
    size: int
    seconds: float = 0.0
    cpu: float = 0.0
    runs: int = 0
    rss_mib: list[float] = field(default_factory=list)
    drift_p50: float = float("nan")
    drift_p99: float = float("nan")
    drift_max: float = float("nan")
    load: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ms_per_run(self) -> float:
        return self.cpu / self.runs * 1e3 if self.runs else float("nan")


async def read_drift(session: Any, target: str, phase: Phase) -> None:
    doc = await http_json(session, f"{target}/_stats")
    phase.runs = doc["requests"]
    if doc["p99"] is not None:
        phase.drift_p50, phase.drift_p99, phase.drift_max = doc["p50"], doc["p99"], doc["max"]
    phase.extra["paths"] = doc["paths"]
    phase.extra["worst_seconds"] = doc["worst_seconds"]
    phase.extra["over_ms"] = {int(k): v for k, v in doc["over_ms"].items()}
    phase.extra["late_n"] = doc["late_n"]


# -- blackbox_exporter ---------------------------------------------------------------------
async def blackbox_phase(session: Any, args: argparse.Namespace, bb_url: str, bb_pid: int,
                         target: str, size: int, name: str) -> Phase:
    """Drive blackbox_exporter like Prometheus: each of ``size`` targets every interval."""
    import psutil

    ps = psutil.Process(bb_pid)
    interval = args.interval
    failures = [0]
    loop = asyncio.get_running_loop()
    t_start = loop.time() + 0.5
    end = t_start + interval + args.bb_duration  # one interval to warm up, then measure

    async def probe(i: int) -> None:
        params = {"module": "http_2xx", "target": f"{target}/ep/{i}"}
        try:
            async with session.get(f"{bb_url}/probe", params=params) as r:
                body = await r.read()
                if r.status != 200 or b"probe_success 1" not in body:
                    failures[0] += 1
        except Exception:  # noqa: BLE001 - counted; the figure is void if any fail
            failures[0] += 1

    async def driver() -> None:
        tasks: set[asyncio.Task[None]] = set()
        k = 0
        while True:
            # target i fires at t_start + i * interval / size + k * interval
            for i in range(size):
                at = t_start + k * interval + i * interval / size
                if at >= end:
                    break
                delay = at - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                task = loop.create_task(probe(i))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            else:
                k += 1
                continue
            break
        if tasks:
            await asyncio.wait(tasks, timeout=10)

    drive = loop.create_task(driver())
    await asyncio.sleep(max(0.0, t_start + interval - loop.time()))
    await session.get(f"{target}/_reset")
    cpu0, w0 = cpu_seconds(ps), time.monotonic()
    phase = Phase(name, size, load=loadavg())
    while loop.time() < end - 0.1:
        await asyncio.sleep(min(5.0, max(0.1, end - loop.time() - 0.1)))
        phase.rss_mib.append(ps.memory_info().rss / MIB)
    cpu1, w1 = cpu_seconds(ps), time.monotonic()
    await read_drift(session, target, phase)
    await drive
    phase.cpu, phase.seconds = cpu1 - cpu0, w1 - w0
    phase.extra["failures"] = failures[0]
    phase.load += " -> " + loadavg()
    return phase


# -- mlwarden -----------------------------------------------------------------------------
def agent_config(path: Path, args: argparse.Namespace, size: int, port: int, target: str,
                 statsd_port: int) -> None:
    import yaml

    checks = [{"type": "model_endpoint", "name": f"ep-{i}", "url": f"{target}/ep/{i}",
               "protocol": "http", "interval": f"{args.interval}s"} for i in range(size)]
    rules: list[dict[str, Any]] = []
    if args.rules:
        # a fleet-wide rule over every endpoint's latency, the rest one per endpoint
        rules.append({"alert": "FleetSlow", "metric": "mlwarden.endpoint.latency",
                      "aggregate": "avg", "window": "1m", "op": ">", "threshold": 2.0,
                      "for": "1m", "summary": "{check} is slow ({value:.2f}s)"})
        for i in range(min(size, args.rules - 1)):
            rules.append({"alert": f"EndpointDown{i}", "metric": "mlwarden.endpoint.up",
                          "where": {"check": f"ep-{i}"}, "op": "<", "threshold": 1, "for": "1m",
                          "severity": "critical", "summary": "{check} is down"})
    doc: dict[str, Any] = {
        "agent": {"listen": f"127.0.0.1:{port}", "history": f"sqlite:///{path.parent}/history.db",
                  "log_level": "warning", "log_format": "json"},
        "exporters": {"prometheus": {"enabled": True},
                      **({"datadog": {"mode": "dogstatsd", "host": "127.0.0.1", "port": statsd_port}}
                         if statsd_port else {})},
        "checks": checks,
        "rules": rules,
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def store_figures(db: Path) -> dict[str, float]:
    """Samples and pages in use, read-only beside the agent (WAL)."""
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
        try:
            one = lambda q: conn.execute(q).fetchone()[0]  # noqa: E731
            used = (one("PRAGMA page_count") - one("PRAGMA freelist_count")) * one("PRAGMA page_size")
            return {"samples": one("SELECT count(*) FROM samples"),
                    "series": one("SELECT count(*) FROM series"), "used": used}
        finally:
            conn.close()
    except sqlite3.Error as exc:
        print(f"  (cannot read the store: {exc})")
        return {}


async def agent_phase(session: Any, args: argparse.Namespace, size: int, target: str,
                      statsd_port: int, work: Path, tree: str | None = None) -> Phase:
    import psutil

    port = _free_port()
    folder = work / f"agent-{size}{'-baseline' if tree else ''}"
    folder.mkdir()
    cfg = folder / "agent.yaml"
    agent_config(cfg, args, size, port, target, statsd_port)
    log = (folder / "agent.log").open("wb")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("PYTHONASYNCIODEBUG", None)
    if tree:  # another checkout's agent (and checks), run by this virtual environment
        env["PYTHONPATH"] = tree
    if args.asyncio_debug:  # asyncio logs each callback that holds the loop > 0.1 s
        env["PYTHONASYNCIODEBUG"] = "1"
    t_spawn = time.monotonic()
    cmd = [sys.executable, "-m", "agent.cli"]
    if args.gc_stats:  # the agent under a wrapper that times every garbage collection
        cmd = [sys.executable, "-c", GC_WRAPPER, str(folder / "gc.jsonl")]
    proc = subprocess.Popen([*cmd, "run", "--config", str(cfg)],
                            cwd=folder, stdout=log, stderr=subprocess.STDOUT, env=env,
                            preexec_fn=_die_with_parent)
    base = f"http://127.0.0.1:{port}"
    phase = Phase("mlwarden (baseline)" if tree else "mlwarden", size)
    spy: subprocess.Popen[bytes] | None = None
    try:
        ps = psutil.Process(proc.pid)
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"agent not ready (exit {proc.poll()}):\n"
                                   + (folder / "agent.log").read_text()[-3000:])
            with contextlib.suppress(Exception):
                async with session.get(base + "/readyz") as r:
                    if r.status == 200:
                        break
            await asyncio.sleep(0.2)
        phase.extra["ready_s"] = time.monotonic() - t_spawn
        scrapes: list[tuple[float, int, int]] = []
        durations: list[float] = []

        scraped_at: list[float] = []

        async def scrape(keep: bool) -> None:
            # timed until the whole (gzip) body is in, as a scraper receives it; this
            # process's own gunzip of 16 MB is not the agent's time
            s = time.monotonic()
            async with session.get(base + "/metrics", headers={"Accept-Encoding": "gzip"},
                                   auto_decompress=False) as r:
                raw = await r.read()
                gzipped = r.headers.get("Content-Encoding") == "gzip"
            took = time.monotonic() - s
            if not keep:
                return
            scraped_at.append(s)
            body = gzip.decompress(raw) if gzipped else raw
            series = 0
            for line in body.split(b"\n"):
                if not line or line[:1] == b"#":
                    continue
                series += 1
                if line.startswith(b"mlwarden_check_duration_seconds{"):
                    durations.append(float(line.rsplit(b" ", 1)[1]))
            scrapes.append((took, len(body), series))

        # warm-up: every check has run; /metrics is scraped on its schedule all along. The
        # first /status is read before the last interval of the warm-up: at 5,000 checks it
        # costs the agent ~70 ms of GIL, and no check run it delays belongs to the window
        warm_end = time.monotonic() + args.warmup
        next_scrape = time.monotonic()
        status0: dict[str, Any] | None = None
        while time.monotonic() < warm_end:
            if time.monotonic() >= next_scrape:
                await scrape(False)
                next_scrape += args.scrape_interval
            if status0 is None and time.monotonic() >= warm_end - 1.2 * args.interval:
                status0 = await http_json(session, base + "/status")
            await asyncio.sleep(min(1.0, max(0.0, warm_end - time.monotonic())))
        if status0 is None:  # a warm-up shorter than an interval
            status0 = await http_json(session, base + "/status")
        await session.get(f"{target}/_reset")
        if args.py_spy:
            out = Path(args.py_spy) / f"{folder.name}.txt"
            spy = subprocess.Popen([str(Path(sys.executable).with_name("py-spy")), "record",
                                    "-p", str(proc.pid), "-d", str(int(args.duration)), "-r", "50",
                                    "-f", "raw", "-o", str(out), "--nonblocking"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        phase.load = loadavg()
        cpu0, w0 = cpu_seconds(ps), time.monotonic()
        end = w0 + args.duration
        healthz: list[float] = []

        async def ping() -> None:  # the agent's loop answers /healthz at once: its stalls
            while time.monotonic() < end:
                s = time.monotonic()
                with contextlib.suppress(Exception):
                    async with session.get(base + "/healthz") as r:
                        await r.read()
                    healthz.append(time.monotonic() - s)
                await asyncio.sleep(0.25)

        pinger = asyncio.get_running_loop().create_task(ping())
        while time.monotonic() < end:
            if proc.poll() is not None:
                raise RuntimeError("agent died:\n" + (folder / "agent.log").read_text()[-3000:])
            if time.monotonic() >= next_scrape:
                await scrape(True)
                next_scrape += args.scrape_interval
            phase.rss_mib.append(ps.memory_info().rss / MIB)
            await asyncio.sleep(min(5.0, max(0.0, min(end, next_scrape) - time.monotonic())))
        cpu1, w1 = cpu_seconds(ps), time.monotonic()
        phase.extra["scrapes_at"] = [round(t - w0, 1) for t in scraped_at]
        await pinger
        await read_drift(session, target, phase)
        phase.cpu, phase.seconds = cpu1 - cpu0, w1 - w0
        phase.load += " -> " + loadavg()
        phase.extra["healthz_p99"] = pct(healthz, 0.99)
        phase.extra["healthz_max"] = max(healthz, default=float("nan"))
        status1 = await http_json(session, base + "/status")
        hist0, hist1 = status0["components"]["history"], status1["components"]["history"]
        checks = status1["checks"]
        phase.extra.update(
            missed=sum(c["missed"] for c in checks),
            skipped=sum(c["skipped_overlap"] for c in checks),
            written=hist1["written"] - hist0["written"],
            shed=hist1["dropped"], pipeline_shed=status1["pipeline"]["shed"],
            not_ok=sum(c["status"] != "OK" for c in checks if c["name"].startswith("ep-")),
            maintenance=hist1.get("last_maintenance_duration"),
            trim=status1["components"].get("allocator", {}).get("last_trim_seconds"),
            render=status1["components"].get("prometheus", {}).get("last_render_seconds"),
            gc=status1["components"].get("gc", {}),
            flush=hist1.get("last_flush_duration"),
            duration_p99=pct(durations, 0.99), duration_p50=pct(durations, 0.5),
            scrape_p50=pct([s for s, _, _ in scrapes], 0.5),
            scrape_max=max((s for s, _, _ in scrapes), default=float("nan")),
            scrape_kib=scrapes[-1][1] / 1024 if scrapes else float("nan"),
            series=scrapes[-1][2] if scrapes else 0,
        )
        if args.gc_stats and (folder / "gc.jsonl").exists():
            window = [json.loads(ln) for ln in (folder / "gc.jsonl").read_text().splitlines()
                      if ln.strip()]
            t_end = time.time()
            window = [r for r in window if t_end - (w1 - w0) - 5 <= r[0] <= t_end]
            phase.extra["full_passes"] = [(round(r[2], 3), r[4]) for r in window if r[1] == 2]
            for gen in (0, 1, 2):
                times = [r[2] for r in window if r[1] == gen]
                phase.extra[f"gc{gen}"] = (len(times), sum(times), max(times, default=0.0))
        figures = store_figures(folder / "history.db")
        if figures.get("samples"):
            phase.extra["bytes_per_sample"] = figures["used"] / figures["samples"]
            phase.extra["store_series"] = figures["series"]
    finally:
        if spy is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                spy.wait(30)
            if spy.poll() is None:
                spy.terminate()
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        log.close()
        lines = (folder / "agent.log").read_text(errors="replace").splitlines()
        errors = [ln for ln in lines if '"level": "error"' in ln or '"level":"error"' in ln]
        if errors:
            print(f"  agent logged {len(errors)} errors; first: {errors[0][:300]}")
        slow = [ln for ln in lines if "Executing " in ln and " took " in ln]
        if slow:
            print(f"  event-loop callbacks over 0.1 s: {len(slow)}; first ones:")
            for ln in slow[:6]:
                print(f"    {ln[:400]}")
    return phase


def _free_port() -> int:
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the run ------------------------------------------------------------------------------
async def run(args: argparse.Namespace) -> int:
    import aiohttp

    from tests.support.procs import PEERS, Proc, wait_http

    binary = PEERS / "promstack" / "bin" / "blackbox_exporter"
    if args.blackbox and not binary.exists():
        raise SystemExit(f"{binary} is missing: run `bash tests/peers/install-promstack.sh` "
                         "(or pass --no-blackbox)")
    work = Path(tempfile.mkdtemp(prefix="agent-scale-"))
    procs: list[Proc] = []
    statsd = None
    rows: list[tuple[Phase, list[Phase]]] = []
    try:
        tport = _free_port()
        tp = Proc("target", [sys.executable, __file__, "--serve-target", str(tport),
                             "--interval", str(args.interval)], log_dir=work)
        procs.append(tp.start())
        target = f"http://127.0.0.1:{tport}"
        wait_http(f"{target}/_stats", timeout=30, proc=tp)
        bb_url, bb_pid = "", 0
        if args.blackbox:
            (work / "blackbox.yml").write_text(BLACKBOX_CONFIG)
            bport = _free_port()
            bb = Proc("blackbox", [binary, f"--config.file={work / 'blackbox.yml'}",
                                   f"--web.listen-address=127.0.0.1:{bport}"], log_dir=work)
            procs.append(bb.start())
            bb_url, bb_pid = f"http://127.0.0.1:{bport}", bb.pid
            wait_http(f"{bb_url}/-/healthy", timeout=30, proc=bb)
        statsd_port = 0
        if args.datadog:  # DogStatsD datagrams land here; nobody reads them (the kernel drops)
            statsd = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            statsd.bind(("127.0.0.1", 0))
            statsd_port = statsd.getsockname()[1]
        print(f"agent_scale: sizes {args.sizes}, every {args.interval:g}s; agent warm-up {args.warmup:g}s, "
              f"measured {args.duration:g}s; blackbox {args.bb_duration:g}s before and after; "
              f"{args.rules} rules; /metrics every {args.scrape_interval:g}s; "
              f"DogStatsD {'on' if statsd_port else 'off'}; load average {loadavg()}", flush=True)
        connector = aiohttp.TCPConnector(limit=500)
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            for size in args.sizes:
                bbs = []
                if args.blackbox:
                    bbs.append(await blackbox_phase(session, args, bb_url, bb_pid, target, size,
                                                    "blackbox before"))
                    print_phase(bbs[-1])
                if args.baseline:  # the other tree first, so both share this size's load
                    base = await agent_phase(session, args, size, target, statsd_port, work,
                                             args.baseline)
                    print_phase(base)
                    rows.append((base, bbs))
                ours = await agent_phase(session, args, size, target, statsd_port, work)
                print_phase(ours)
                if args.blackbox:
                    bbs.append(await blackbox_phase(session, args, bb_url, bb_pid, target, size,
                                                    "blackbox after"))
                    print_phase(bbs[-1])
                rows.append((ours, bbs))
        summary(rows, args)
        return 0
    finally:
        if statsd is not None:
            statsd.close()
        for p in reversed(procs):
            p.stop()
        if not args.keep:
            import shutil

            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}")


def print_phase(p: Phase) -> None:
    rss = f"RSS {max(p.rss_mib):.0f} MiB" if p.rss_mib else ""
    line = (f"  {p.name:<16} {p.size:>5} checks: {p.cpu:6.2f} s CPU / {p.runs} runs = "
            f"{p.ms_per_run:5.2f} ms per run, {p.cpu / max(p.seconds, 1e-9) * 100:5.1f}% of a core, {rss}; "
            f"drift p99 {p.drift_p99 * 1e3:.0f} ms max {p.drift_max * 1e3:.0f} ms; load {p.load}")
    if p.extra.get("failures"):
        line += f"; {p.extra['failures']} FAILED probes"
    print(line, flush=True)
    if p.name.startswith("mlwarden"):
        e = p.extra
        print(f"  {'':<16} ready {e['ready_s']:.1f}s; check duration p50 {e['duration_p50'] * 1e3:.1f} "
              f"p99 {e['duration_p99'] * 1e3:.1f} ms; /metrics p50 {e['scrape_p50'] * 1e3:.0f} ms "
              f"max {e['scrape_max'] * 1e3:.0f} ms ({e['series']} series, {e['scrape_kib']:.0f} KiB); "
              f"{e.get('bytes_per_sample', float('nan')):.0f} B/sample; written {e['written']}, "
              f"shed {e['shed']}/{e['pipeline_shed']}; missed {e['missed']} skipped {e['skipped']}; "
              f"not OK {e['not_ok']}", flush=True)
        if "gc2" in e:
            print(f"  {'':<16} garbage collections in the window (count, total s, longest s): "
                  + ", ".join(f"gen{g} {e[f'gc{g}'][0]} {e[f'gc{g}'][1]:.3f} {e[f'gc{g}'][2]:.3f}"
                              for g in (0, 1, 2))
                  + "; full passes (s, objects walked) " + (str(e.get("full_passes")) or "none"), flush=True)
        g = e.get("gc") or {}
        if g.get("enabled"):
            print(f"  {'':<16} gc: {g['frozen_objects']} objects frozen, last freeze "
                  f"{g.get('last_freeze_seconds', g['last_full_collection_seconds'])} s, last full collection "
                  f"{g['last_full_collection_seconds']} s; since start: collections {g['collections']}, "
                  f"seconds {g['collection_seconds']}", flush=True)
        print(f"  {'':<16} last malloc_trim {e['trim']} s, last /metrics render in the agent "
              f"{e['render']} s, last store flush {e['flush']} s, "
              f"last maintenance {e['maintenance']} s; /healthz p99 {e['healthz_p99'] * 1e3:.0f} ms "
              f"max {e['healthz_max'] * 1e3:.0f} ms; runs later than 25/50/100/200 ms: "
              + "/".join(str(p.extra['over_ms'][k]) for k in (25, 50, 100, 200))
              + f" of {p.extra['late_n']}; worst drift by second of the window "
              + ", ".join(f"{s}s:{v * 1e3:.0f}ms" for s, v in e["worst_seconds"][:8])
              + f"; scrapes at {', '.join(f'{t}s' for t in e.get('scrapes_at', []))}", flush=True)


def summary(rows: list[tuple[Phase, list[Phase]]], args: argparse.Namespace) -> None:
    print("\n| checks | tree | CPU per run | blackbox per probe (before/after) | ratio | share of a core "
          "| RSS | drift p99 / max | check duration p99 | /metrics scrape p50 / max (series) "
          "| bytes/sample | load average |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for ours, bbs in rows:
        e = ours.extra
        bb = [b.ms_per_run for b in bbs]
        ref = statistics.mean(bb) if bb else float("nan")
        bbtxt = " / ".join(f"{x:.2f}" for x in bb) + " ms" if bb else "n/a"
        tree = "baseline" if "baseline" in ours.name else "this"
        print(f"| {ours.size:,} | {tree} | {ours.ms_per_run:.2f} ms | {bbtxt} | **{ours.ms_per_run / ref:.2f}x** "
              f"| {ours.cpu / ours.seconds * 100:.0f} % | {max(ours.rss_mib):.0f} MiB "
              f"| {ours.drift_p99 * 1e3:.0f} / {ours.drift_max * 1e3:.0f} ms "
              f"| {e['duration_p99'] * 1e3:.1f} ms "
              f"| {e['scrape_p50'] * 1e3:.0f} / {e['scrape_max'] * 1e3:.0f} ms ({e['series']:,}) "
              f"| {e.get('bytes_per_sample', float('nan')):.0f} | {ours.load} |")
    print(f"(interval {args.interval:g}s, measured {args.duration:g}s after {args.warmup:g}s warm-up; "
          f"blackbox RSS {max((max(b.rss_mib) for _, bbs in rows for b in bbs), default=0):.0f} MiB at most)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,3000,5000",
                        type=lambda s: [int(x) for x in s.split(",") if x])
    parser.add_argument("--interval", type=float, default=10.0, help="check interval, seconds")
    parser.add_argument("--warmup", type=float, default=40.0,
                        help="seconds after /readyz before measuring (every check has run)")
    parser.add_argument("--duration", type=float, default=90.0, help="measured seconds per agent run")
    parser.add_argument("--bb-duration", type=float, default=40.0,
                        help="measured seconds per blackbox_exporter phase")
    parser.add_argument("--scrape-interval", type=float, default=15.0)
    parser.add_argument("--rules", type=int, default=200)
    parser.add_argument("--no-blackbox", dest="blackbox", action="store_false")
    parser.add_argument("--no-datadog", dest="datadog", action="store_false")
    parser.add_argument("--py-spy", metavar="DIR",
                        help="record the agent with py-spy during each measured window (raw "
                             "folded stacks in DIR; py-spy from PyPI)")
    parser.add_argument("--asyncio-debug", action="store_true",
                        help="run the agent in asyncio debug mode and list the callbacks that "
                             "held its loop over 0.1 s (costly: find stalls, do not measure)")
    parser.add_argument("--gc-stats", action="store_true",
                        help="time the agent's garbage collections (a wrapper around its CLI)")
    parser.add_argument("--baseline", metavar="DIR",
                        help="also run the agent of another checkout (e.g. `git worktree add DIR "
                             "main`) at each size, just before this one's, side by side")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, stores)")
    parser.add_argument("--serve-target", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_target:
        serve_target(args.serve_target, args.interval)
        return
    if not (1 <= args.interval <= 300 and 5 <= args.duration <= 3600 and 0 <= args.warmup <= 3600
            and 5 <= args.bb_duration <= 3600 and all(1 <= s <= 20_000 for s in args.sizes)):
        parser.error("out of bounds: interval 1-300 s, durations 5-3600 s, sizes 1-20,000")
    random.seed(1)
    sys.exit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
