"""The cost meter on what the gpu, openmetrics and airflow checks really emit.

GPUs are read through the gpu check's NVML source with the strict pynvml fake
(tests/checks/gpu_fake_nvml.py: no GPU can run here) and /proc fixtures naming each
process's pod; request counters through the openmetrics check scraping MLServer's
recorded /metrics (tests/fixtures/mlserver/metrics.txt) over a real socket. Every expected
figure is worked out by hand in the test.
"""

from __future__ import annotations

import pytest

from agent.check import CheckContext, MemoryState
from agent.cost.config import CostConfig
from agent.samples import CheckResult, Kind, Sample, Status, make_tags
from checks.gpu.check import GpuCheck
from checks.gpu.config import GpuConfig
from checks.openmetrics.check import OpenMetricsCheck
from tests.checks.gpu_fake_nvml import FakeGpu, FakeMig, FakeNvml
from tests.checks.test_gpu_cgroups import V2_K8S_CONTAINERD_SYSTEMD, write_proc
from tests.cost.harness import Harness
from tests.support.targets import Target, load_fixture

pytestmark = pytest.mark.unit

GiB = 2**30
T0 = 1_796_000_400.0  # an hour boundary
H100 = "NVIDIA H100 80GB HBM3"
PRICES = [{"gpu_model": "*H100*", "price_per_hour": 4.0},
          {"gpu_model": "*A100*", "price_per_hour": 2.0}]


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def pods(root, procs: dict[int, str]) -> None:
    for pid, pod in procs.items():
        write_proc(root, pid, "python", V2_K8S_CONTAINERD_SYSTEMD,
                   {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "HOSTNAME": pod, "POD_NAMESPACE": "serving"})


def gpu_check(lib: FakeNvml, clock: Clock, proc_root, **extra) -> GpuCheck:
    config = GpuConfig(type="gpu", name="local-gpus", node="node-a", proc_root=str(proc_root),
                       xid_events=False, idle_window=60, **extra)
    return GpuCheck(config, CheckContext(clock=clock, state=MemoryState()), nvml_lib=lib)


def one(h: Harness, metric: str, **tags: str) -> float:
    found = h.samples(metric, **tags)
    return sum(s.value for s in found)


@pytest.fixture
def harness(tmp_path):
    made = []

    def make(config: CostConfig, clock: Clock) -> Harness:
        h = Harness(str(tmp_path / "history.db"), config, clock)
        made.append(h)
        return h

    yield make
    for h in made:
        h.close()


async def test_gpu_time_goes_to_models_idle_and_other_at_the_table_price(tmp_path, harness):
    pods(tmp_path, {100: "ranker-0", 200: "ranker-1", 201: "notebook-x"})
    lib = FakeNvml([
        FakeGpu(uuid="GPU-0", util_gpu=4, processes=[(100, 6 * GiB)]),
        FakeGpu(uuid="GPU-1", util_gpu=0, bus_id="00000000:19:00.0"),
        FakeGpu(uuid="GPU-2", util_gpu=50, bus_id="00000000:1A:00.0",
                processes=[(200, 30 * GiB), (201, 10 * GiB)]),
        FakeGpu(uuid="GPU-3", util_gpu=90, bus_id="00000000:1B:00.0"),
    ])
    clock = Clock(T0)
    h = harness(CostConfig(prices=PRICES, models=[{"model": "ranker", "pod": "ranker-*"}]), clock)
    check = gpu_check(lib, clock, tmp_path)
    for _ in range(3):  # three readings a minute apart: two minutes are charged
        result = await check.run()
        assert result.status == Status.OK, result.message
        await h.feed(result)
        clock.t += 60
    await check.close()
    # ranker: all of GPU-0, and 30 of the 40 GiB held on GPU-2 -> 1.75 GPUs
    assert one(h, "mlwarden.cost.model.gpu_seconds", model="ranker") == pytest.approx(2 * 60 * 1.75)
    assert one(h, "mlwarden.cost.model.spend", model="ranker") == pytest.approx(2 * 60 * 1.75 * 4.0 / 3600)
    last = [r for r in h.emitted if r.started == T0 + 120][0]
    gauges = {s.metric: s.value for s in last.samples if s.tag("model") == "ranker"}
    assert gauges["mlwarden.cost.model.gpus"] == pytest.approx(1.75)
    assert gauges["mlwarden.cost.model.rate"] == pytest.approx(7.0)
    assert gauges["mlwarden.cost.model.utilization"] == pytest.approx((0.04 * 1 + 0.50 * 0.75) / 1.75)
    assert gauges["mlwarden.cost.model.memory.used"] == 30 * GiB
    assert gauges["mlwarden.cost.model.memory.total"] == 80 * GiB
    # the node: four GPUs for two minutes; GPU-1 (nothing on it) idle once its 60 s window passed
    assert one(h, "mlwarden.cost.node.gpu_seconds", node="node-a") == 4 * 120
    assert one(h, "mlwarden.cost.node.spend", node="node-a") == pytest.approx(4 * 120 * 4.0 / 3600)
    assert one(h, "mlwarden.cost.node.idle.gpu_seconds", node="node-a") == 120
    assert one(h, "mlwarden.cost.node.idle.spend", node="node-a") == pytest.approx(120 * 4.0 / 3600)
    assert not h.samples("mlwarden.cost.unpriced.gpu_seconds")
    # the first reading only starts each GPU's clock: nothing charged at T0
    assert not [s for r in h.emitted if r.started == T0 for s in r.samples if s.kind is Kind.COUNT]
    assert {r.check for r in h.emitted} == {"cost:local-gpus"}


