"""Soak: one agent under a realistic load for a bounded time, watched from outside.

One ``mlwarden run`` subprocess with 1,000 ``model_endpoint`` checks against local targets
(healthy, slow, failing with 500, refusing connections, hanging past the timeout, flapping
200/503, and MLServer-shaped V2 models), the Airflow check against the strict fake built
from recorded Airflow 3 answers (tests/checks/airflow_fake.py), the GPU check's ``dcgm``
source against dcgm-exporter output (tests/checks/gpu_dcgm_samples.py), 200 rules when the
rules engine is present (#7), Slack through the strict fake (tests/notify/fake_slack.py)
and the Prometheus exporter scraped every 10 s. Every server is in this process on
127.0.0.1; the agent is the only child and is stopped by its PID.

It reports, from outside the agent: RSS over time and its slope after warm-up (flat is the
aim), CPU per probe, store growth, Slack notifications delivered against the number the
rules must produce, and schedule drift (p99 lateness of each check's runs against its own
interval, from /status).

    python benchmarks/soak.py [--duration 240] [--endpoints 1000] [--interval 10]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import yaml
from aiohttp import web

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from agent.config import AgentConfig  # noqa: E402
from tests.checks.airflow_fake import PASSWORD, USER, FakeAirflow  # noqa: E402
from tests.checks.gpu_dcgm_samples import DcgmGpu, exposition  # noqa: E402
from tests.notify.fake_slack import TOKEN, FakeSlack  # noqa: E402
from tests.support.procs import free_port  # noqa: E402
from tests.support.targets import load_fixture  # noqa: E402

HAS_RULES = "rules" in AgentConfig.model_fields
MIB = 2**20


# -- targets ---------------------------------------------------------------------------
class Endpoints:
    """One aiohttp app serving every endpoint kind; counts the requests it answers."""

    def __init__(self) -> None:
        self.requests = 0
        self.flap: dict[str, int] = {}
        self.dcgm = exposition([DcgmGpu(i, f"GPU-{i:08d}-soak") for i in range(8)])
        self.model_meta = load_fixture("mlserver", "model_metadata.json")
        self.server_meta = load_fixture("mlserver", "server_metadata.json")

    def app(self) -> web.Application:
        app = web.Application()
        r = app.router
        r.add_get("/ok/{i}", self.ok)
        r.add_get("/slow/{i}", self.slow)
        r.add_get("/fail/{i}", self.fail)
        r.add_get("/hang/{i}", self.hang)
        r.add_get("/flap/{i}", self.flapping)
        r.add_get("/v2/health/live", self.empty)
        r.add_get("/v2/health/ready", self.empty)
        r.add_get("/v2", self.v2_server)
        r.add_get("/v2/models/{m}/ready", self.empty)
        r.add_get("/v2/models/{m}", self.v2_model)
        r.add_get("/dcgm/metrics", self.metrics)
        return app

    async def ok(self, request: web.Request) -> web.Response:
        self.requests += 1
        return web.json_response({"status": "ok"})

    async def slow(self, request: web.Request) -> web.Response:
        self.requests += 1
        await asyncio.sleep(0.2 + (int(request.match_info["i"]) % 10) * 0.15)  # 0.2 .. 1.55 s
        return web.json_response({"status": "ok"})

    async def fail(self, request: web.Request) -> web.Response:
        self.requests += 1
        return web.json_response({"error": "model crashed"}, status=500)

    async def hang(self, request: web.Request) -> web.Response:
        self.requests += 1
        await asyncio.sleep(20)  # past the check's 3 s timeout; bounded
        return web.json_response({"status": "late"})

    async def flapping(self, request: web.Request) -> web.Response:
        self.requests += 1
        key = request.match_info["i"]
        n = self.flap[key] = self.flap.get(key, 0) + 1
        return web.json_response({"status": "ok"}, status=200 if n % 2 else 503)

    async def empty(self, request: web.Request) -> web.Response:
        if request.path == "/v2/health/live":
            self.requests += 1
        return web.Response(body=b"")

    async def v2_server(self, request: web.Request) -> web.Response:
        return web.json_response(self.server_meta)

    async def v2_model(self, request: web.Request) -> web.Response:
        return web.json_response({**self.model_meta, "name": request.match_info["m"]})

    async def metrics(self, request: web.Request) -> web.Response:
        return web.Response(text=self.dcgm, content_type="text/plain")


async def serve(app: web.Application) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


# -- the agent's config ----------------------------------------------------------------
KINDS = (("fail", 100), ("down", 20), ("hang", 20), ("flap", 100), ("slow", 160), ("v2", 100))


def endpoint_names(total: int) -> list[tuple[str, str, int]]:
    """(check name, kind, index) for ``total`` endpoints; the rest of the kinds is healthy."""
    out, n = [], 0
    scale = total / 1000
    for kind, count in KINDS:
        for i in range(max(1, int(count * scale))):
            out.append((f"ep-{kind}-{i}", kind, i))
            n += 1
    for i in range(total - n):
        out.append((f"ep-ok-{i}", "ok", i))
    return out[:total]


def make_rules(names: list[tuple[str, str, int]]) -> tuple[list[dict[str, Any]], int]:
    """200 rules on the checks' own verdicts; returns them and the alerts that must fire."""
    by_kind: dict[str, list[str]] = {}
    for name, kind, _ in names:
        by_kind.setdefault(kind, []).append(name)
    rules, expected = [], 0
    # fail: CRITICAL on every run -> fires once each and stays firing
    for name in by_kind.get("fail", [])[:100]:
        rules.append({"alert": f"SoakFail_{name}", "metric": "mlwarden.check.status",
                      "where": {"check": name}, "op": "==", "threshold": 2, "for": "0s",
                      "severity": "critical", "summary": "{check} is CRITICAL ({value:.0f})"})
        expected += 1
    # flap: CRITICAL every other run; `for: 1h` must hold them all back
    for name in by_kind.get("flap", [])[:50]:
        rules.append({"alert": f"SoakFlap_{name}", "metric": "mlwarden.check.status",
                      "where": {"check": name}, "op": "==", "threshold": 2, "for": "1h",
                      "summary": "{check} flaps"})
    # healthy and slow-but-in-time targets: must never fire
    quiet = by_kind.get("ok", []) + by_kind.get("slow", []) + by_kind.get("v2", [])
    for name in quiet[: 200 - len(rules)]:
        rules.append({"alert": f"SoakQuiet_{name}", "metric": "mlwarden.check.status",
                      "where": {"check": name}, "op": ">", "threshold": 0, "for": "0s",
                      "summary": "{check} is not OK"})
    return rules, expected


