"""The gpu check's NVML source, driven through the real adapter with a strict fake pynvml.

Why a fake: this machine has no NVIDIA GPU or driver. The fake (gpu_fake_nvml.py) offers
only pynvml's own function names and parameters, returns pynvml's own structures and raises
pynvml's own NVMLError subclasses; the first test proves it still matches the installed
nvidia-ml-py.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from pathlib import Path

import pynvml
import pytest

from agent.check import CheckContext, MemoryState
from agent.samples import Kind, Status
from checks.gpu.check import GpuCheck
from checks.gpu.config import GpuConfig
from tests.checks.gpu_fake_nvml import API, FakeNvml, check_strict, eight_gpus, mig_gpus, one_gpu
from tests.checks.test_gpu_cgroups import CID, POD, V2_K8S_CONTAINERD_SYSTEMD, write_proc
from tests.conftest import assert_in_catalog

GiB = 2**30


class Clock:
    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def make_check(lib, *, clock=None, state=None, **cfg) -> GpuCheck:
    config = GpuConfig(type="gpu", name="local-gpus", node="node-a", **cfg)
    context = CheckContext(clock=clock or Clock(), state=state or MemoryState())
    return GpuCheck(config, context, nvml_lib=lib, xid_poll_ms=20)


def series(result, metric: str, **where) -> list[tuple[dict, float]]:
    out = []
    for s in result.samples:
        tags = s.tag_dict
        if s.metric == metric and all(tags.get(k) == str(v) for k, v in where.items()):
            out.append((tags, s.value))
    return out


def value(result, metric: str, **where) -> float:
    found = series(result, metric, **where)
    assert len(found) == 1, f"{metric} {where}: {found}"
    return found[0][1]


async def run(check: GpuCheck):
    result = await check.run()
    assert_in_catalog(result)
    return result


def test_the_fake_matches_the_installed_pynvml():
    assert check_strict() == []
    assert len(API) >= 30
    for name in API:
        assert callable(getattr(pynvml, name))


async def test_one_gpu_in_base_units():
    gpus = one_gpu(util_gpu=37, util_mem=12, memory_used=10 * GiB, power_mw=312_500, throttle=0x1 | 0x40,
                   ecc=(3, 1), energy_mj=5_000_000, encoder=4, pcie_replays=2, remapped_rows=(1, 2, 0, 0))
    check = make_check(FakeNvml(gpus))
    result = await run(check)
    assert result.status == Status.OK, result.message
    tags = dict(node="node-a", gpu="0", uuid=gpus[0].uuid, gpu_model="NVIDIA H100 80GB HBM3")
    assert value(result, "mlwarden.gpu.utilization", **tags) == pytest.approx(0.37)
    assert value(result, "mlwarden.gpu.memory.utilization") == pytest.approx(0.12)
    assert value(result, "mlwarden.gpu.memory.used") == 10 * GiB
    assert value(result, "mlwarden.gpu.memory.total") == 80 * GiB
    assert value(result, "mlwarden.gpu.memory.free") == 70 * GiB
    assert value(result, "mlwarden.gpu.power.usage") == pytest.approx(312.5)
    assert value(result, "mlwarden.gpu.power.limit") == pytest.approx(700.0)
    assert value(result, "mlwarden.gpu.clock.sm") == 345e6
    assert value(result, "mlwarden.gpu.clock.memory") == 2619e6
    assert value(result, "mlwarden.gpu.temperature") == 34
    assert value(result, "mlwarden.gpu.energy") == pytest.approx(5000.0)
    assert value(result, "mlwarden.gpu.encoder.utilization") == pytest.approx(0.04)
    assert value(result, "mlwarden.gpu.ecc.errors", type="corrected") == 3
    assert value(result, "mlwarden.gpu.ecc.errors", type="uncorrected") == 1
    assert value(result, "mlwarden.gpu.remapped_rows", type="uncorrectable") == 2
    assert value(result, "mlwarden.gpu.pcie.replays") == 2
    assert value(result, "mlwarden.gpu.throttled", reason="hw_thermal") == 1
    assert value(result, "mlwarden.gpu.throttled", reason="gpu_idle") == 1
    assert value(result, "mlwarden.gpu.throttled", reason="sw_power_cap") == 0
    assert value(result, "mlwarden.gpu.up", **tags) == 1
    assert value(result, "mlwarden.gpu.present", node="node-a") == 1
    assert value(result, "mlwarden.gpu.lost", node="node-a") == 0
    assert value(result, "mlwarden.gpu.source.up", source="nvml") == 1
    kinds = {s.metric: s.kind for s in result.samples}
    assert kinds["mlwarden.gpu.energy"] == Kind.MONOTONIC_COUNT
    assert "1 GPU on 1 node" in result.message
    await check.close()


async def test_eight_gpus():
    lib = FakeNvml(eight_gpus())
    check = make_check(lib)
    result = await run(check)
    assert result.status == Status.OK
    assert len(series(result, "mlwarden.gpu.up")) == 8
    assert {t["uuid"] for t, _ in series(result, "mlwarden.gpu.utilization")} == {g.uuid for g in lib.gpus}
    assert {t["gpu"] for t, _ in series(result, "mlwarden.gpu.up")} == {str(i) for i in range(8)}
    assert value(result, "mlwarden.gpu.present") == 8
    assert "8 GPUs on 1 node" in result.message
    await check.close()
    assert lib.initialised == 0  # close() shut NVML down


async def test_mig_partitioned_gpu(tmp_path):
    gpus = mig_gpus()
    gpus[0].mig[1].processes = [(4242, 6 * GiB)]
    write_proc(tmp_path, 4242, "python", V2_K8S_CONTAINERD_SYSTEMD)
    check = make_check(FakeNvml(gpus), proc_root=str(tmp_path))
    result = await run(check)
    assert result.status == Status.OK, result.message
    instances = series(result, "mlwarden.gpu.memory.total", parent_uuid=gpus[0].uuid)
    assert {(t["mig_profile"], t["mig_instance"], t["uuid"]) for t, _ in instances} == {
        ("3g.20gb", "1/0", gpus[0].mig[0].uuid), ("2g.10gb", "5/0", gpus[0].mig[1].uuid),
        ("1g.5gb", "13/0", gpus[0].mig[2].uuid)}
    assert value(result, "mlwarden.gpu.memory.total", uuid=gpus[0].mig[2].uuid) == 5 * GiB
    # NVML gives no utilisation on a MIG-enabled GPU: missing, never a zero
    assert {t["uuid"] for t, _ in series(result, "mlwarden.gpu.utilization")} == {gpus[1].uuid}
    assert value(result, "mlwarden.gpu.present") == 2   # physical GPUs, not instances
    proc = series(result, "mlwarden.gpu.process.memory.used")
    assert len(proc) == 1
    ptags, used = proc[0]
    assert used == 6 * GiB
    assert (ptags["uuid"], ptags["mig_profile"], ptags["pod_uid"], ptags["container_id"]) == (
        gpus[0].mig[1].uuid, "2g.10gb", POD, CID[:12])
    assert value(result, "mlwarden.gpu.processes", uuid=gpus[0].mig[0].uuid) == 0
    await check.close()


async def test_mig_gpu_idleness_follows_its_instances_processes():
    gpus = mig_gpus()
    clock = Clock()
    check = make_check(FakeNvml(gpus), clock=clock, idle_window=600, price_per_gpu_hour=2.0)
    for _ in range(11):
        result = await run(check)
        clock.t += 60
    assert value(result, "mlwarden.gpu.idle", uuid=gpus[0].uuid) == 1
    gpus[0].mig[2].processes = [(99, GiB)]
    result = await run(check)
    assert value(result, "mlwarden.gpu.idle", uuid=gpus[0].uuid) == 0
    assert value(result, "mlwarden.gpu.idle", uuid=gpus[1].uuid) == 1  # utilisation 0 all along
    await check.close()


async def test_unsupported_fields_are_missing_not_zero():
    gpus = one_gpu(unsupported={"nvmlDeviceGetPowerUsage", "nvmlDeviceGetTotalEccErrors",
                                "nvmlDeviceGetCurrentClocksEventReasons",
                                "nvmlDeviceGetCurrentClocksThrottleReasons", "nvmlDeviceGetRemappedRows",
                                "nvmlDeviceGetTotalEnergyConsumption", "nvmlDeviceGetMigMode"})
    check = make_check(FakeNvml(gpus))
    result = await run(check)
    assert result.status == Status.OK
    metrics = {s.metric for s in result.samples}
    for gone in ("mlwarden.gpu.power.usage", "mlwarden.gpu.ecc.errors", "mlwarden.gpu.throttled",
                 "mlwarden.gpu.remapped_rows", "mlwarden.gpu.energy"):
        assert gone not in metrics
    assert {"mlwarden.gpu.utilization", "mlwarden.gpu.power.limit", "mlwarden.gpu.temperature"} <= metrics
    assert result.warnings == []  # NotSupported is normal, not worth a warning
    await check.close()


async def test_a_gpu_lost_mid_life_is_reported_by_uuid():
    lib = FakeNvml(eight_gpus())
    check = make_check(lib)
    assert (await run(check)).status == Status.OK
    lib.gpus[3].lost = "queries"     # NVML_ERROR_GPU_IS_LOST on every query
    result = await run(check)
    assert result.status == Status.CRITICAL
    lost_uuid = lib.gpus[3].uuid
    assert f"GPU 3 ({lost_uuid}) lost: GPU is lost" in result.message
    assert value(result, "mlwarden.gpu.up", uuid=lost_uuid) == 0
    assert value(result, "mlwarden.gpu.lost", node="node-a") == 1
    assert value(result, "mlwarden.gpu.present", node="node-a") == 7
    assert not series(result, "mlwarden.gpu.utilization", uuid=lost_uuid)
    lib.gpus[3].lost = ""            # back after a reset
    result = await run(check)
    assert result.status == Status.OK
    assert value(result, "mlwarden.gpu.lost") == 0
    await check.close()


async def test_a_gpu_lost_before_the_agent_ever_saw_it():
    gpus = eight_gpus()
    gpus[5].lost = "handle"          # even nvmlDeviceGetHandleByIndex fails
    check = make_check(FakeNvml(gpus))
    result = await run(check)
    assert result.status == Status.CRITICAL
    assert "GPU 5 lost: GPU is lost" in result.message
    assert value(result, "mlwarden.gpu.up", gpu="5") == 0
    assert value(result, "mlwarden.gpu.lost") == 1
    await check.close()


async def test_gpu_count_drop_is_remembered_across_a_restart():
    lib = FakeNvml(eight_gpus())
    state = MemoryState()
    clock = Clock()
    check = make_check(lib, state=state, clock=clock)
    await run(check)
    await check.close()
    gone = lib.gpus.pop(6)           # fell off the bus: the driver no longer lists it
    clock.t += 120
    restarted = make_check(lib, state=state, clock=clock)
    result = await run(restarted)
    assert result.status == Status.CRITICAL
    assert f"({gone.uuid}) lost: no longer reported by NVML" in result.message
    assert value(result, "mlwarden.gpu.lost") == 1
    assert value(result, "mlwarden.gpu.up", uuid=gone.uuid) == 0
    await restarted.close()


async def test_a_lost_gpu_is_forgotten_after_forget_lost_after():
    lib = FakeNvml(eight_gpus())
    clock = Clock()
    check = make_check(lib, clock=clock, forget_lost_after=3600)
    await run(check)
    lib.gpus.pop()
    clock.t += 3600
    assert (await run(check)).status == Status.CRITICAL
    clock.t += 1
    assert (await run(check)).status == Status.OK
    await check.close()


async def test_expected_gpus_catches_a_drop_before_the_first_run():
    check = make_check(FakeNvml(eight_gpus()[:7]), expected_gpus=8)
    result = await run(check)
    assert result.status == Status.CRITICAL
    assert "7 of 8 expected GPUs present" in result.message
    assert value(result, "mlwarden.gpu.lost") == 1
    await check.close()


@pytest.mark.parametrize("error, says", [
    ("DRIVER_NOT_LOADED", "the NVIDIA driver is not loaded"),
    ("LIBRARY_NOT_FOUND", "NVML library libnvidia-ml.so.1 not found"),
])
async def test_no_driver_is_unknown_said_once(error, says, caplog):
    caplog.set_level(logging.WARNING, logger="checks.gpu.check")
    check = make_check(FakeNvml(one_gpu(), init_error=error))
    first, second = await run(check), await run(check)
    for result in (first, second):
        assert result.status == Status.UNKNOWN
        assert says in result.message
        assert result.error is None          # not a crash: the agent runs on
        assert value(result, "mlwarden.gpu.source.up", source="nvml") == 0
    assert [r.getMessage() for r in caplog.records].count(f"gpu check local-gpus: {first.message}") == 1
    await check.close()


async def test_no_gpu_is_unknown():
    check = make_check(FakeNvml([]))
    result = await run(check)
    await check.close()
    assert result.status == Status.UNKNOWN
    assert result.message == "NVML is working but found no GPU on this node"


async def test_without_nvidia_ml_py_the_check_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)   # import pynvml -> ImportError
    check = make_check(None)
    result = await run(check)
    assert result.status == Status.UNKNOWN
    assert "nvidia-ml-py is not installed" in result.message
    # mlwarden is not on the package index: the hint installs the extra from this checkout,
    # into the environment the agent runs in (tests/agent/test_install.py covers the other cases)
    repo = Path(__file__).resolve().parents[2]
    assert f"{sys.executable} -m pip install -e '{repo}[gpu]'" in result.message
    assert "mlwarden[gpu]" not in result.message
    await check.close()


async def test_xid_events_are_counted_per_gpu_and_code():
    lib = FakeNvml(eight_gpus())
    check = make_check(lib)
    assert (await run(check)).status == Status.OK       # starts the watcher thread
    lib.inject_xid(2, 79)
    lib.inject_xid(2, 79)
    lib.inject_xid(0, 13)
    deadline = time.monotonic() + 5
    while lib.delivered < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)  # the watcher counts right after the wait returns
    result = await run(check)
    assert result.status == Status.WARNING
    assert value(result, "mlwarden.gpu.xid.errors", gpu="2", xid="79", xid_meaning="fallen_off_bus") == 2
    assert value(result, "mlwarden.gpu.xid.errors", gpu="0", xid="13",
                 xid_meaning="graphics_engine_exception", uuid=lib.gpus[0].uuid) == 1
    assert "XID 79 on GPU 2 (2x): GPU has fallen off the bus" in result.message
    assert {s.kind for s in result.samples if s.metric == "mlwarden.gpu.xid.errors"} == {Kind.COUNT}
    again = await run(check)
    assert not series(again, "mlwarden.gpu.xid.errors") and again.status == Status.OK
    thread = check._nvml.watcher._thread
    assert thread.is_alive()
    await check.close()
    assert not thread.is_alive()   # close() stopped the watcher thread


async def test_gpus_without_xid_events_are_named_once():
    gpus = eight_gpus()
    gpus[1].no_events = True
    check = make_check(FakeNvml(gpus))
    result = await run(check)
    assert result.status == Status.OK
    assert result.warnings == ["XID events not available for GPU 1: Not Supported"]
    assert (await run(check)).warnings == []
    await check.close()


async def test_processes_with_their_containers_and_pods(tmp_path):
    gpus = one_gpu(processes=[(4242, 20 * GiB), (77, None)], graphics_processes=[(4242, 20 * GiB)])
    write_proc(tmp_path, 4242, "tritonserver", V2_K8S_CONTAINERD_SYSTEMD,
               {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "HOSTNAME": "ranker-0", "POD_NAMESPACE": "serving"})
    check = make_check(FakeNvml(gpus), proc_root=str(tmp_path))
    result = await run(check)
    assert value(result, "mlwarden.gpu.processes") == 2
    (tags, used), = series(result, "mlwarden.gpu.process.memory.used")   # pid 77: memory unknown
    assert used == 20 * GiB
    assert {k: tags[k] for k in ("pid", "process", "container_id", "container_runtime", "pod_uid", "pod",
                                 "namespace")} == {
        "pid": "4242", "process": "tritonserver", "container_id": CID[:12], "container_runtime": "containerd",
        "pod_uid": POD, "pod": "ranker-0", "namespace": "serving"}
    await check.close()


async def test_four_idle_gpus_on_a_node_and_their_cost():
    lib = FakeNvml(eight_gpus())
    for gpu in lib.gpus[4:]:
        gpu.util_gpu = 85
    clock = Clock()
    check = make_check(lib, clock=clock, price_per_gpu_hour=4.1)
    for _ in range(46):                  # 45 minutes of readings, one a minute
        result = await run(check)
        clock.t += 60
    assert value(result, "mlwarden.gpu.node.idle", node="node-a") == 4
    assert value(result, "mlwarden.gpu.node.idle.cost_rate", node="node-a") == pytest.approx(16.4)
    assert value(result, "mlwarden.gpu.node.idle.duration", node="node-a") == 2700
    assert value(result, "mlwarden.gpu.fleet.idle") == 4
    assert value(result, "mlwarden.gpu.fleet.idle.cost_rate") == pytest.approx(16.4)
    assert value(result, "mlwarden.gpu.idle", gpu="0") == 1
    assert value(result, "mlwarden.gpu.idle.cost", gpu="0") == pytest.approx(4.1 * 0.75)
    assert value(result, "mlwarden.gpu.idle", gpu="5") == 0
    assert value(result, "mlwarden.gpu.idle.cost_rate", gpu="5") == 0
    assert "4 idle (about 16.40/h)" in result.message
    await check.close()


async def test_a_hanging_nvml_read_costs_only_its_own_timeout():
    lib = FakeNvml(one_gpu())
    release = threading.Event()
    real_count = lib.nvmlDeviceGetCount

    def hanging_count():
        release.wait(10)
        return real_count()

    check = make_check(lib, timeout=0.2, xid_events=False)
    lib.nvmlInit()
    lib.nvmlDeviceGetCount = hanging_count
    first = await check.run()
    assert first.status == Status.UNKNOWN and first.error == "timeout"
    second = await check.run()
    assert second.status == Status.UNKNOWN
    assert "previous NVML read is still blocked" in second.message
    release.set()
    time.sleep(0.05)
    third = await run(check)
    assert third.status == Status.OK
    await check.close()


async def test_a_driver_older_than_the_bindings_leaves_the_field_out():
    lib = FakeNvml(one_gpu(processes=[(1, GiB)]))

    def too_new(handle):
        raise pynvml.NVMLLibraryMismatchError("Unversioned function called and the pyNVML version "
                                              "does not match the NVML lib version.")

    lib.nvmlDeviceGetComputeRunningProcesses = too_new
    check = make_check(lib)
    result = await run(check)
    assert result.status == Status.OK
    assert value(result, "mlwarden.gpu.processes") == 0        # graphics processes still read
    assert result.warnings == ["NVML cannot read compute_processes: the driver is older than "
                               "nvidia-ml-py (Unversioned function called and the pyNVML version does "
                               "not match the NVML lib version.); it is left out"]
    await check.close()


async def test_a_failing_xid_watcher_is_restarted_then_given_up():
    lib = FakeNvml(one_gpu())

    def broken_wait(eventSet, timeoutms):
        raise pynvml.NVMLError(pynvml.NVML_ERROR_UNKNOWN)

    lib.nvmlEventSetWait_v2 = broken_wait
    check = make_check(lib)
    notes = []
    for _ in range(5):
        result = await run(check)
        notes.extend(w for w in result.warnings if "XID" in w)
        time.sleep(0.05)
    assert notes[:2] == ["XID event watcher stopped: NVMLError_Unknown: Unknown Error; restarting it"] * 2
    assert notes[2] == "XID event watcher stopped: NVMLError_Unknown: Unknown Error; XIDs are no longer counted"
    assert len(notes) == 3
    await check.close()
