"""What either source (NVML or DCGM) read from one GPU: the common shape both map into.

Both sources fill the same :class:`GpuReading`, and :mod:`checks.gpu.emit` turns it into
catalog metrics, so rules and dashboards work whichever source feeds them. A field the GPU
does not support (NVML's NotSupported, DCGM's blank sentinel) is ``None``: missing data,
never a zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["GpuReading", "ProcessReading", "NodeReading", "THROTTLE_REASONS"]

# NVML clock-event (throttle) reason bits -> the `reason` tag (same bits in DCGM's
# DCGM_FI_DEV_CLOCK_THROTTLE_REASONS / DCGM_FI_DEV_CLOCKS_EVENT_REASONS).
THROTTLE_REASONS: dict[int, str] = {
    0x001: "gpu_idle",
    0x002: "applications_clocks",
    0x004: "sw_power_cap",
    0x008: "hw_slowdown",
    0x010: "sync_boost",
    0x020: "sw_thermal",
    0x040: "hw_thermal",
    0x080: "hw_power_brake",
    0x100: "display_clocks",
}


@dataclass
class ProcessReading:
    """A process holding GPU memory, and the container/pod it runs in where known."""

    pid: int
    used_memory: float | None  # bytes
    name: str = ""
    container_id: str = ""
    runtime: str = ""
    pod_uid: str = ""
    pod: str = ""
    namespace: str = ""


@dataclass
class GpuReading:
    """One GPU (or one MIG instance of it) at one moment; ``None`` means not supported."""

    index: str
    uuid: str
    model: str = ""
    pci_bus_id: str = ""
    mig_profile: str = ""      # MIG instance only: e.g. 1g.10gb
    mig_gi: str = ""           # GPU instance id
    mig_ci: str = ""           # compute instance id
    parent_uuid: str = ""      # MIG instance only: its physical GPU
    workload: dict[str, str] = field(default_factory=dict)  # DCGM k8s mode: pod/namespace/container
    utilization: float | None = None          # 0..1
    memory_utilization: float | None = None   # 0..1
    encoder_utilization: float | None = None
    decoder_utilization: float | None = None
    memory_used: float | None = None          # bytes
    memory_free: float | None = None
    memory_total: float | None = None
    temperature: float | None = None          # celsius
    memory_temperature: float | None = None
    power_usage: float | None = None          # watts
    power_limit: float | None = None
    sm_clock: float | None = None             # hertz
    memory_clock: float | None = None
    throttle_reasons: int | None = None       # bitmask, THROTTLE_REASONS
    ecc_corrected: float | None = None        # volatile totals
    ecc_uncorrected: float | None = None
    energy: float | None = None               # joules since driver load
    pcie_replays: float | None = None
    remapped_rows_correctable: float | None = None
    remapped_rows_uncorrectable: float | None = None
    row_remap_failure: float | None = None
    graphics_active: float | None = None      # DCGM profiling, 0..1
    tensor_active: float | None = None
    dram_active: float | None = None
    processes: list[ProcessReading] | None = None  # None: not read
    last_xid: int | None = None               # DCGM only: the last XID code seen
    xid_window_counts: dict[int, float] | None = None  # DCGM_EXP_XID_ERRORS_COUNT by code

    @property
    def is_mig(self) -> bool:
        return bool(self.parent_uuid)

    @property
    def physical_uuid(self) -> str:
        return self.parent_uuid or self.uuid


@dataclass
class NodeReading:
    """Every GPU one node reported, plus the GPUs that were there and no longer answer."""

    node: str
    gpus: list[GpuReading] = field(default_factory=list)
    lost: dict[str, str] = field(default_factory=dict)  # uuid -> why (GpuIsLost, ...)
    source: str = ""            # URL or "nvml"
    error: str | None = None    # the node could not be read at all
