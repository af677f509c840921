"""GPU readings as the cost meter needs them, rebuilt from one gpu check result's samples.

The gpu check (NVML or dcgm-exporter) reports per GPU ``gpu.up``, utilisation, memory and
idleness, and per process the memory it holds with its pod (``gpu.process.memory.used``);
dcgm-exporter in Kubernetes mode labels the GPU itself with the pod using it. This module
only reads samples: it never imports the check.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from agent.samples import Sample

__all__ = ["GpuUse", "Workload", "gpu_uses", "GPU_METRICS"]

P = "mlwarden.gpu."
GPU_METRICS = frozenset({P + "up", P + "utilization", P + "memory.used", P + "memory.total",
                         P + "idle", P + "processes", P + "process.memory.used"})


@dataclass
class Workload:
    """Something holding a GPU: a process (NVML) or a pod (dcgm-exporter's labels)."""

    pod: str = ""
    namespace: str = ""
    container: str = ""
    process: str = ""
    memory: float | None = None  # bytes held, where known


@dataclass
class GpuUse:
    """One GPU or MIG instance at one reading."""

    uuid: str
    node: str = ""
    gpu_model: str = ""
    parent: str = ""             # MIG instance: its physical GPU's uuid
    up: bool = False
    utilization: float | None = None
    memory_used: float | None = None
    memory_total: float | None = None
    idle: bool | None = None     # the gpu check's verdict (physical GPUs only)
    processes_known: bool = False
    workloads: list[Workload] = field(default_factory=list)
    labelled: Workload | None = None  # dcgm-exporter's pod/namespace/container labels

    def holders(self) -> list[Workload]:
        """Who holds the GPU: its processes where they are known, else its pod label."""
        if self.workloads:
            return self.workloads
        return [self.labelled] if self.labelled is not None else []


def gpu_uses(samples: Iterable[Sample]) -> dict[str, GpuUse]:
    """Every GPU and MIG instance of a result, by uuid (an empty dict: not a GPU result)."""
    out: dict[str, GpuUse] = {}
    for s in samples:
        metric = s.metric
        if metric not in GPU_METRICS:
            continue
        tags = dict(s.tags)
        uuid = tags.get("uuid")
        if not uuid:
            continue
        use = out.get(uuid)
        if use is None:
            use = out[uuid] = GpuUse(uuid, tags.get("node", ""), tags.get("gpu_model", ""),
                                     tags.get("parent_uuid", ""))
        if metric == P + "process.memory.used":
            use.processes_known = True
            use.workloads.append(Workload(tags.get("pod", ""), tags.get("namespace", ""),
                                          tags.get("container_id", ""), tags.get("process", ""),
                                          s.value))
            continue
        if use.labelled is None and tags.get("pod"):
            use.labelled = Workload(tags["pod"], tags.get("namespace", ""), tags.get("container", ""))
        if metric == P + "up":
            use.up = s.value >= 1
        elif metric == P + "utilization":
            use.utilization = s.value
        elif metric == P + "memory.used":
            use.memory_used = s.value
        elif metric == P + "memory.total":
            use.memory_total = s.value
        elif metric == P + "idle":
            use.idle = s.value >= 1
        elif metric == P + "processes":
            use.processes_known = True
    return out
