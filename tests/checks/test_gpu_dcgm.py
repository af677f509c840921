"""The gpu check's dcgm source against dcgm-exporter output served over a real socket.

The output is built from dcgm-exporter's own default counter list with the labels it emits
(gpu_dcgm_samples.py); no dcgm-exporter can run here (it needs a GPU and DCGM).
"""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from agent.check import CheckContext, MemoryState
from agent.samples import Kind, Status
from checks.gpu.check import GpuCheck
from checks.gpu.config import GpuConfig
from checks.gpu.dcgm import FIELDS, is_blank, parse_exposition
from tests.checks.gpu_dcgm_samples import COUNTERS, CSV, BLANK_FP64, BLANK_INT64, DcgmGpu, exposition
from tests.checks.gpu_fake_nvml import FakeNvml, one_gpu
from tests.checks.test_gpu_nvml import Clock, make_check, series, value
from tests.conftest import assert_in_catalog
from tests.support.procs import free_port
from tests.support.targets import FIXTURES, Target

MiB = 2**20
UUIDS = [f"GPU-604ac76c-d9cf-fef3-62e9-d92044ab6e5{i}" for i in range(8)]


class Exporter:
    """A dcgm-exporter stand-in whose /metrics text a test can change between scrapes."""

    def __init__(self, text: str = "", status: int = 200, delay: float = 0.0) -> None:
        self.text, self.status, self.delay = text, status, delay

    async def handler(self, request: web.Request) -> web.Response:
        if self.delay:
            await asyncio.sleep(self.delay)
        return web.Response(text=self.text, status=self.status, content_type="text/plain")


def dcgm_check(*urls: str, clock=None, state=None, **cfg) -> GpuCheck:
    config = GpuConfig(type="gpu", name="fleet-gpus", source="dcgm", urls=urls, **cfg)
    return GpuCheck(config, CheckContext(clock=clock or Clock(), state=state or MemoryState()))


async def run(check: GpuCheck):
    result = await check.run()
    assert_in_catalog(result)
    return result


def test_samples_cover_the_default_counter_list():
    assert CSV.read_text() == (FIXTURES / "dcgm" / "default-counters.csv").read_text()
    text = exposition([DcgmGpu(0, UUIDS[0])])
    emitted = {line.split("{")[0] for line in text.splitlines() if not line.startswith("#")}
    assert emitted == {name for name, _, _ in COUNTERS}
    # every default field we map is declared in the mapping; the rest are documented as unmapped
    mapped = set(FIELDS) | {"DCGM_FI_DEV_XID_ERRORS", "DCGM_FI_DEV_FB_RESERVED"}
    assert emitted - mapped == {"DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL", "DCGM_FI_DEV_VGPU_LICENSE_STATUS",
                                "DCGM_FI_PROF_PCIE_TX_BYTES", "DCGM_FI_PROF_PCIE_RX_BYTES"}


@pytest.mark.parametrize("raw, blank", [
    (BLANK_INT64, True), (9223372036854775792, True), (9223372036854775795, True),
    (2147483632, True), (2147483635, True), (140737488355328.0, True), (BLANK_FP64, True),
    (float("nan"), True), (0, False), (1980, False), (2147483631, False), (2147483636, False),
    (1e15, False), (140737488355332.0, False),
])
def test_blank_sentinels(raw, blank):
    assert is_blank(float(raw)) is blank


async def test_kubernetes_mode_exporter_maps_into_the_catalog():
    gpus = [DcgmGpu(0, UUIDS[0], pod="ranker-0", namespace="serving", container="triton"),
            DcgmGpu(1, UUIDS[1], values={"DCGM_FI_DEV_GPU_UTIL": 0, "DCGM_FI_DEV_POWER_USAGE": 71.25})]
    exporter = Exporter(exposition(gpus, k8s=True))
    async with Target({("GET", "/metrics"): exporter.handler}) as target:
        url = target.url + "/metrics"
        check = dcgm_check(url)
        result = await run(check)
        await check.context.close()
    assert result.status == Status.OK, result.message
    tags = dict(node="gpu-node-1", gpu="0", uuid=UUIDS[0], gpu_model="NVIDIA H100 80GB HBM3",
                pod="ranker-0", namespace="serving", container="triton")
    assert value(result, "mlwarden.gpu.utilization", **tags) == pytest.approx(0.37)
    assert value(result, "mlwarden.gpu.memory.used", **tags) == 10240 * MiB
    assert value(result, "mlwarden.gpu.memory.free", **tags) == 71000 * MiB
    assert value(result, "mlwarden.gpu.memory.total", **tags) == (10240 + 71000 + 639) * MiB
    assert value(result, "mlwarden.gpu.clock.sm", **tags) == 1980e6
    assert value(result, "mlwarden.gpu.temperature", **tags) == 41
    assert value(result, "mlwarden.gpu.power.usage", gpu="1") == pytest.approx(71.25)
    assert value(result, "mlwarden.gpu.energy", gpu="0") == pytest.approx(123456.789)
    assert value(result, "mlwarden.gpu.graphics.active", gpu="0") == pytest.approx(0.41)
    assert value(result, "mlwarden.gpu.utilization", gpu="1") == 0
    # the blank memory temperature is missing data, not 9.2e18 degrees
    assert not series(result, "mlwarden.gpu.memory.temperature")
    assert "pod" not in series(result, "mlwarden.gpu.up", gpu="1")[0][0]   # an empty pod label is dropped
    assert value(result, "mlwarden.gpu.present", node="gpu-node-1") == 2
    assert value(result, "mlwarden.gpu.source.up", source=url) == 1
    assert {s.kind for s in result.samples if s.metric == "mlwarden.gpu.energy"} == {Kind.MONOTONIC_COUNT}