def write_config(path: Path, args: argparse.Namespace, port: int, ep_port: int, closed_port: int,
                 airflow_url: str, slack: FakeSlack) -> tuple[list[tuple[str, str, int]], int]:
    names = endpoint_names(args.endpoints)
    base = f"http://127.0.0.1:{ep_port}"
    checks: list[dict[str, Any]] = []
    for name, kind, i in names:
        c: dict[str, Any] = {"type": "model_endpoint", "name": name, "interval": f"{args.interval}s",
                             "protocol": "http"}
        if kind == "v2":
            c.update(protocol="v2", url=base, model=f"model-{i}")
        elif kind == "down":
            c["url"] = f"http://127.0.0.1:{closed_port}/"
        else:
            c["url"] = f"{base}/{kind}/{i}"
        if kind == "hang":
            c.update(timeout="3s", request_timeout="3s")
        checks.append(c)
    checks.append({"type": "airflow", "name": "airflow", "url": airflow_url, "api_version": "2",
                   "username": USER, "password": PASSWORD, "interval": f"{args.interval}s"})
    checks.append({"type": "gpu", "name": "fleet-gpus", "source": "dcgm",
                   "urls": [f"{base}/dcgm/metrics"], "interval": f"{args.interval}s",
                   "price_per_gpu_hour": 2.0})
    doc: dict[str, Any] = {
        "agent": {"listen": f"127.0.0.1:{port}", "history": f"sqlite:///{path.parent}/history.db",
                  "log_level": "warning", "log_format": "json"},
        "exporters": {"prometheus": {"enabled": True}},
        "alerting": {
            "slack": {"token": TOKEN, "base_url": slack.base_url, "default_channel": "#ml-alerts",
                      "charts": False},
            "group_by": ["alertname"], "group_wait": "1s", "group_interval": "10m",
            "repeat_interval": "4h", "delivery": {"pace": "0s"},
        },
        "checks": checks,
    }
    expected = 0
    if HAS_RULES:
        doc["rules"], expected = make_rules(names)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    path.chmod(0o600)  # it holds the (fake) Slack token
    return names, expected


