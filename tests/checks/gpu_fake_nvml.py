"""A strict fake of nvidia-ml-py's ``pynvml`` module, for tests on machines with no GPU.

Why a fake: no NVIDIA GPU or driver can run here. Strict how: every function it offers is
one that ``pynvml`` has, with the same parameters (checked when the fake is built); it
returns ``pynvml``'s own ctypes structures (c_nvmlMemory_t, c_nvmlUtilization_t,
c_nvmlEventData_t, nvmlPciInfo_t), process objects made by ``pynvml``'s own
nvmlStructToFriendlyObject, device handles that are real ``c_nvmlDevice_t`` pointers, and
raises ``pynvml``'s own NVMLError subclasses (NotSupported per field, GpuIsLost,
DriverNotLoaded, LibraryNotFound, Uninitialized before nvmlInit, Timeout from event waits).
"""

from __future__ import annotations

import ctypes
import inspect
import threading
import types
from dataclasses import dataclass, field

import pynvml

__all__ = ["FakeGpu", "FakeMig", "FakeNvml", "eight_gpus", "one_gpu", "mig_gpus", "check_strict"]


@dataclass
class FakeMig:
    uuid: str
    profile: str            # e.g. "1g.18gb"
    gi: int
    ci: int = 0
    memory_total: int = 18 * 2**30
    memory_used: int = 0
    processes: list[tuple[int, int | None]] = field(default_factory=list)


@dataclass
class FakeGpu:
    uuid: str
    name: str = "NVIDIA H100 80GB HBM3"
    bus_id: str = "00000000:18:00.0"
    util_gpu: int = 0
    util_mem: int = 0
    memory_total: int = 80 * 2**30
    memory_used: int = 512 * 2**20
    temperature: int = 34
    power_mw: int = 71_000
    power_limit_mw: int = 700_000
    sm_mhz: int = 345
    mem_mhz: int = 2619
    throttle: int = 0x1
    ecc: tuple[int, int] = (0, 0)
    energy_mj: int = 123_456_789
    pcie_replays: int = 0
    remapped_rows: tuple[int, int, int, int] = (0, 0, 0, 0)
    encoder: int = 0
    decoder: int = 0
    processes: list[tuple[int, int | None]] = field(default_factory=list)
    graphics_processes: list[tuple[int, int | None]] = field(default_factory=list)
    mig: list[FakeMig] | None = None
    unsupported: set[str] = field(default_factory=set)   # function names raising NotSupported
    lost: str = ""           # "", "queries" (calls raise GpuIsLost) or "handle" (no handle at all)
    no_events: bool = False  # nvmlDeviceRegisterEvents raises NotSupported


def one_gpu(**kw: object) -> list[FakeGpu]:
    return [FakeGpu(uuid="GPU-0d8b7f42-6a1e-4c1f-9d7e-000000000000", **kw)]  # type: ignore[arg-type]


def eight_gpus() -> list[FakeGpu]:
    return [FakeGpu(uuid=f"GPU-0d8b7f42-6a1e-4c1f-9d7e-00000000000{i}", bus_id=f"00000000:{0x18 + i:02X}:00.0",
                    name="NVIDIA H200") for i in range(8)]


def mig_gpus() -> list[FakeGpu]:
    """Two A100s: GPU 0 split into three MIG instances, GPU 1 whole."""
    migs = [FakeMig(uuid=f"MIG-5c6d7e8f-0000-5000-8000-00000000000{i}", profile=p, gi=gi,
                    memory_total=mem * 2**30)
            for i, (p, gi, mem) in enumerate([("3g.20gb", 1, 20), ("2g.10gb", 5, 10), ("1g.5gb", 13, 5)])]
    return [
        FakeGpu(uuid="GPU-a100-0000-0000-0000-000000000000", name="NVIDIA A100-SXM4-40GB",
                memory_total=40 * 2**30, mig=migs),
        FakeGpu(uuid="GPU-a100-0000-0000-0000-000000000001", name="NVIDIA A100-SXM4-40GB",
                bus_id="00000000:19:00.0", memory_total=40 * 2**30),
    ]


def _err(code: int) -> pynvml.NVMLError:
    return pynvml.NVMLError(code)