async def test_dcgm_and_nvml_feed_the_same_metrics():
    local = make_check(FakeNvml(one_gpu()), price_per_gpu_hour=1.0)
    nvml = await local.run()
    await local.close()
    exporter = Exporter(exposition([DcgmGpu(0, UUIDS[0])]))
    async with Target({("GET", "/metrics"): exporter.handler}) as target:
        check = dcgm_check(target.url + "/metrics", price_per_gpu_hour=1.0)
        dcgm = await run(check)
        await check.context.close()
    shared = {"mlwarden.gpu.up", "mlwarden.gpu.present", "mlwarden.gpu.lost", "mlwarden.gpu.source.up",
              "mlwarden.gpu.utilization", "mlwarden.gpu.memory.utilization", "mlwarden.gpu.memory.used",
              "mlwarden.gpu.memory.free", "mlwarden.gpu.memory.total", "mlwarden.gpu.temperature",
              "mlwarden.gpu.power.usage", "mlwarden.gpu.clock.sm", "mlwarden.gpu.clock.memory",
              "mlwarden.gpu.energy", "mlwarden.gpu.pcie.replays", "mlwarden.gpu.remapped_rows",
              "mlwarden.gpu.row_remap.failure", "mlwarden.gpu.encoder.utilization",
              "mlwarden.gpu.decoder.utilization", "mlwarden.gpu.idle", "mlwarden.gpu.idle.duration",
              "mlwarden.gpu.idle.cost", "mlwarden.gpu.idle.cost_rate", "mlwarden.gpu.node.idle",
              "mlwarden.gpu.node.idle.cost_rate", "mlwarden.gpu.fleet.idle", "mlwarden.gpu.fleet.idle.cost_rate"}
    for result in (nvml, dcgm):
        assert shared <= {s.metric for s in result.samples}
    keys = {"node", "gpu", "uuid", "gpu_model", "check"}
    for metric in ("mlwarden.gpu.utilization", "mlwarden.gpu.memory.used"):
        assert set(series(nvml, metric)[0][0]) == keys
        assert set(series(dcgm, metric)[0][0]) == keys


async def test_fleet_of_two_nodes_with_idle_gpus_and_one_exporter_down():
    node1 = Exporter(exposition([DcgmGpu(i, UUIDS[i], hostname="gpu-node-1",
                                         values={"DCGM_FI_DEV_GPU_UTIL": 0 if i < 4 else 90}) for i in range(8)]))
    node2 = Exporter(exposition([DcgmGpu(i, UUIDS[i].replace("GPU-6", "GPU-7"), hostname="gpu-node-2",
                                         values={"DCGM_FI_DEV_GPU_UTIL": 2}) for i in range(2)]))
    clock = Clock()
    async with Target({("GET", "/n1"): node1.handler, ("GET", "/n2"): node2.handler}) as target:
        check = dcgm_check(target.url + "/n1", target.url + "/n2", clock=clock, price_per_gpu_hour=4.1,
                           prices={"*A100*": 2.0})
        for _ in range(46):
            result = await run(check)
            clock.t += 60
        assert result.status == Status.OK, result.message
        assert value(result, "mlwarden.gpu.node.idle", node="gpu-node-1") == 4
        assert value(result, "mlwarden.gpu.node.idle.cost_rate", node="gpu-node-1") == pytest.approx(16.4)
        assert value(result, "mlwarden.gpu.node.idle", node="gpu-node-2") == 2
        assert value(result, "mlwarden.gpu.fleet.idle") == 6
        assert value(result, "mlwarden.gpu.fleet.idle.cost_rate") == pytest.approx(6 * 4.1)
        assert "10 GPUs on 2 nodes, 6 idle" in result.message
        node2.status = 503
        node2.text = "DCGM not ready"
        result = await run(check)
        assert result.status == Status.WARNING
        assert f"{target.url}/n2 answered HTTP 503: 'DCGM not ready'" in result.message
        assert value(result, "mlwarden.gpu.source.up", source=target.url + "/n2") == 0
        assert not series(result, "mlwarden.gpu.up", node="gpu-node-2")   # unknown, not lost
        assert value(result, "mlwarden.gpu.lost", node="gpu-node-1") == 0
        node1.status = 500
        result = await run(check)
        assert result.status == Status.CRITICAL
        await check.context.close()