# -- watching ----------------------------------------------------------------------------
@dataclass
class Watch:
    t0: float
    rss: list[tuple[float, float]] = field(default_factory=list)       # (s since ready, MiB)
    cpu: list[tuple[float, float, int]] = field(default_factory=list)  # (s, cpu s, probes)
    store: list[tuple[float, int]] = field(default_factory=list)       # (s, bytes)
    rows_at_warmup: dict[str, int] = field(default_factory=dict)
    scrapes: list[tuple[float, int]] = field(default_factory=list)     # (s taken, bytes)
    status_polls: list[float] = field(default_factory=list)
    first_run: dict[str, tuple[float, int]] = field(default_factory=dict)
    lateness: list[float] = field(default_factory=list)
    lateness_by_kind: dict[str, list[float]] = field(default_factory=dict)
    healthz: list[float] = field(default_factory=list)  # /healthz answer times: event-loop stalls
    skipped: dict[str, int] = field(default_factory=dict)
    last_status: dict[str, Any] = field(default_factory=dict)

    def status(self, doc: dict[str, Any], warm: bool) -> int:
        """Record runs; lateness of run k = its start - (first seen start + k * interval)."""
        self.last_status = doc
        probes = 0
        for c in doc["checks"]:
            probes += c["runs"]
            if not c["last_run"] or not warm:
                continue
            start = datetime.fromisoformat(c["last_run"]).timestamp()
            name, interval = c["name"], c["interval"]
            if name not in self.first_run:
                self.first_run[name] = (start, c["runs"])
                continue
            s0, r0 = self.first_run[name]
            k = round((start - s0) / interval)
            if k <= 0:
                continue
            late = start - s0 - k * interval
            self.lateness.append(late)
            kind = name.split("-")[1] if name.startswith("ep-") else name
            self.lateness_by_kind.setdefault(kind, []).append(late)
            self.skipped[name] = max(0, k - (c["runs"] - r0))
        return probes


def store_bytes(tmp: Path) -> int:
    return sum(p.stat().st_size for p in tmp.glob("history.db*") if p.exists())


def store_rows(tmp: Path) -> dict[str, int]:
    """Rows and pages in use, read through a read-only connection beside the agent (WAL)."""
    import sqlite3

    try:
        db = sqlite3.connect(f"file:{tmp / 'history.db'}?mode=ro", uri=True, timeout=5)
        try:
            one = lambda q: db.execute(q).fetchone()[0]  # noqa: E731
            used = (one("PRAGMA page_count") - one("PRAGMA freelist_count")) * one("PRAGMA page_size")
            return {"samples": one("SELECT count(*) FROM samples"),
                    "series": one("SELECT count(*) FROM series"), "used": used}
        finally:
            db.close()
    except sqlite3.Error as exc:
        print(f"  (cannot read the store: {exc})")
        return {}


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope in units per minute."""
    if len(points) < 3:
        return float("nan")
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return statistics.linear_regression(xs, ys).slope * 60


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _die_with_parent() -> None:
    """In the child: SIGTERM it when this process dies, however it dies (Linux)."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


