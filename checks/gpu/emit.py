"""Readings -> catalog metrics: the one mapping both sources share.

Every metric is declared in this folder's metadata.csv. Values are in base units (ratio
0..1, bytes, watts, hertz, joules, seconds); a field that is ``None`` is not emitted, so an
unsupported field is missing data rather than a zero.
"""

from __future__ import annotations

from typing import Protocol

from checks.gpu.idle import IdleStatus, NodeIdle
from checks.gpu.lost import LostGpu
from checks.gpu.readings import THROTTLE_REASONS, GpuReading
from checks.gpu.xid import xid_meaning

__all__ = ["gpu_tags", "emit_gpu", "emit_idle", "emit_lost", "emit_node", "emit_xid"]

_GAUGES = [
    ("gpu.utilization", "utilization"),
    ("gpu.memory.utilization", "memory_utilization"),
    ("gpu.encoder.utilization", "encoder_utilization"),
    ("gpu.decoder.utilization", "decoder_utilization"),
    ("gpu.memory.used", "memory_used"),
    ("gpu.memory.free", "memory_free"),
    ("gpu.memory.total", "memory_total"),
    ("gpu.temperature", "temperature"),
    ("gpu.memory.temperature", "memory_temperature"),
    ("gpu.power.usage", "power_usage"),
    ("gpu.power.limit", "power_limit"),
    ("gpu.clock.sm", "sm_clock"),
    ("gpu.clock.memory", "memory_clock"),
    ("gpu.row_remap.failure", "row_remap_failure"),
    ("gpu.graphics.active", "graphics_active"),
    ("gpu.tensor.active", "tensor_active"),
    ("gpu.dram.active", "dram_active"),
]
_COUNTERS = [
    ("gpu.ecc.errors", "ecc_corrected", {"type": "corrected"}),
    ("gpu.ecc.errors", "ecc_uncorrected", {"type": "uncorrected"}),
    ("gpu.remapped_rows", "remapped_rows_correctable", {"type": "correctable"}),
    ("gpu.remapped_rows", "remapped_rows_uncorrectable", {"type": "uncorrectable"}),
    ("gpu.energy", "energy", {}),
    ("gpu.pcie.replays", "pcie_replays", {}),
]


class Submit(Protocol):
    """The check verbs emit uses (AgentCheck provides them)."""

    def gauge(self, name: str, value: float, tags: dict[str, object] | None = None) -> None: ...

    def count(self, name: str, value: float, tags: dict[str, object] | None = None) -> None: ...

    def monotonic_count(self, name: str, value: float, tags: dict[str, object] | None = None) -> None: ...


def gpu_tags(node: str, gpu: GpuReading) -> dict[str, object]:
    tags: dict[str, object] = {"node": node, "gpu": gpu.index, "uuid": gpu.uuid, "gpu_model": gpu.model}
    if gpu.is_mig:
        tags.update(mig_profile=gpu.mig_profile, mig_instance=f"{gpu.mig_gi}/{gpu.mig_ci}",
                    parent_uuid=gpu.parent_uuid)
    tags.update({k: v for k, v in gpu.workload.items() if v})
    return tags


def emit_gpu(out: Submit, node: str, gpu: GpuReading) -> None:
    tags = gpu_tags(node, gpu)
    out.gauge("gpu.up", 1, tags)
    for metric, attr in _GAUGES:
        value = getattr(gpu, attr)
        if value is not None:
            out.gauge(metric, value, tags)
    for metric, attr, extra in _COUNTERS:
        value = getattr(gpu, attr)
        if value is not None:
            out.monotonic_count(metric, value, {**tags, **extra} if extra else tags)
    if gpu.throttle_reasons is not None:
        for bit, reason in THROTTLE_REASONS.items():
            out.gauge("gpu.throttled", 1 if gpu.throttle_reasons & bit else 0, {**tags, "reason": reason})
    if gpu.processes is not None:
        out.gauge("gpu.processes", len(gpu.processes), tags)
        for proc in gpu.processes:
            if proc.used_memory is None:
                continue
            ptags = {**tags, "pid": proc.pid, "process": proc.name}
            for key, value in (("container_id", proc.container_id), ("container_runtime", proc.runtime),
                               ("pod_uid", proc.pod_uid), ("pod", proc.pod), ("namespace", proc.namespace)):
                if value:
                    ptags[key] = value
            out.gauge("gpu.process.memory.used", proc.used_memory, ptags)


def emit_xid(out: Submit, node: str, tags: dict[str, object], code: int, occurrences: int) -> None:
    slug, _text = xid_meaning(code)
    out.count("gpu.xid.errors", occurrences, {**tags, "node": node, "xid": code, "xid_meaning": slug})


def emit_idle(out: Submit, tags: dict[str, object], status: IdleStatus) -> None:
    out.gauge("gpu.idle", 1 if status.idle else 0, tags)
    out.gauge("gpu.idle.duration", status.duration, tags)
    if status.cost is not None:
        out.gauge("gpu.idle.cost", status.cost, tags)
    if status.cost_rate is not None:
        out.gauge("gpu.idle.cost_rate", status.cost_rate, tags)


def emit_lost(out: Submit, node: str, gpu: LostGpu) -> None:
    out.gauge("gpu.up", 0, {"node": node, "gpu": gpu.index, "uuid": gpu.uuid, "gpu_model": gpu.model})


def emit_node(out: Submit, node: str, present: int, lost: int, idle: NodeIdle | None) -> None:
    tags = {"node": node}
    out.gauge("gpu.present", present, tags)
    out.gauge("gpu.lost", lost, tags)
    if idle is not None:
        out.gauge("gpu.node.idle", idle.idle, tags)
        out.gauge("gpu.node.idle.duration", idle.min_duration, tags)
        if idle.cost_rate is not None:
            out.gauge("gpu.node.idle.cost_rate", idle.cost_rate, tags)


def emit_fleet(out: Submit, idle: NodeIdle) -> None:
    out.gauge("gpu.fleet.idle", idle.idle)
    if idle.cost_rate is not None:
        out.gauge("gpu.fleet.idle.cost_rate", idle.cost_rate)