async def test_without_a_price_the_cost_is_unknown_not_zero(tmp_path, harness):
    pods(tmp_path, {100: "ranker-0"})
    lib = FakeNvml([FakeGpu(uuid="GPU-0", name="NVIDIA L4", util_gpu=30, processes=[(100, 6 * GiB)]),
                    FakeGpu(uuid="GPU-1", name="NVIDIA L4", bus_id="00000000:19:00.0")])
    clock = Clock(T0)
    h = harness(CostConfig(prices=PRICES, models=[{"model": "ranker", "pod": "ranker-*"}]), clock)
    check = gpu_check(lib, clock, tmp_path)
    for _ in range(3):
        await h.feed(await check.run())
        clock.t += 60
    await check.close()
    assert one(h, "mlwarden.cost.model.gpu_seconds", model="ranker") == 120
    for metric in ("model.spend", "model.rate", "node.spend", "node.idle.spend", "node.rate"):
        assert not h.samples(f"mlwarden.cost.{metric}"), f"{metric} must be absent, not zero"
    unpriced = {(s.tag("use"), s.tag("model") or ""): s for s in h.samples("mlwarden.cost.unpriced.gpu_seconds")}
    assert sum(s.value for s in h.samples("mlwarden.cost.unpriced.gpu_seconds", use="model")) == 120
    assert sum(s.value for s in h.samples("mlwarden.cost.unpriced.gpu_seconds", use="idle")) == 120
    assert unpriced[("model", "ranker")].tag("gpu_model") == "NVIDIA L4"


async def test_a_mig_instance_is_its_memory_share_of_the_gpu(tmp_path, harness):
    pods(tmp_path, {300: "ranker-2"})
    migs = [FakeMig(uuid="MIG-a", profile="3g.20gb", gi=1, memory_total=20 * GiB, memory_used=3 * GiB,
                    processes=[(300, 3 * GiB)]),
            FakeMig(uuid="MIG-b", profile="2g.10gb", gi=5, memory_total=10 * GiB),
            FakeMig(uuid="MIG-c", profile="1g.5gb", gi=13, memory_total=5 * GiB)]
    lib = FakeNvml([FakeGpu(uuid="GPU-A100", name="NVIDIA A100-SXM4-40GB", memory_total=40 * GiB, mig=migs)])
    clock = Clock(T0)
    h = harness(CostConfig(prices=PRICES, models=[{"model": "ranker", "pod": "ranker-*"}]), clock)
    check = gpu_check(lib, clock, tmp_path)
    for _ in range(2):
        await h.feed(await check.run())
        clock.t += 60
    await check.close()
    assert one(h, "mlwarden.cost.model.gpu_seconds", model="ranker") == pytest.approx(60 * 20 / 40)
    assert one(h, "mlwarden.cost.model.spend", model="ranker") == pytest.approx(30 * 2.0 / 3600)
    totals = {s.value for s in h.samples("mlwarden.cost.model.memory.total", model="ranker")}
    assert totals == {20 * GiB}  # the instance's memory, not the card's
    # a process holds the GPU, so it is not idle: the rest of it is "other", not given-back money
    assert one(h, "mlwarden.cost.node.idle.gpu_seconds", node="node-a") == 0
    assert one(h, "mlwarden.cost.node.gpu_seconds", node="node-a") == 60


async def test_a_gap_longer_than_max_gap_is_not_charged(tmp_path, harness):
    lib = FakeNvml([FakeGpu(uuid="GPU-0", util_gpu=70)])
    clock = Clock(T0)
    h = harness(CostConfig(prices=PRICES, max_gap=300), clock)
    check = gpu_check(lib, clock, tmp_path)
    for step in (0, 60, 1000, 60):  # readings at T0, +60, +1060 (a 1000 s gap), +1120
        clock.t += step
        await h.feed(await check.run())
    await check.close()
    assert one(h, "mlwarden.cost.node.gpu_seconds", node="node-a") == 120