async def soak(args: argparse.Namespace) -> int:
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)  # stop cleanly
    endpoints = Endpoints()
    fake_airflow = FakeAirflow("3", time.time)
    now = time.time()
    fake_airflow.run("train_ranker", "manual__soak_1", "success", now - 600, now - 500)
    fake_airflow.run("etl_daily_features", "manual__soak_2", "failed", now - 400, now - 300)
    fake_airflow.ti("etl_daily_features", "manual__soak_2", "build_features", "failed")
    airflow_target = fake_airflow.target()
    slack = FakeSlack()
    runners: list[web.AppRunner] = []
    proc: subprocess.Popen[bytes] | None = None
    log = None
    code = 1
    with tempfile.TemporaryDirectory(prefix="mlwarden-soak-") as tmpdir:
        tmp = Path(tmpdir)
        try:
            runner, ep_port = await serve(endpoints.app())
            runners.append(runner)
            await airflow_target.__aenter__()
            await slack.start()
            port, closed_port = free_port(), free_port()
            cfg = tmp / "agent.yaml"
            names, expected = write_config(cfg, args, port, ep_port, closed_port,
                                           airflow_target.url, slack)
            print(f"soak: {len(names)} endpoint checks + airflow + gpu(dcgm), interval {args.interval}s, "
                  f"rules: {'200' if HAS_RULES else 'none (rules engine not in this tree)'}, "
                  f"duration {args.duration}s", flush=True)
            log = open(tmp / "agent.log", "wb")  # noqa: SIM115 - closed in `finally`
            t_spawn = time.monotonic()
            env = dict(os.environ)
            if args.asyncio_debug:  # asyncio logs each callback that holds the loop > 0.1 s
                env["PYTHONASYNCIODEBUG"] = "1"
            cmd = [sys.executable, "-m", "agent.cli"]
            if args.memory_profile:  # tracemalloc, malloc and SQLite counters from inside
                cmd = [sys.executable, str(REPO / "benchmarks" / "_memprobe.py")]
                env.update(MEMPROBE_OUT=str(tmp / "memprobe.jsonl"), MEMPROBE_EVERY="30",
                           MEMPROBE_WARMUP=str(max(30.0, args.duration * 0.3)),
                           MEMPROBE_FRAMES=str(args.tracemalloc_frames))
            proc = subprocess.Popen([*cmd, "run", "--config", str(cfg)],
                                    cwd=tmp, stdout=log, stderr=subprocess.STDOUT, env=env,
                                    preexec_fn=_die_with_parent)
            ps = psutil.Process(proc.pid)
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http:
                base = f"http://127.0.0.1:{port}"
                ready_by = time.monotonic() + 60
                while time.monotonic() < ready_by:
                    if proc.poll() is not None:
                        raise RuntimeError(f"agent exited with {proc.returncode}:\n"
                                           + (tmp / "agent.log").read_text()[-3000:])
                    with contextlib.suppress(aiohttp.ClientError, OSError, asyncio.TimeoutError):
                        async with http.get(base + "/readyz") as r:
                            if r.status == 200:
                                break
                    await asyncio.sleep(0.2)
                else:
                    raise RuntimeError("agent not ready within 60 s")
                print(f"ready after {time.monotonic() - t_spawn:.2f} s", flush=True)
                w = Watch(time.monotonic())

                async def ping() -> None:  # the agent's event loop answers /healthz at once
                    while time.monotonic() < w.t0 + args.duration:
                        s = time.monotonic()
                        with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                            async with http.get(base + "/healthz") as r:
                                await r.read()
                            w.healthz.append(time.monotonic() - s)
                        await asyncio.sleep(0.5)
                pinger = asyncio.create_task(ping())
                try:
                    await watch(w, args, http, base, proc, ps, tmp)
                finally:
                    pinger.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await pinger
            report(w, max(30.0, args.duration * 0.3), endpoints, slack, fake_airflow, expected, tmp)
            if args.memory_profile:
                memory_report(tmp / "memprobe.jsonl")
            code = 0
        except asyncio.CancelledError:
            print("soak: stopped by SIGTERM")
        finally:
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
                print(f"agent stopped (pid {proc.pid}, exit {proc.returncode})")
            if log is not None:
                log.close()
            await slack.stop()
            try:
                await airflow_target.__aexit__(None, None, None)
            except AssertionError as exc:  # the strict fake saw routes it does not serve
                print(f"FINDING: airflow fake: {exc}")
                code = 1
            for runner in runners:
                await runner.cleanup()
            levels: dict[str, list[str]] = {}
            if (tmp / "agent.log").exists():
                for line in (tmp / "agent.log").read_text(errors="replace").splitlines():
                    try:
                        level = json.loads(line).get("level", "?")
                    except ValueError:
                        level = "not json"
                    levels.setdefault(level, []).append(line)
            total = sum(len(v) for v in levels.values())
            print("agent log lines by level: " + ", ".join(f"{k} {len(v)}" for k, v in sorted(levels.items()))
                  + f" ({total / (args.duration / 60):.1f} per minute of the run)")
            for level in ("error", "critical", "not json"):
                for line in levels.get(level, [])[:3]:
                    print(f"  {level}: {line[:300]}")
            slow = [json.loads(ln).get("msg", ln) for ln in levels.get("warning", [])
                    if "Executing " in ln and " took " in ln]
            if slow:
                slow.sort(key=lambda m: -float(m.rsplit(" took ", 1)[-1].split()[0].strip('"')))
                print(f"event-loop callbacks over 0.1 s: {len(slow)}; longest:")
                for m in slow[:8]:
                    print(f"  {m[:400]}")
    return code