class FakeNvml(types.ModuleType):
    """Use as the ``lib`` of the NVML adapter: ``FakeNvml(eight_gpus())``."""

    def __init__(self, gpus: list[FakeGpu], *, init_error: str = "", driver: str = "580.159.03") -> None:
        super().__init__("pynvml")
        for name in dir(pynvml):  # the real constants and error classes
            if name.startswith(("NVML_", "NVMLError", "NVMLLibraryMismatchError", "nvmlEventType", "nvmlClocks")):
                setattr(self, name, getattr(pynvml, name))
        self.gpus = gpus
        self.init_error = init_error
        self.driver = driver
        self.initialised = 0
        self.calls: list[str] = []
        self._handles: dict[int, tuple[int, int | None]] = {}  # address -> (gpu index, mig slot)
        self._keep: list[object] = []
        self._events: list[tuple[int, int]] = []   # (gpu index, xid)
        self._event_sets: dict[int, set[int]] = {}
        self._cond = threading.Condition()
        self.delivered = 0
        for name, fn in self._api().items():
            setattr(self, name, fn)

    # -- test controls ------------------------------------------------------------------
    def inject_xid(self, index: int, code: int) -> None:
        with self._cond:
            self._events.append((index, code))
            self._cond.notify_all()

    # -- plumbing -----------------------------------------------------------------------
    def _api(self) -> dict[str, object]:
        return {name: getattr(self, "_" + name) for name in API}

    def _handle(self, index: int, slot: int | None = None) -> object:
        for address, key in self._handles.items():
            if key == (index, slot):
                return ctypes.cast(ctypes.c_void_p(address), pynvml.c_nvmlDevice_t)
        struct = pynvml.struct_c_nvmlDevice_t()
        self._keep.append(struct)
        handle = ctypes.pointer(struct)
        self._handles[ctypes.addressof(struct)] = (index, slot)
        return ctypes.cast(handle, pynvml.c_nvmlDevice_t)

    def _resolve(self, handle: object, what: str) -> tuple[FakeGpu, FakeMig | None]:
        self.calls.append(what)
        if not self.initialised:
            raise _err(pynvml.NVML_ERROR_UNINITIALIZED)
        address = ctypes.cast(handle, ctypes.c_void_p).value
        if address not in self._handles:
            raise _err(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        index, slot = self._handles[address]
        gpu = self.gpus[index]
        if gpu.lost:
            raise _err(pynvml.NVML_ERROR_GPU_IS_LOST)
        if what in gpu.unsupported:
            raise _err(pynvml.NVML_ERROR_NOT_SUPPORTED)
        mig = None
        if slot is not None:
            assert gpu.mig is not None
            mig = gpu.mig[slot]
        return gpu, mig

    def _whole(self, handle: object, what: str) -> FakeGpu:
        """A query that physical GPUs answer and MIG instances (and MIG-enabled parents) do not."""
        gpu, mig = self._resolve(handle, what)
        if mig is not None:
            raise _err(pynvml.NVML_ERROR_NOT_SUPPORTED)
        if gpu.mig is not None and what in ("nvmlDeviceGetUtilizationRates", "nvmlDeviceGetEncoderUtilization",
                                            "nvmlDeviceGetDecoderUtilization"):
            raise _err(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return gpu

    # -- the API (same names and parameters as pynvml) ---------------------------------
    def _nvmlInit(self):
        if self.init_error:
            raise _err(getattr(pynvml, f"NVML_ERROR_{self.init_error}"))
        self.initialised += 1

    def _nvmlShutdown(self):
        if not self.initialised:
            raise _err(pynvml.NVML_ERROR_UNINITIALIZED)
        self.initialised -= 1

    def _nvmlSystemGetDriverVersion(self):
        return self.driver

    def _nvmlDeviceGetCount(self):
        if not self.initialised:
            raise _err(pynvml.NVML_ERROR_UNINITIALIZED)
        return len(self.gpus)

    def _nvmlDeviceGetHandleByIndex(self, index):
        if not self.initialised:
            raise _err(pynvml.NVML_ERROR_UNINITIALIZED)
        if not 0 <= index < len(self.gpus):
            raise _err(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        if self.gpus[index].lost == "handle":
            raise _err(pynvml.NVML_ERROR_GPU_IS_LOST)
        return self._handle(index)

    def _nvmlDeviceGetIndex(self, handle):
        address = ctypes.cast(handle, ctypes.c_void_p).value
        self._resolve(handle, "nvmlDeviceGetIndex")
        return self._handles[address][0]

    def _nvmlDeviceGetName(self, handle):
        gpu, mig = self._resolve(handle, "nvmlDeviceGetName")
        return f"{gpu.name} MIG {mig.profile}" if mig else gpu.name

    def _nvmlDeviceGetUUID(self, handle):
        gpu, mig = self._resolve(handle, "nvmlDeviceGetUUID")
        return mig.uuid if mig else gpu.uuid

    def _nvmlDeviceGetPciInfo(self, handle):
        gpu, _ = self._resolve(handle, "nvmlDeviceGetPciInfo")
        info = pynvml.nvmlPciInfo_t()
        info.busId = gpu.bus_id.encode()
        return info

    def _nvmlDeviceGetUtilizationRates(self, handle):
        gpu = self._whole(handle, "nvmlDeviceGetUtilizationRates")
        return pynvml.c_nvmlUtilization_t(gpu=gpu.util_gpu, memory=gpu.util_mem)

    def _nvmlDeviceGetEncoderUtilization(self, handle):
        return [self._whole(handle, "nvmlDeviceGetEncoderUtilization").encoder, 167000]

    def _nvmlDeviceGetDecoderUtilization(self, handle):
        return [self._whole(handle, "nvmlDeviceGetDecoderUtilization").decoder, 167000]

    def _nvmlDeviceGetMemoryInfo(self, handle, version=None):
        gpu, mig = self._resolve(handle, "nvmlDeviceGetMemoryInfo")
        total, used = (mig.memory_total, mig.memory_used) if mig else (gpu.memory_total, gpu.memory_used)
        return pynvml.c_nvmlMemory_t(total=total, free=total - used, used=used)

    def _nvmlDeviceGetTemperature(self, handle, sensor):
        assert sensor == pynvml.NVML_TEMPERATURE_GPU
        return self._whole(handle, "nvmlDeviceGetTemperature").temperature

    def _nvmlDeviceGetPowerUsage(self, handle):
        return self._whole(handle, "nvmlDeviceGetPowerUsage").power_mw

    def _nvmlDeviceGetEnforcedPowerLimit(self, handle):
        return self._whole(handle, "nvmlDeviceGetEnforcedPowerLimit").power_limit_mw

    def _nvmlDeviceGetClockInfo(self, handle, type):  # noqa: A002 - pynvml's parameter name
        gpu = self._whole(handle, "nvmlDeviceGetClockInfo")
        return {pynvml.NVML_CLOCK_SM: gpu.sm_mhz, pynvml.NVML_CLOCK_MEM: gpu.mem_mhz}[type]

    def _nvmlDeviceGetCurrentClocksEventReasons(self, handle):
        return self._whole(handle, "nvmlDeviceGetCurrentClocksEventReasons").throttle

    def _nvmlDeviceGetCurrentClocksThrottleReasons(self, handle):
        return self._whole(handle, "nvmlDeviceGetCurrentClocksThrottleReasons").throttle

    def _nvmlDeviceGetTotalEccErrors(self, handle, errorType, counterType):
        gpu = self._whole(handle, "nvmlDeviceGetTotalEccErrors")
        assert counterType == pynvml.NVML_VOLATILE_ECC
        return gpu.ecc[errorType]

    def _nvmlDeviceGetTotalEnergyConsumption(self, handle):
        return self._whole(handle, "nvmlDeviceGetTotalEnergyConsumption").energy_mj

    def _nvmlDeviceGetPcieReplayCounter(self, handle):
        return self._whole(handle, "nvmlDeviceGetPcieReplayCounter").pcie_replays

    def _nvmlDeviceGetRemappedRows(self, device):
        return self._whole(device, "nvmlDeviceGetRemappedRows").remapped_rows

    def _nvmlDeviceGetMigMode(self, device):
        gpu, mig = self._resolve(device, "nvmlDeviceGetMigMode")
        if mig is not None or "NVIDIA A100" not in gpu.name and gpu.mig is None:
            raise _err(pynvml.NVML_ERROR_NOT_SUPPORTED)
        mode = pynvml.NVML_DEVICE_MIG_ENABLE if gpu.mig is not None else pynvml.NVML_DEVICE_MIG_DISABLE
        return [mode, mode]

    def _nvmlDeviceGetMaxMigDeviceCount(self, device):
        gpu, _ = self._resolve(device, "nvmlDeviceGetMaxMigDeviceCount")
        return 7 if gpu.mig is not None else 0

    def _nvmlDeviceGetMigDeviceHandleByIndex(self, device, index):
        address = ctypes.cast(device, ctypes.c_void_p).value
        gpu, _ = self._resolve(device, "nvmlDeviceGetMigDeviceHandleByIndex")
        if gpu.mig is None:
            raise _err(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        if index >= len(gpu.mig):
            raise _err(pynvml.NVML_ERROR_NOT_FOUND)
        return self._handle(self._handles[address][0], index)

    def _nvmlDeviceGetGpuInstanceId(self, device):
        _, mig = self._resolve(device, "nvmlDeviceGetGpuInstanceId")
        if mig is None:
            raise _err(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return mig.gi

    def _nvmlDeviceGetComputeInstanceId(self, device):
        _, mig = self._resolve(device, "nvmlDeviceGetComputeInstanceId")
        if mig is None:
            raise _err(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return mig.ci

    def _procs(self, handle: object, what: str, graphics: bool) -> list[object]:
        gpu, mig = self._resolve(handle, what)
        if mig is not None:
            items = [] if graphics else mig.processes
        else:
            items = gpu.graphics_processes if graphics else gpu.processes
        out = []
        for pid, used in items:
            struct = pynvml.c_nvmlProcessInfo_v3_t(
                pid=pid, usedGpuMemory=pynvml.NVML_VALUE_NOT_AVAILABLE_ulonglong.value if used is None else used,
                gpuInstanceId=mig.gi if mig else 0xFFFFFFFF, computeInstanceId=mig.ci if mig else 0xFFFFFFFF)
            obj = pynvml.nvmlStructToFriendlyObject(struct)
            if obj.usedGpuMemory == pynvml.NVML_VALUE_NOT_AVAILABLE_ulonglong.value:
                obj.usedGpuMemory = None  # what pynvml does
            out.append(obj)
        return out

    def _nvmlDeviceGetComputeRunningProcesses(self, handle):
        return self._procs(handle, "nvmlDeviceGetComputeRunningProcesses", graphics=False)

    def _nvmlDeviceGetGraphicsRunningProcesses(self, handle):
        return self._procs(handle, "nvmlDeviceGetGraphicsRunningProcesses", graphics=True)

    def _nvmlEventSetCreate(self):
        if not self.initialised:
            raise _err(pynvml.NVML_ERROR_UNINITIALIZED)
        event_set = pynvml.c_nvmlEventSet_t()
        key = len(self._event_sets) + 1
        self._event_sets[key] = set()
        event_set.value = key  # type: ignore[attr-defined]
        self._keep.append(event_set)
        return event_set

    def _nvmlDeviceRegisterEvents(self, handle, eventTypes, eventSet):
        gpu, _ = self._resolve(handle, "nvmlDeviceRegisterEvents")
        if gpu.no_events:
            raise _err(pynvml.NVML_ERROR_NOT_SUPPORTED)
        assert eventTypes & pynvml.nvmlEventTypeXidCriticalError
        address = ctypes.cast(handle, ctypes.c_void_p).value
        self._event_sets[eventSet.value].add(self._handles[address][0])

    def _nvmlEventSetWait_v2(self, eventSet, timeoutms):
        registered = self._event_sets[eventSet.value]
        with self._cond:
            if not any(i in registered for i, _ in self._events):
                self._cond.wait(timeoutms / 1000.0)
            for n, (index, code) in enumerate(self._events):
                if index in registered:
                    del self._events[n]
                    self.delivered += 1
                    return pynvml.c_nvmlEventData_t(
                        device=self._handle(index), eventType=pynvml.nvmlEventTypeXidCriticalError,
                        eventData=code, gpuInstanceId=0xFFFFFFFF, computeInstanceId=0xFFFFFFFF)
        raise _err(pynvml.NVML_ERROR_TIMEOUT)

    def _nvmlEventSetWait(self, eventSet, timeoutms):
        return self._nvmlEventSetWait_v2(eventSet, timeoutms)

    def _nvmlEventSetFree(self, eventSet):
        self._event_sets.pop(eventSet.value, None)


API = sorted(name[1:] for name in vars(FakeNvml) if name.startswith("_nvml"))


def check_strict() -> list[str]:
    """Every faked function exists in pynvml with the same parameters; the mismatches."""
    problems = []
    for name in API:
        real = getattr(pynvml, name, None)
        if real is None:
            problems.append(f"{name} is not a pynvml function")
            continue
        want = [(p.name, p.default) for p in inspect.signature(inspect.unwrap(real)).parameters.values()]
        fake = getattr(FakeNvml, "_" + name)
        have = [(p.name, p.default) for p in list(inspect.signature(fake).parameters.values())[1:]]
        if want != have:
            problems.append(f"{name}: pynvml takes {want}, the fake takes {have}")
    return problems