async def test_unreachable_slow_and_foreign_endpoints_are_named():
    refused = f"http://127.0.0.1:{free_port()}/metrics"
    slow = Exporter(exposition([DcgmGpu(0, UUIDS[0])]), delay=2.0)
    foreign = Exporter("# HELP up whatever\n# TYPE up gauge\nup 1\n")
    garbage = Exporter("this is {not exposition\n")
    async with Target({("GET", "/slow"): slow.handler, ("GET", "/foreign"): foreign.handler,
                       ("GET", "/garbage"): garbage.handler}) as target:
        base = target.url
        check = dcgm_check(refused, base + "/slow", base + "/foreign", timeout=0.5)
        result = await run(check)
        other = dcgm_check(base + "/garbage")
        garbled = await run(other)
        await check.context.close()
        await other.context.close()
    assert result.status == Status.CRITICAL and result.error is None
    assert result.message.startswith(f"cannot reach {refused}: ClientConnectorError")
    assert f"; {base}/slow did not answer within 0.4s; " in result.message
    assert result.message.endswith(f"; {base}/foreign answered but holds no DCGM_* GPU series "
                                   "(is it a dcgm-exporter?)")
    assert [v for _, v in series(result, "mlwarden.gpu.source.up")] == [0, 0, 0]
    assert garbled.status == Status.CRITICAL
    assert garbled.message.startswith(f"{base}/garbage is not Prometheus text exposition: ")


async def test_a_gpu_missing_from_the_exporter_is_lost():
    gpus = [DcgmGpu(i, UUIDS[i]) for i in range(4)]
    exporter = Exporter(exposition(gpus))
    async with Target({("GET", "/metrics"): exporter.handler}) as target:
        check = dcgm_check(target.url + "/metrics")
        assert (await run(check)).status == Status.OK
        exporter.text = exposition(gpus[:2] + gpus[3:])
        result = await run(check)
        await check.context.close()
    assert result.status == Status.CRITICAL
    assert f"gpu-node-1: GPU 2 ({UUIDS[2]}) lost: missing from dcgm-exporter output" in result.message
    assert value(result, "mlwarden.gpu.up", uuid=UUIDS[2]) == 0
    assert value(result, "mlwarden.gpu.lost", node="gpu-node-1") == 1


async def test_last_xid_changes_become_occurrences():
    gpu = DcgmGpu(0, UUIDS[0], values={"DCGM_FI_DEV_XID_ERRORS": 31})
    exporter = Exporter(exposition([gpu]))
    state = MemoryState()
    seen = []
    async with Target({("GET", "/metrics"): exporter.handler}) as target:
        check = dcgm_check(target.url + "/metrics", state=state)
        for code in (31, 31, 79, 79, 13, 0):   # first value is a baseline; repeats are invisible
            gpu.values["DCGM_FI_DEV_XID_ERRORS"] = code
            exporter.text = exposition([gpu])
            result = await run(check)
            seen.append([(t["xid"], t["xid_meaning"], v) for t, v in series(result, "mlwarden.gpu.xid.errors")])
            if seen[-1]:
                assert result.status == Status.WARNING
                assert f"XID {seen[-1][0][0]} on GPU 0" in result.message
        assert seen == [[], [], [("79", "fallen_off_bus", 1)], [], [("13", "graphics_engine_exception", 1)], []]
        # after a restart the saved last code is the baseline: only a change counts
        gpu.values["DCGM_FI_DEV_XID_ERRORS"] = 48
        exporter.text = exposition([gpu])
        restarted = dcgm_check(target.url + "/metrics", state=state)
        result = await run(restarted)
        assert value(result, "mlwarden.gpu.xid.errors", xid="48", xid_meaning="double_bit_ecc") == 1
        await check.context.close()
        await restarted.context.close()