def mlserver_metrics(success_v1: float, success_none: float) -> str:
    text = load_fixture("mlserver", "metrics.txt")
    text = text.replace('model_infer_request_success_total{model="iris-sklearn",version="None"} 2.0',
                        f'model_infer_request_success_total{{model="iris-sklearn",version="None"}} {success_none}')
    return text.replace('model_infer_request_success_total{model="iris-sklearn",version="v1"} 1.0',
                        f'model_infer_request_success_total{{model="iris-sklearn",version="v1"}} {success_v1}')


async def test_predictions_from_mlserver_counters_and_the_pod_they_teach(tmp_path, harness):
    state = {"text": mlserver_metrics(1, 2)}

    async def metrics(request):
        from aiohttp import web

        return web.Response(text=state["text"], content_type="text/plain")

    clock = Clock(T0)
    h = harness(CostConfig(prices=PRICES), clock)
    async with Target({("GET", "/metrics"): metrics}) as t:
        cfg = OpenMetricsCheck.Config(type="openmetrics", name="mlserver", url=t.url + "/metrics",
                                      metrics=[{"name": "model_infer_request_success_total"}],
                                      tags={"pod": "iris-sklearn-0"})
        ctx = CheckContext(clock=clock)
        check = OpenMetricsCheck(cfg, ctx)
        try:
            for v1, none in ((1, 2), (6, 12), (3, 12)):  # a baseline, +15, then v1 restarted at 3
                state["text"] = mlserver_metrics(v1, none)
                result = await check.run()
                assert result.status == Status.OK, result.message
                await h.feed(result)
                clock.t += 60
        finally:
            await ctx.close()
    counts = [s.value for s in h.samples("mlwarden.cost.model.predictions", model="iris-sklearn")]
    assert counts == [15, 3]
    assert h.meter.matcher.learnt == {"iris-sklearn-0": "iris-sklearn"}


async def test_cost_per_1k_predictions_over_the_trailing_window(tmp_path, harness):
    """A GPU held by the pod that serves iris-sklearn, and its request counter, in one agent."""
    pods(tmp_path, {100: "iris-sklearn-0"})
    lib = FakeNvml([FakeGpu(uuid="GPU-0", util_gpu=35, processes=[(100, 10 * GiB)])])
    clock = Clock(T0)
    h = harness(CostConfig(prices=PRICES, window=600), clock)
    check = gpu_check(lib, clock, tmp_path)

    def counter(value: float) -> CheckResult:
        tags = make_tags({"check": "mlserver", "model": "iris-sklearn", "version": "v1",
                          "pod": "iris-sklearn-0"})
        return CheckResult("mlserver", "openmetrics", Status.OK, started=clock.t, samples=[
            Sample("mlwarden.openmetrics.model_infer_request_success", value, tags, clock.t,
                   Kind.MONOTONIC_COUNT)])

    total = 0
    for minute in range(12):
        await h.feed(counter(total))
        await h.feed(await check.run())
        total += 100 * (minute + 1)
        clock.t += 60
    await check.close()
    # at the last reading (T0 + 11 min) the 10-minute window holds readings 2..11: 10 minutes
    # of one H100 at $4/h, and counter rises 2..11 x 100 predictions (a rise shows at the next scrape)
    last = h.samples("mlwarden.cost.model.per_1k_predictions", model="iris-sklearn")[-1]
    money = 10 * 60 * 4.0 / 3600
    predictions = sum(100 * m for m in range(2, 12))
    assert last.timestamp == T0 + 11 * 60
    assert last.value == pytest.approx(money / predictions * 1000)


async def test_a_node_dedicated_to_a_model_by_a_node_only_rule(tmp_path, harness):
    """No process visible (a container without hostPID): the rule naming the node decides."""
    lib = FakeNvml([FakeGpu(uuid="GPU-0", util_gpu=20, memory_used=7 * GiB)])
    clock = Clock(T0)
    h = harness(CostConfig(prices=PRICES, models=[{"model": "ranker", "node": "node-*"},
                                                  {"model": "never", "node": "node-a", "pod": "x-*"}]), clock)
    check = gpu_check(lib, clock, tmp_path)
    for _ in range(2):
        await h.feed(await check.run())
        clock.t += 60
    await check.close()
    assert one(h, "mlwarden.cost.model.gpu_seconds", model="ranker") == 60
    assert {s.value for s in h.samples("mlwarden.cost.model.memory.used", model="ranker")} == {7 * GiB}
    assert not h.samples("mlwarden.cost.model.gpus", model="never")