async def watch(w: Watch, args: argparse.Namespace, http: aiohttp.ClientSession, base: str,
                proc: subprocess.Popen[bytes], ps: psutil.Process, tmp: Path) -> None:
    """Poll /status, the agent's CPU and RSS, the store and /metrics until the time is up."""
    warmup = max(30.0, args.duration * 0.3)
    end = w.t0 + args.duration
    next_scrape = w.t0
    while time.monotonic() < end and proc.poll() is None:
        t = time.monotonic() - w.t0
        async with http.get(base + "/status") as r:
            doc = await r.json()
        w.status_polls.append(time.monotonic() - w.t0 - t)
        probes = w.status(doc, warm=t >= warmup)
        cpu = ps.cpu_times()
        w.cpu.append((t, cpu.user + cpu.system, probes))
        w.rss.append((t, ps.memory_info().rss / MIB))
        w.store.append((t, store_bytes(tmp)))
        if t >= warmup and not w.rows_at_warmup:
            w.rows_at_warmup = store_rows(tmp) or {"samples": 0, "series": 0, "used": 0}
            w.rows_at_warmup["t"] = int(t)
        if time.monotonic() >= next_scrape:
            s = time.monotonic()
            async with http.get(base + "/metrics") as r:
                body = await r.read()
            w.scrapes.append((time.monotonic() - s, len(body)))
            next_scrape += 10
        await asyncio.sleep(max(0.0, min(5.0, end - time.monotonic())))
    if proc.poll() is not None:
        raise RuntimeError(f"agent died with {proc.returncode} during the soak:\n"
                           + (tmp / "agent.log").read_text()[-3000:])


