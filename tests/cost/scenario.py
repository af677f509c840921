"""Three recorded days of a small GPU fleet, built for the cost tests (figures worked by hand).

Sources, each read by the real check that reads it in production:

- node ``gpu-a`` through NVML (strict pynvml fake, /proc fixtures naming pods): GPU A0 holds
  the pod ``ranker-0`` (1.2 GiB, 4 % busy); GPU A1 is idle, except while the ``evaluate``
  task of the ``train_ranker`` DAG runs on the node (a host process, Celery style);
- node ``gpu-b`` through a dcgm-exporter in Kubernetes mode (its exposition built from its
  own default counters): GPU B0 is labelled with the pod ``iris-sklearn-0`` (10 GiB, 30 % and
  40 % busy in turn); GPU B1 is labelled with the pod of the ``train`` task while it runs
  (95 % busy), idle otherwise;
- a real MLServer serving iris-sklearn: its own /metrics request counters, scraped hourly
  by the openmetrics check tagged with the pod it serves from (``pod: iris-sklearn-0``);
- Airflow 3 (the strict fake built from recorded responses): one train_ranker run a day
  (train 2 h, 2 h, then 3 h on the pod ``train-ranker-<day>``; evaluate 30 min on
  ``gpu-a.cluster.local``), polled by the airflow check with ``task_instances: true``.

Readings every 10 minutes from T0 - 10 min (a warm-up that starts the clocks) to T0 + 72 h - 10
min; the report covers [T0, T0 + 72 h).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
from aiohttp import web

from agent.check import CheckContext, MemoryState
from agent.cost.config import CostConfig
from checks.airflow.check import AirflowCheck
from checks.gpu.check import GpuCheck
from checks.gpu.config import GpuConfig
from checks.openmetrics.check import OpenMetricsCheck
from tests.checks.airflow_fake import PASSWORD, USER, FakeAirflow, iso
from tests.checks.gpu_dcgm_samples import DcgmGpu, exposition
from tests.checks.gpu_fake_nvml import FakeGpu, FakeNvml
from tests.checks.test_gpu_cgroups import V2_HOST, V2_K8S_CONTAINERD_SYSTEMD, write_proc
from tests.cost.harness import Harness
from tests.support.targets import Target, load_fixture

GiB = 2**30
HOUR = 3600.0
T0 = 1_796_342_400.0          # 2026-12-04 00:00 UTC
STEP = 600.0
DAYS = 3
PRICE = 4.10
CONFIG = {
    "currency": "USD",
    "prices": [{"gpu_model": "*H100*", "price_per_hour": PRICE, "memory_gib": 80},
               {"gpu_model": "*L4*", "price_per_hour": 0.80, "memory_gib": 24, "name": "NVIDIA L4"}],
    "cpu_tier": {"price_per_hour": 0.20},
    "models": [{"model": "ranker", "pod": "ranker-*"}],
    "max_gap": "10m",
}
MODEL = "iris-sklearn"
REQUESTS_PER_HOUR = {0: 4, 1: 5, 2: 6}        # by day: 96 + 120 + 144 = 360
TRAIN_HOURS = {0: 2.0, 1: 2.0, 2: 3.0}        # train starts at 02:00 each day


def train_window(day: int) -> tuple[float, float]:
    start = T0 + day * 86400 + 2 * HOUR
    return start, start + TRAIN_HOURS[day] * HOUR


def evaluate_window(day: int) -> tuple[float, float]:
    end = train_window(day)[1]
    return end, end + 0.5 * HOUR


def running(window: tuple[float, float], t: float) -> bool:
    """A reading at t covers (t - STEP, t]: it shows what ran in that interval."""
    return window[0] < t <= window[1]


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class Dcgm:
    """gpu-b's dcgm-exporter: its output at the simulated time."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.reading = 0

    def text(self) -> str:
        t = self.clock()
        self.reading += 1
        iris = DcgmGpu(0, "GPU-b0000000-0000-4000-8000-000000000000", hostname="gpu-b", pod=f"{MODEL}-0",
                       namespace="serving", container="mlserver",
                       values={"DCGM_FI_DEV_GPU_UTIL": 30 if round((t - T0) / STEP) % 2 == 0 else 40})
        day = int((t - T0) // 86400)
        busy = 0 <= day < DAYS and running(train_window(day), t)
        train = DcgmGpu(1, "GPU-b0000000-0000-4000-8000-000000000001", hostname="gpu-b",
                        pod=f"train-ranker-{day}" if busy else "", namespace="airflow" if busy else "",
                        container="base" if busy else "",
                        values={"DCGM_FI_DEV_GPU_UTIL": 95 if busy else 0,
                                "DCGM_FI_DEV_FB_USED": 60000 if busy else 0,
                                "DCGM_FI_DEV_FB_FREE": 81879 - 639 - (60000 if busy else 0)})
        return exposition([iris, train], k8s=True)

    async def handler(self, request: web.Request) -> web.Response:
        return web.Response(text=self.text(), content_type="text/plain")


def airflow_runs(fake: FakeAirflow, day: int) -> None:
    run_id = f"scheduled__2026-12-0{4 + day}T02:00:00+00:00"
    (ts, te), (es, ee) = train_window(day), evaluate_window(day)
    fake.run("train_ranker", run_id, "success", ts - 60, ee + 60)
    fake.ti("train_ranker", run_id, "train", "success", start_date=iso(ts), end_date=iso(te),
            duration=te - ts, hostname=f"train-ranker-{day}")
    fake.ti("train_ranker", run_id, "evaluate", "success", start_date=iso(es), end_date=iso(ee),
            duration=ee - es, hostname="gpu-a.cluster.local")
    fake.ti("train_ranker", run_id, "notify", "skipped", start_date=None, end_date=None, duration=None,
            hostname="")


async def build(path: Path, proc_root: Path, mlserver_url: str, metrics_url: str) -> None:
    """Record the three days into the history database at ``path``."""
    clock = Clock(T0 - STEP)
    harness = Harness(str(path), CostConfig(**CONFIG), clock)
    write_proc(proc_root, 100, "python", V2_K8S_CONTAINERD_SYSTEMD,
               {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "HOSTNAME": "ranker-0", "POD_NAMESPACE": "serving"})
    write_proc(proc_root, 500, "python", V2_HOST)
    ranker = FakeGpu(uuid="GPU-a0000000-0000-4000-8000-000000000000", util_gpu=4,
                     memory_used=int(1.2 * GiB), processes=[(100, int(1.2 * GiB))])
    spare = FakeGpu(uuid="GPU-a0000000-0000-4000-8000-000000000001", bus_id="00000000:19:00.0")
    lib = FakeNvml([ranker, spare])
    state = MemoryState()

    def context() -> CheckContext:
        return CheckContext(clock=clock, state=state)

    nvml = GpuCheck(GpuConfig(type="gpu", name="gpu-a", node="gpu-a", interval=STEP, idle_window=STEP,
                              proc_root=str(proc_root), xid_events=False), context(), nvml_lib=lib)
    dcgm = Dcgm(clock)
    fake = FakeAirflow("3", clock)
    for day in range(DAYS):  # task listings are routes: declared up front; runs appear when they end
        airflow_runs(fake, day)
    runs, fake.runs = fake.runs, []
    body = json.dumps(load_fixture("mlserver", "infer_request_body.json"))
    async with Target({("GET", "/metrics"): dcgm.handler}) as exporter, fake.target() as af, \
            aiohttp.ClientSession() as http:
        ctx = context()
        gpu_b = GpuCheck(GpuConfig(type="gpu", name="gpu-b", source="dcgm", urls=[exporter.url + "/metrics"],
                                   interval=STEP, idle_window=STEP), ctx)
        scrape = OpenMetricsCheck(OpenMetricsCheck.Config(
            type="openmetrics", name="mlserver", url=metrics_url,
            metrics=[{"name": "model_infer_request_success_total"}], tags={"pod": f"{MODEL}-0"}), ctx)
        airflow = AirflowCheck(AirflowCheck.Config(
            type="airflow", name="airflow", url=af.url, username=USER, password=PASSWORD,
            dags=["train_ranker"], task_instances=True, initial_lookback=3600), ctx)

        async def infer(n: int) -> None:
            for _ in range(n):
                async with http.post(f"{mlserver_url}/v2/models/{MODEL}/infer", data=body,
                                     headers={"Content-Type": "application/json"}) as resp:
                    assert resp.status == 200, await resp.text()

        async def run(check) -> None:
            result = await check.run()
            assert result.status.name == "OK", f"{check.name}: {result.message}"
            await harness.feed(result)

        await infer(1)               # the counter exists before its baseline scrape
        await run(scrape)            # baseline at T0 - 5 min
        await run(airflow)
        reported = 0
        while clock.t < T0 + DAYS * 86400:
            k = round((clock.t - T0) / STEP)
            per_hour = round(HOUR / STEP)
            spare.processes = [(500, 2 * GiB)] if any(
                running(evaluate_window(d), clock.t) for d in range(DAYS)) else []
            await run(nvml)
            await run(gpu_b)
            if k >= 0 and k % per_hour == 1:  # hourly, after hh:00: the hour's requests, then a scrape
                await infer(REQUESTS_PER_HOUR[int((clock.t - T0) // 86400)])
                await run(scrape)
            if k >= 0 and k % per_hour == 0 and reported < DAYS and clock.t >= evaluate_window(reported)[1] + HOUR:
                fake.runs.append(runs[reported])   # the run ended: the next poll reports it
                await run(airflow)
                reported += 1
            clock.t += STEP
        await nvml.close()
        await ctx.close()
    assert reported == DAYS
    harness.finish()
    harness.close()


def build_sync(path: Path, proc_root: Path, mlserver_url: str, metrics_url: str) -> None:
    asyncio.run(build(path, proc_root, mlserver_url, metrics_url))
