"""The one place that talks to NVML (nvidia-ml-py's ``pynvml``).

Everything else in the check sees :class:`~checks.gpu.readings.GpuReading` values and the
two errors below, never a ``pynvml`` name. The library module is passed in (``lib``), so
tests drive this exact code with a strict fake of ``pynvml``; by default it is imported
lazily, so the agent starts (and runs its other checks) where nvidia-ml-py is not installed.

NVML calls block (the driver answers through ioctls, a lost GPU can stall), so callers run
them off the event loop. NVML itself is thread-safe; the XID watcher thread shares the
initialised library.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import ModuleType
from typing import Any, TypeVar

from agent.errors import CheckError
from agent.install import extra_hint
from checks.gpu.readings import GpuReading, ProcessReading

__all__ = ["GpuLost", "Nvml", "NvmlUnavailable", "load_pynvml"]

log = logging.getLogger(__name__)
T = TypeVar("T")


class NvmlUnavailable(CheckError):
    """NVML cannot be used on this machine: no bindings, no library, no driver, or no GPU."""


class GpuLost(Exception):
    """One GPU stopped answering (NVML_ERROR_GPU_IS_LOST: fell off the bus, needs a reset)."""


def load_pynvml() -> ModuleType:
    """Import nvidia-ml-py's ``pynvml``; NvmlUnavailable with an install hint that fits how the
    agent was installed (a checkout, the image, a wheel) if it is missing."""
    try:
        import pynvml
    except ImportError as exc:
        raise NvmlUnavailable(f"nvidia-ml-py is not installed ({exc}); {extra_hint('gpu')}") from None
    return pynvml


class Nvml:
    """An initialised NVML session and the readings it gives.

    ``start()`` initialises the library (NvmlUnavailable saying why when it cannot);
    ``read()`` returns a reading per GPU and per MIG instance, plus the indexes of GPUs
    that are lost; ``stop()`` shuts the session down.
    """

    def __init__(self, lib: ModuleType | None = None) -> None:
        self._lib = lib
        self._started = False
        self.field_errors: dict[str, str] = {}  # "field: error" seen, for one warning each

    @property
    def lib(self) -> ModuleType:
        if self._lib is None:
            self._lib = load_pynvml()
        return self._lib

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> int:
        """Initialise NVML; the number of GPUs. NvmlUnavailable when there is nothing to read."""
        lib = self.lib
        if not self._started:
            try:
                lib.nvmlInit()
            except lib.NVMLError_LibraryNotFound:
                raise NvmlUnavailable(
                    "NVML library libnvidia-ml.so.1 not found: no NVIDIA driver on this machine "
                    "(or it is not mounted into this container)") from None
            except lib.NVMLError_DriverNotLoaded:
                raise NvmlUnavailable("the NVIDIA driver is not loaded (nvmlInit: Driver Not Loaded); "
                                      "no GPU can be read") from None
            except lib.NVMLError_NoPermission:
                raise NvmlUnavailable("no permission to open the NVIDIA devices (/dev/nvidia*); "
                                      "run the agent with access to them") from None
            except lib.NVMLError as exc:
                raise NvmlUnavailable(f"NVML failed to initialise: {exc}") from None
            self._started = True
        try:
            count = int(lib.nvmlDeviceGetCount())
        except lib.NVMLError as exc:
            raise NvmlUnavailable(f"NVML could not count the GPUs: {exc}") from None
        return count

    def stop(self) -> None:
        if self._started:
            self._started = False
            try:
                self.lib.nvmlShutdown()
            except self.lib.NVMLError as exc:
                log.debug("nvmlShutdown failed: %s", exc)

    @property
    def started(self) -> bool:
        return self._started

    def driver_version(self) -> str:
        return _text(self._optional("driver_version", self.lib.nvmlSystemGetDriverVersion) or "")

    # -- readings -----------------------------------------------------------------------
    def read(self, processes: bool = True) -> tuple[list[GpuReading], dict[str, str]]:
        """Readings of every GPU and MIG instance, and ``{index: why}`` for lost GPUs."""
        lib = self.lib
        count = self.start()
        readings: list[GpuReading] = []
        lost: dict[str, str] = {}
        for index in range(count):
            try:
                handle = lib.nvmlDeviceGetHandleByIndex(index)
                gpu = self._read_gpu(handle, str(index), processes)
                readings.append(gpu)
                readings.extend(self._read_mig(handle, gpu, processes))
            except (GpuLost, lib.NVMLError_GpuIsLost) as exc:
                lost[str(index)] = f"GPU is lost ({exc or 'NVML_ERROR_GPU_IS_LOST'})"
            except lib.NVMLError_Unknown as exc:
                lost[str(index)] = f"GPU does not answer ({exc})"
            except (lib.NVMLError_Uninitialized, lib.NVMLError_DriverNotLoaded) as exc:
                self._started = False
                raise NvmlUnavailable(f"the NVIDIA driver went away while reading GPU {index}: {exc}") from None
        return readings, lost

    def handle_uuid(self, handle: Any) -> str:
        return _text(self.lib.nvmlDeviceGetUUID(handle))

    def _read_gpu(self, handle: Any, index: str, processes: bool) -> GpuReading:
        lib = self.lib
        opt = self._optional
        gpu = GpuReading(index=index, uuid=self.handle_uuid(handle), model=_text(lib.nvmlDeviceGetName(handle)))
        pci = opt("pci_info", lib.nvmlDeviceGetPciInfo, handle)
        if pci is not None:
            gpu.pci_bus_id = _text(getattr(pci, "busId", b""))
        util = opt("utilization", lib.nvmlDeviceGetUtilizationRates, handle)
        if util is not None:
            gpu.utilization = util.gpu / 100.0
            gpu.memory_utilization = util.memory / 100.0
        enc = opt("encoder_utilization", lib.nvmlDeviceGetEncoderUtilization, handle)
        gpu.encoder_utilization = None if enc is None else enc[0] / 100.0
        dec = opt("decoder_utilization", lib.nvmlDeviceGetDecoderUtilization, handle)
        gpu.decoder_utilization = None if dec is None else dec[0] / 100.0
        self._memory(gpu, handle)
        gpu.temperature = _num(opt("temperature", lib.nvmlDeviceGetTemperature, handle, lib.NVML_TEMPERATURE_GPU))
        gpu.power_usage = _scaled(opt("power_usage", lib.nvmlDeviceGetPowerUsage, handle), 1e-3)
        gpu.power_limit = _scaled(opt("power_limit", lib.nvmlDeviceGetEnforcedPowerLimit, handle), 1e-3)
        gpu.sm_clock = _scaled(opt("sm_clock", lib.nvmlDeviceGetClockInfo, handle, lib.NVML_CLOCK_SM), 1e6)
        gpu.memory_clock = _scaled(opt("memory_clock", lib.nvmlDeviceGetClockInfo, handle, lib.NVML_CLOCK_MEM), 1e6)
        gpu.throttle_reasons = self._throttle(handle)
        gpu.ecc_corrected = _num(opt("ecc_corrected", lib.nvmlDeviceGetTotalEccErrors, handle,
                                     lib.NVML_MEMORY_ERROR_TYPE_CORRECTED, lib.NVML_VOLATILE_ECC))
        gpu.ecc_uncorrected = _num(opt("ecc_uncorrected", lib.nvmlDeviceGetTotalEccErrors, handle,
                                       lib.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, lib.NVML_VOLATILE_ECC))
        gpu.energy = _scaled(opt("energy", lib.nvmlDeviceGetTotalEnergyConsumption, handle), 1e-3)
        gpu.pcie_replays = _num(opt("pcie_replays", lib.nvmlDeviceGetPcieReplayCounter, handle))
        rows = opt("remapped_rows", lib.nvmlDeviceGetRemappedRows, handle)
        if rows is not None:
            gpu.remapped_rows_correctable, gpu.remapped_rows_uncorrectable = float(rows[0]), float(rows[1])
            gpu.row_remap_failure = float(rows[3])
        if processes and not self._mig_enabled(handle):
            gpu.processes = self._processes(handle)
        return gpu

    def _read_mig(self, handle: Any, parent: GpuReading, processes: bool) -> list[GpuReading]:
        if not self._mig_enabled(handle):
            return []
        lib = self.lib
        out = []
        slots = self._optional("mig_device_count", lib.nvmlDeviceGetMaxMigDeviceCount, handle) or 0
        for slot in range(int(slots)):
            try:
                mig = lib.nvmlDeviceGetMigDeviceHandleByIndex(handle, slot)
            except lib.NVMLError_NotFound:
                continue  # an empty slot: no instance created there
            name = _text(self._optional("mig_name", lib.nvmlDeviceGetName, mig) or "")
            reading = GpuReading(
                index=parent.index,
                uuid=self.handle_uuid(mig),
                model=parent.model,
                pci_bus_id=parent.pci_bus_id,
                parent_uuid=parent.uuid,
                mig_profile=name.rpartition("MIG ")[2] if "MIG " in name else "",
                mig_gi=_id(self._optional("mig_gpu_instance", lib.nvmlDeviceGetGpuInstanceId, mig)),
                mig_ci=_id(self._optional("mig_compute_instance", lib.nvmlDeviceGetComputeInstanceId, mig)),
            )
            self._memory(reading, mig)
            if processes:
                reading.processes = self._processes(mig)
            out.append(reading)
        return out

    def _mig_enabled(self, handle: Any) -> bool:
        mode = self._optional("mig_mode", self.lib.nvmlDeviceGetMigMode, handle)
        return bool(mode) and mode[0] == self.lib.NVML_DEVICE_MIG_ENABLE

    def _memory(self, gpu: GpuReading, handle: Any) -> None:
        mem = self._optional("memory", self.lib.nvmlDeviceGetMemoryInfo, handle)
        if mem is not None:
            gpu.memory_total, gpu.memory_free, gpu.memory_used = float(mem.total), float(mem.free), float(mem.used)

    def _throttle(self, handle: Any) -> int | None:
        lib = self.lib
        fn = getattr(lib, "nvmlDeviceGetCurrentClocksEventReasons", None)
        if fn is not None:
            try:
                return int(fn(handle))
            except lib.NVMLError_FunctionNotFound:
                pass  # a driver older than the bindings: use the older name
            except (lib.NVMLError_NotSupported, lib.NVMLError_NoPermission):
                return None
        value = self._optional("throttle_reasons", lib.nvmlDeviceGetCurrentClocksThrottleReasons, handle)
        return None if value is None else int(value)

    def _processes(self, handle: Any) -> list[ProcessReading] | None:
        lib = self.lib
        found: dict[int, ProcessReading] = {}
        read_any = False
        for what, fn in (("compute_processes", lib.nvmlDeviceGetComputeRunningProcesses),
                         ("graphics_processes", lib.nvmlDeviceGetGraphicsRunningProcesses)):
            procs = self._optional(what, fn, handle)
            if procs is None:
                continue
            read_any = True
            for proc in procs:
                pid = int(proc.pid)
                used = proc.usedGpuMemory
                memory = None if used is None else float(used)
                if pid in found:
                    if memory is not None and (found[pid].used_memory or 0) < memory:
                        found[pid].used_memory = memory
                else:
                    found[pid] = ProcessReading(pid=pid, used_memory=memory)
        return list(found.values()) if read_any else None

    def _optional(self, what: str, fn: Callable[..., T], *args: Any) -> T | None:
        """Call one NVML getter; None when this GPU/driver does not support or allow it.

        NotSupported is normal (a field this GPU lacks); NoPermission and FunctionNotFound
        (older driver) are remembered once for a warning. GpuIsLost propagates: the GPU is gone.
        """
        lib = self.lib
        try:
            return fn(*args)
        except lib.NVMLError_NotSupported:
            return None
        except (lib.NVMLError_NoPermission, lib.NVMLError_FunctionNotFound) as exc:
            self.field_errors.setdefault(what, str(exc))
            return None
        except (lib.NVMLError_GpuIsLost, lib.NVMLError_Uninitialized, lib.NVMLError_DriverNotLoaded,
                lib.NVMLError_Unknown):
            raise
        except lib.NVMLError as exc:
            self.field_errors.setdefault(what, str(exc))
            return None
        except getattr(lib, "NVMLLibraryMismatchError", ()) as exc:
            # an unversioned pynvml call the (older) driver lacks: say so, leave the field out
            self.field_errors.setdefault(what, f"the driver is older than nvidia-ml-py ({exc})")
            return None

    # -- XID events (used by checks.gpu.xid's watcher thread) ----------------------------
    def xid_event_set(self) -> tuple[Any, list[str]]:
        """An event set registered for XID errors on every GPU; and the GPUs that refused."""
        lib = self.lib
        self.start()
        event_set = lib.nvmlEventSetCreate()
        refused = []
        for index in range(int(lib.nvmlDeviceGetCount())):
            try:
                handle = lib.nvmlDeviceGetHandleByIndex(index)
                lib.nvmlDeviceRegisterEvents(handle, lib.nvmlEventTypeXidCriticalError, event_set)
            except lib.NVMLError as exc:
                refused.append(f"GPU {index}: {exc}")
        return event_set, refused

    def wait_xid(self, event_set: Any, timeout_ms: int) -> tuple[str, str, int] | None:
        """The next XID event as (gpu index, uuid, code); None when none came in time."""
        lib = self.lib
        wait = getattr(lib, "nvmlEventSetWait_v2", None) or lib.nvmlEventSetWait
        try:
            data = wait(event_set, timeout_ms)
        except lib.NVMLError_Timeout:
            return None
        if not data.eventType & lib.nvmlEventTypeXidCriticalError:
            return None
        index, uuid = "", ""
        try:
            uuid = self.handle_uuid(data.device)
            index = str(lib.nvmlDeviceGetIndex(data.device))
        except lib.NVMLError:
            pass  # the GPU that raised it may already be gone; still count the event
        return index, uuid, int(data.eventData)

    def free_event_set(self, event_set: Any) -> None:
        try:
            self.lib.nvmlEventSetFree(event_set)
        except self.lib.NVMLError as exc:
            log.debug("nvmlEventSetFree failed: %s", exc)


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _num(value: Any) -> float | None:
    return None if value is None else float(value)


def _scaled(value: Any, factor: float) -> float | None:
    return None if value is None else float(value) * factor


def _id(value: Any) -> str:
    return "" if value is None else str(value)