def report(w: Watch, warmup: float, endpoints: Endpoints, slack: FakeSlack, airflow: FakeAirflow,
           expected: int, tmp: Path) -> None:
    steady = [p for p in w.rss if p[0] >= warmup]
    print("\n== RSS (MiB) over time")
    step = max(1, len(w.rss) // 12)
    print("  " + "  ".join(f"{t:.0f}s:{m:.1f}" for t, m in w.rss[::step]))
    print(f"  after warm-up ({warmup:.0f} s): min {min(m for _, m in steady):.1f}  "
          f"max {max(m for _, m in steady):.1f}  slope {slope(steady):+.3f} MiB/min "
          f"(second half of it: {slope(steady[len(steady) // 2:]):+.3f} MiB/min)")
    c0 = next(c for c in w.cpu if c[0] >= warmup)
    c1 = w.cpu[-1]
    probes = c1[2] - c0[2]
    span = c1[0] - c0[0]
    print("\n== CPU (after warm-up)")
    print(f"  agent CPU {c1[1] - c0[1]:.2f} s over {span:.0f} s ({(c1[1] - c0[1]) / span * 100:.1f}% of one core)")
    if probes:
        print(f"  check runs {probes} ({probes / span:.1f}/s): {(c1[1] - c0[1]) / probes * 1e3:.3f} ms CPU per run "
              "(everything included: probe, pipeline, store, rules, exporter, /status polls)")
    print(f"  target requests answered: {endpoints.requests}")
    print("\n== store (SQLite)")
    print(f"  files (db + WAL) at end {w.store[-1][1] / MIB:.1f} MiB")
    rows, r0 = store_rows(tmp), w.rows_at_warmup
    if rows:
        print(f"  at end: {rows['samples']} raw samples in {rows['series']} series, "
              f"{rows['used'] / MIB:.1f} MiB of pages in use, "
              f"{rows['used'] / max(1, rows['samples']):.0f} bytes per stored sample")
    if rows and r0:
        span_s = max(1.0, w.store[-1][0] - r0["t"])
        grown = rows["used"] - r0["used"]
        print(f"  after warm-up: +{rows['samples'] - r0['samples']} samples, +{rows['series'] - r0['series']} "
              f"series, +{grown / MIB:.2f} MiB in {span_s:.0f} s = {grown / MIB / span_s * 3600:.0f} MiB/hour"
              + (f", {grown / probes:.0f} bytes per check run" if probes else ""))
    print("\n== schedule drift (check run start vs first run + k x interval, after warm-up)")
    late = w.lateness
    print(f"  {len(late)} observations: p50 {pct(late, .5) * 1e3:.0f} ms  p99 {pct(late, .99) * 1e3:.0f} ms"
          f"  max {max(late, default=float('nan')) * 1e3:.0f} ms; skipped runs {sum(w.skipped.values())}")
    print("  p99 by kind: " + ", ".join(f"{k} {pct(v, .99) * 1e3:.0f} ms"
                                      for k, v in sorted(w.lateness_by_kind.items())))
    print(f"  runs more than 0.5 s late: {sum(x > .5 for x in late)}; "
          f"/healthz answer time p50 {pct(w.healthz, .5) * 1e3:.0f} ms, p99 {pct(w.healthz, .99) * 1e3:.0f} ms, "
          f"max {max(w.healthz, default=float('nan')) * 1e3:.0f} ms (event-loop stalls)")
    checks = w.last_status.get("checks", [])
    print(f"  missed (scheduler) {sum(c['missed'] for c in checks)}, "
          f"skipped_overlap {sum(c['skipped_overlap'] for c in checks)}; "
          f"pipeline {json.dumps(w.last_status.get('pipeline'))}")
    print(f"  /status poll (1,000+ checks) p50 {pct(w.status_polls, .5) * 1e3:.0f} ms, "
          f"max {max(w.status_polls) * 1e3:.0f} ms")
    print("\n== Prometheus /metrics")
    if w.scrapes:
        print(f"  {len(w.scrapes)} scrapes, p50 {pct([s for s, _ in w.scrapes], .5) * 1e3:.0f} ms, "
              f"{w.scrapes[-1][1] / 1024:.0f} KiB")
    by_status: dict[str, int] = {}
    for c in checks:
        by_status[c["status"]] = by_status.get(c["status"], 0) + 1
    print("\n== checks by status: " + ", ".join(f"{k} {v}" for k, v in sorted(by_status.items())))
    by_kind: dict[str, dict[str, int]] = {}
    for c in checks:
        kind = c["name"].split("-")[1] if c["name"].startswith("ep-") else c["name"]
        counts = by_kind.setdefault(kind, {})
        counts[c["status"]] = counts.get(c["status"], 0) + 1
    print("  by kind: " + "; ".join(f"{k}: " + ",".join(f"{s} {n}" for s, n in sorted(v.items()))
                                    for k, v in sorted(by_kind.items())))
    for name in ("airflow", "fleet-gpus"):
        c = next((c for c in checks if c["name"] == name), None)
        if c:
            print(f"  {name}: {c['status']} runs {c['runs']} - {c['message'][:150]}")
    print(f"  airflow fake: {len(airflow.calls)} API calls, tokens issued {airflow.tokens_issued}, "
          f"bad params {airflow.bad_params[:3]}")
    print("\n== alert notifications (Slack fake)")
    top = slack.top_level()
    wrong = [m.text[:80] for m in top if "SoakFail_" not in (m.text or "")]
    print(f"  top-level messages {len(top)} (expected {expected if HAS_RULES else 'n/a: no rules engine'}),"
          f" replies {len(slack.messages) - len(top)}, refused by the fake {len(slack.refused)}"
          f"{': ' + str(slack.refused[:2]) if slack.refused else ''}")
    if wrong:
        print(f"  UNEXPECTED messages ({len(wrong)}): {wrong[:3]}")


def memory_report(path: Path) -> None:
    """What grew inside the agent: Python objects, SQLite's caches or the C allocator."""
    if not path.exists():
        print("\n== memory profile: no records")
        return
    recs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    print("\n== memory profile (inside the agent; tracemalloc adds its own overhead to RSS)")
    print("  t(s)    RSS traced sqlite  malloc: in-use  free  mmap  pymalloc: arenas in-use free-blocks"
          "  gc-objects threads   (MiB)")
    for r in recs:
        m, pm = r.get("malloc", {}), r.get("pymalloc", {})
        print(f"  {r['t']:5.0f} {r['rss'] / MIB:6.1f} {r['traced'] / MIB:6.1f} {r.get('sqlite', 0) / MIB:6.1f}"
              f" {m.get('in_use', 0) / MIB:15.1f} {m.get('free', 0) / MIB:5.1f} {m.get('mmap', 0) / MIB:5.1f}"
              f" {pm.get('arena_bytes', 0) / MIB:16.1f} {pm.get('in_use', 0) / MIB:6.1f}"
              f" {pm.get('free_blocks', 0) / MIB:11.1f} {r['gc_objects']:11d} {r['threads']:7d}")
    last = next((r for r in reversed(recs) if r.get("growth")), None)
    if last:
        print(f"  Python allocation sites that grew most since warm-up (at {last['t']:.0f} s):")
        for g in last["growth"][:10]:
            print(f"    {g['bytes'] / 1024:+9.1f} KiB {g['count']:+7d} blocks  {' <- '.join(reversed(g['where']))[:300]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=240.0, help="seconds after ready (default 240)")
    parser.add_argument("--endpoints", type=int, default=1000)
    parser.add_argument("--interval", type=int, default=10, help="check interval, seconds")
    parser.add_argument("--asyncio-debug", action="store_true",
                        help="run the agent in asyncio debug mode and list the callbacks that stall its loop")
    parser.add_argument("--memory-profile", action="store_true",
                        help="record the agent's malloc, pymalloc and SQLite memory from inside "
                             "(benchmarks/_memprobe.py)")
    parser.add_argument("--tracemalloc-frames", type=int, default=0,
                        help="with --memory-profile: also trace Python allocations with this many frames "
                             "and list the sites that grew (costly: RSS then includes tracemalloc's own)")
    args = parser.parse_args()
    if not 10 <= args.duration <= 3600:
        parser.error("--duration must be between 10 and 3600 seconds")
    random.seed(1)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(asyncio.run(soak(args)))


if __name__ == "__main__":
    main()
