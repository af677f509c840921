"""CPU per 1,000 probes: the model_endpoint probe path vs Prometheus blackbox_exporter.

Both probe the same local HTTP target (a separate process, not measured) at concurrency
50, in alternating rounds of the same run, so the noisy shared machine affects both
alike. Our CPU is this process's (the whole check run: request, classification,
samples); blackbox_exporter's is its own process's, driven through /probe the way
Prometheus drives it. Two target modes: `fresh` (the target closes every connection, as
blackbox_exporter always opens a new one) and `keep-alive` (what the shared session does
in practice). Prints the ratios; the aim is <= 0.6.

What it leaves out: everything around the probe in the running agent: the scheduler, the
pipeline and its sinks (store, exporters, rules), /metrics scrapes and the agent's own
housekeeping. benchmarks/agent_scale.py measures the whole agent against
blackbox_exporter at the same probe rate; that ratio is the headline figure.

    MLWARDEN_PEERS=/work/peers .venv/bin/python benchmarks/probes.py [--probes 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from agent.check import CheckContext  # noqa: E402
from agent.samples import Status  # noqa: E402
from checks.model_endpoint.check import ModelEndpointCheck  # noqa: E402
from tests.support.procs import PEERS, Proc, free_port, wait_http  # noqa: E402

CONCURRENCY = 50
TARGET = """
import sys
from aiohttp import web
close = sys.argv[2] == "fresh"
async def health(request):
    return web.Response(text="ok", headers={"Connection": "close"} if close else None)
app = web.Application()
app.router.add_get("/health", health)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""
BLACKBOX = """modules:
  http_2xx:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
"""


async def ours(url: str, probes: int) -> float:
    """CPU seconds of this process for ``probes`` check runs at concurrency 50."""
    ctx = CheckContext()
    checks = [ModelEndpointCheck(ModelEndpointCheck.Config(
        type="model_endpoint", name=f"b{i}", url=url, protocol="http", request_timeout="5s"),
        ctx) for i in range(CONCURRENCY)]
    per = probes // CONCURRENCY
    failures = 0

    async def loop(check: ModelEndpointCheck) -> None:
        nonlocal failures
        for _ in range(per):
            result = await check.run()
            failures += result.status != Status.OK

    await asyncio.gather(*(loop(c) for c in checks[:5]))  # warm-up: pool, imports
    start = time.process_time()
    await asyncio.gather(*(loop(c) for c in checks))
    used = time.process_time() - start
    await ctx.close()
    if failures:
        raise SystemExit(f"our probes failed {failures} times; the figures would be meaningless")
    return used * 1000 / (per * CONCURRENCY)


async def blackbox(exporter: str, target: str, pid: int, probes: int) -> float:
    """CPU seconds of blackbox_exporter's process for ``probes`` probes at concurrency 50."""
    proc = psutil.Process(pid)
    per = probes // CONCURRENCY
    url = f"{exporter}/probe"
    params = {"module": "http_2xx", "target": target}
    failures = 0
    async with aiohttp.ClientSession() as session:
        async def loop(n: int) -> None:
            nonlocal failures
            for _ in range(n):
                async with session.get(url, params=params) as resp:
                    body = await resp.text()
                    failures += resp.status != 200 or "probe_success 1" not in body

        await asyncio.gather(*(loop(2) for _ in range(10)))  # warm-up
        before = proc.cpu_times()
        await asyncio.gather(*(loop(per) for _ in range(CONCURRENCY)))
        after = proc.cpu_times()
    if failures:
        raise SystemExit(f"blackbox probes failed {failures} times")
    used = (after.user - before.user) + (after.system - before.system)
    return used * 1000 / (per * CONCURRENCY)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probes", type=int, default=1000, help="probes per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    binary = PEERS / "promstack" / "bin" / "blackbox_exporter"
    if not binary.exists():
        raise SystemExit(f"{binary} is missing: run `bash tests/peers/install-promstack.sh`")
    work = Path(tempfile.mkdtemp(prefix="probes-bench-"))
    (work / "blackbox.yml").write_text(BLACKBOX)
    procs: list[Proc] = []
    try:
        targets = {}
        for mode in ("fresh", "keep-alive"):
            port = free_port()
            p = Proc(f"target-{mode}", [sys.executable, "-c", TARGET, str(port), mode],
                     log_dir=work)
            procs.append(p.start())
            targets[mode] = f"http://127.0.0.1:{port}/health"
            wait_http(targets[mode], timeout=30, proc=p)
        bb_port = free_port()
        bb = Proc("blackbox", [binary, f"--config.file={work / 'blackbox.yml'}",
                               f"--web.listen-address=127.0.0.1:{bb_port}"], log_dir=work)
        procs.append(bb.start())
        wait_http(f"http://127.0.0.1:{bb_port}/-/healthy", timeout=30, proc=bb)
        print(f"CPU ms per probe ({args.probes} probes per round, concurrency {CONCURRENCY}, "
              f"{args.rounds} alternating rounds, median)")
        for mode, url in targets.items():
            ours_ms, bb_ms = [], []
            for _ in range(args.rounds):
                ours_ms.append(asyncio.run(ours(url, args.probes), debug=False))
                bb_ms.append(asyncio.run(blackbox(f"http://127.0.0.1:{bb_port}", url, bb.pid,
                                                  args.probes), debug=False))
            o, b = statistics.median(ours_ms), statistics.median(bb_ms)
            print(f"  target {mode:<10} mlwarden {o:6.3f} ms  blackbox_exporter {b:6.3f} ms  "
                  f"ratio {o / b:4.2f}   (CPU s per 1,000 probes: {o:.2f} vs {b:.2f})")
    finally:
        for p in procs:
            p.stop()


if __name__ == "__main__":
    os.environ.pop("PYTHONASYNCIODEBUG", None)  # debug mode would measure itself
    main()