async def test_windowed_xid_counts_become_occurrences():
    gpu = DcgmGpu(0, UUIDS[0])
    exporter = Exporter()
    got = []
    async with Target({("GET", "/metrics"): exporter.handler}) as target:
        check = dcgm_check(target.url + "/metrics")
        for count in (0, 2, 2, 1, 3):
            exporter.text = exposition([gpu], extra={"DCGM_EXP_XID_ERRORS_COUNT": [(gpu, {"xid": "94"}, count)]})
            result = await run(check)
            got.append(sum(v for _, v in series(result, "mlwarden.gpu.xid.errors", xid="94")))
        await check.context.close()
    assert got == [0, 2, 0, 0, 2]


def test_mig_instances_from_dcgm():
    parent = "GPU-a100a100-0000-0000-0000-000000000000"
    instances = [DcgmGpu(0, parent, model="NVIDIA A100-SXM4-40GB", mig_profile=p, mig_id=i,
                         values={"DCGM_FI_DEV_GPU_UTIL": BLANK_INT64, "DCGM_FI_PROF_GR_ENGINE_ACTIVE": a})
                 for p, i, a in (("3g.20gb", "1", 0.0), ("1g.5gb", "13", 0.6))]
    (node,), blanks = parse_exposition(exposition(instances), "fallback")
    assert node.node == "gpu-node-1"
    assert [(g.uuid, g.parent_uuid, g.mig_profile, g.mig_gi, g.utilization, g.graphics_active) for g in node.gpus] == [
        (f"{parent}/gi1", parent, "3g.20gb", "1", None, 0.0), (f"{parent}/gi13", parent, "1g.5gb", "13", None, 0.6)]
    assert blanks == 4   # GPU_UTIL and MEMORY_TEMP on each instance


def test_hostname_falls_back_to_the_url_host():
    text = exposition([DcgmGpu(0, UUIDS[0])]).replace('Hostname="gpu-node-1",', "")
    (node,), _ = parse_exposition(text, "10.1.2.3")
    assert node.node == "10.1.2.3"


def test_a_series_with_an_empty_uuid_is_no_gpu_of_its_own():
    """Found by fuzzing: `UUID=""` made a reading with no identity beside the real GPU."""
    text = 'DCGM_FI_DEV_GPU_UTIL{UUID=""} 0\n' + exposition([DcgmGpu(0, UUIDS[0])])
    (node,), _ = parse_exposition(text, "10.1.2.3")
    assert [g.uuid for g in node.gpus] == [UUIDS[0]]


async def test_a_gpu_listed_only_through_its_mig_instances_is_counted_and_judged():
    parent = "GPU-a100a100-0000-0000-0000-000000000000"
    instances = [DcgmGpu(0, parent, model="NVIDIA A100-SXM4-40GB", mig_profile=p, mig_id=i,
                         values={"DCGM_FI_DEV_GPU_UTIL": BLANK_INT64, "DCGM_FI_PROF_GR_ENGINE_ACTIVE": 0.0})
                 for p, i in (("3g.20gb", "1"), ("1g.5gb", "13"))]
    exporter = Exporter(exposition(instances))
    clock = Clock()
    async with Target({("GET", "/metrics"): exporter.handler}) as target:
        check = dcgm_check(target.url + "/metrics", clock=clock, idle_window=600, price_per_gpu_hour=2.5)
        for _ in range(11):
            result = await run(check)
            clock.t += 60
        await check.context.close()
    assert result.status == Status.OK, result.message
    assert value(result, "mlwarden.gpu.present") == 1
    assert value(result, "mlwarden.gpu.up", uuid=parent) == 1
    assert value(result, "mlwarden.gpu.idle", uuid=parent) == 1
    assert value(result, "mlwarden.gpu.node.idle.cost_rate") == 2.5
    assert len(series(result, "mlwarden.gpu.up", parent_uuid=parent)) == 2


def test_optional_fields_an_operator_adds_to_the_counter_list():
    gpu = DcgmGpu(0, UUIDS[0])
    text = exposition([gpu], extra={
        "DCGM_FI_DEV_CLOCKS_EVENT_REASONS": [(gpu, {}, 0x40 | 0x4)],
        "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL": [(gpu, {}, 12)],
        "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL": [(gpu, {}, 1)],
        "DCGM_FI_DEV_POWER_MGMT_LIMIT": [(gpu, {}, 700.0)],
        "DCGM_FI_DEV_FB_TOTAL": [(gpu, {}, 81559)],
    })
    (node,), _ = parse_exposition(text, "x")
    reading = node.gpus[0]
    assert reading.throttle_reasons == 0x44
    assert (reading.ecc_corrected, reading.ecc_uncorrected) == (12, 1)
    assert reading.power_limit == 700.0
    assert reading.memory_total == 81559 * MiB   # the exporter's total wins over used + free + reserved
