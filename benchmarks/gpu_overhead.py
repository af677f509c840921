"""What the gpu check costs the agent, measured side by side in one run.

1. Start-up: the device-file presence test `mlwarden run` uses to decide whether to add the
   NVML check, against importing nvidia-ml-py and calling nvmlInit (what a naive probe does).
2. Scrape: turning one 8-GPU dcgm-exporter page into readings, against prometheus_client's
   parser alone (the floor: the parse every consumer pays).
3. A whole dcgm check run against a local 8-GPU exporter per node, 1 and 16 nodes.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from checks.gpu.dcgm import parse_exposition  # noqa: E402
from checks.gpu.presence import gpu_present  # noqa: E402
from tests.checks.gpu_dcgm_samples import DcgmGpu, exposition  # noqa: E402


def per_call(fn, n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - started) / n


def naive_probe() -> None:
    sys.modules.pop("pynvml", None)
    pynvml = importlib.import_module("pynvml")
    try:
        pynvml.nvmlInit()
        pynvml.nvmlShutdown()
    except pynvml.NVMLError:
        pass


async def dcgm_runs(nodes: int, runs: int) -> tuple[float, float]:
    from aiohttp import web

    from agent.check import CheckContext
    from checks.gpu.check import GpuCheck
    from checks.gpu.config import GpuConfig
    from tests.support.targets import Target

    pages = {f"/n{i}": exposition([DcgmGpu(g, f"GPU-{i:04d}-{g}", hostname=f"node-{i}") for g in range(8)])
             for i in range(nodes)}

    def handler(text: str):
        async def serve(request: web.Request) -> web.Response:
            return web.Response(text=text, content_type="text/plain")
        return serve

    async with Target({("GET", path): handler(text) for path, text in pages.items()}) as target:
        config = GpuConfig(type="gpu", name="bench", source="dcgm", urls=[target.url + p for p in pages],
                           price_per_gpu_hour=4.0)
        check = GpuCheck(config, CheckContext())
        await check.run()  # warm the connection pool
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(runs):
            result = await check.run()
            assert result.status.name == "OK", result.message
        wall, cpu = (time.perf_counter() - wall) / runs, (time.process_time() - cpu) / runs
        await check.context.close()
    return wall, cpu


def main() -> None:
    present = per_call(gpu_present, 2000)
    naive = per_call(naive_probe, 20)
    print(f"start-up probe: device files {present * 1e6:8.1f} us   import pynvml + nvmlInit {naive * 1e6:8.1f} us"
          f"   ratio {naive / present:6.1f}x")
    page = exposition([DcgmGpu(g, f"GPU-{g}") for g in range(8)])
    floor = per_call(lambda: [s for f in text_string_to_metric_families(page) for s in f.samples], 200)
    ours = per_call(lambda: parse_exposition(page, "node"), 200)
    print(f"8-GPU dcgm page ({len(page)} bytes): parser alone {floor * 1e3:6.2f} ms   to readings "
          f"{ours * 1e3:6.2f} ms   ratio {ours / floor:5.2f}x")
    for nodes in (1, 16):
        wall, cpu = asyncio.run(dcgm_runs(nodes, 20))
        print(f"dcgm check run, {nodes:2d} node(s) x 8 GPUs: {wall * 1e3:7.1f} ms wall  {cpu * 1e3:7.1f} ms CPU"
              f"  ({cpu / nodes * 1e3:5.2f} ms CPU per node)")


if __name__ == "__main__":
    main()
