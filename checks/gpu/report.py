"""From node readings to metrics and a verdict, whichever source read them.

Holds what must outlive one run: the GPUs each node has shown (lost-GPU detection), each
GPU's idle streak, and the last DCGM XID values. :meth:`Reporter.state` is saved in the
durable store after each run so a restart neither forgets a lost GPU nor resets an idle
clock nor counts an old XID again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from checks.gpu import emit
from checks.gpu.config import GpuConfig
from checks.gpu.idle import IdleStatus, IdleTracker, Pricing, idle_signal, summarize
from checks.gpu.lost import LostTracker
from checks.gpu.readings import GpuReading, NodeReading
from checks.gpu.xid import LastXidTracker, WindowXidTracker, xid_meaning

__all__ = ["Reporter", "Verdict"]


@dataclass
class Verdict:
    critical: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    gpus: int = 0
    nodes: int = 0
    idle: int = 0
    idle_cost_rate: float | None = None

    def summary(self) -> str:
        text = f"{self.gpus} GPU{'s' if self.gpus != 1 else ''} on {self.nodes} node{'s' if self.nodes != 1 else ''}"
        text += f", {self.idle} idle"
        if self.idle and self.idle_cost_rate:
            text += f" (about {self.idle_cost_rate:.2f}/h)"
        return text


class Reporter:
    """Turns each run's node readings into samples through ``emit`` and judges them."""

    def __init__(self, config: GpuConfig, state: Mapping[str, Any] | None = None) -> None:
        state = state or {}
        self.config = config
        self.pricing = Pricing(config.price_per_gpu_hour, config.prices)
        self.priced = config.price_per_gpu_hour is not None or bool(config.prices)
        max_gap = max(3 * float(config.interval), 300.0)
        self.idle = IdleTracker(config.idle_threshold, config.idle_window, max_gap, state.get("idle"))
        self.lost = LostTracker(config.forget_lost_after, state.get("lost"))
        self.last_xid = LastXidTracker(state.get("xid_last"))
        self.window_xid = WindowXidTracker(state.get("xid_window"))

    def state(self) -> dict[str, Any]:
        return {"idle": self.idle.state(), "lost": self.lost.state(),
                "xid_last": dict(self.last_xid.last), "xid_window": dict(self.window_xid.last)}

    def report(self, out: emit.Submit, nodes: list[NodeReading], now: float,
               nvml_xids: Mapping[tuple[str, str, int], int] | None = None,
               missing_reason: str = "no longer reported") -> Verdict:
        verdict = Verdict()
        fleet: list[IdleStatus] = []
        self.idle.prune(now)
        for node in nodes:
            statuses = self._node(out, node, now, verdict, missing_reason)
            fleet.extend(statuses)
            if nvml_xids:
                self._nvml_xids(out, node, nvml_xids, verdict)
        if nodes:
            total = summarize(fleet, self.priced)
            emit.emit_fleet(out, total)
            verdict.idle, verdict.idle_cost_rate = total.idle, total.cost_rate
        return verdict

    def _node(self, out: emit.Submit, node: NodeReading, now: float, verdict: Verdict,
              missing_reason: str) -> list[IdleStatus]:
        physical = [g for g in node.gpus if not g.is_mig]
        instances: dict[str, list[GpuReading]] = {}
        for gpu in node.gpus:
            emit.emit_gpu(out, node.node, gpu)
            if gpu.is_mig:
                instances.setdefault(gpu.parent_uuid, []).append(gpu)
        known = {g.uuid for g in physical}
        for parent, parts in instances.items():
            if parent not in known:  # dcgm-exporter may list only the MIG instances of a GPU
                first = parts[0]
                gpu = GpuReading(index=first.index, uuid=parent, model=first.model, pci_bus_id=first.pci_bus_id)
                physical.append(gpu)
                out.gauge("gpu.up", 1, emit.gpu_tags(node.node, gpu))
        lost = self.lost.observe(node.node, physical, node.lost, now, missing_reason)
        for gone in lost:
            emit.emit_lost(out, node.node, gone)
            what = f"GPU {gone.index or '?'}" + (f" ({gone.uuid})" if gone.uuid else "")
            verdict.critical.append(f"{node.node}: {what} lost: {gone.reason}")
        lost_count = len(lost)
        expected = self.config.expected_gpus
        if expected is not None and expected - len(physical) > lost_count:
            lost_count = expected - len(physical)
            verdict.critical.append(f"{node.node}: {len(physical)} of {expected} expected GPUs present")
        statuses = []
        for gpu in physical:
            status = self.idle.observe(gpu.uuid, now, idle_signal(gpu, instances.get(gpu.uuid, ())),
                                       self.pricing.price(gpu.model))
            if status is not None:
                emit.emit_idle(out, emit.gpu_tags(node.node, gpu), status)
                statuses.append(status)
            self._dcgm_xid(out, node.node, gpu, verdict)
        idle = summarize(statuses, self.priced) if statuses else None
        emit.emit_node(out, node.node, len(physical), lost_count, idle)
        verdict.gpus += len(physical)
        verdict.nodes += 1
        return statuses

    def _dcgm_xid(self, out: emit.Submit, node: str, gpu: GpuReading, verdict: Verdict) -> None:
        tags = emit.gpu_tags(node, gpu)
        new: dict[int, int] = {}
        if gpu.xid_window_counts is not None:
            new = self.window_xid.observe(gpu.uuid, gpu.xid_window_counts)
        elif gpu.last_xid is not None:
            code = self.last_xid.observe(gpu.uuid, gpu.last_xid)
            if code is not None:
                new = {code: 1}
        for code, occurrences in new.items():
            emit.emit_xid(out, node, tags, code, occurrences)
            verdict.warnings.append(_xid_text(node, gpu.index, code, occurrences))

    def _nvml_xids(self, out: emit.Submit, node: NodeReading,
                   xids: Mapping[tuple[str, str, int], int], verdict: Verdict) -> None:
        by_uuid = {g.uuid: g for g in node.gpus}
        for (index, uuid, code), occurrences in sorted(xids.items()):
            gpu = by_uuid.get(uuid)
            tags = emit.gpu_tags(node.node, gpu) if gpu else {"gpu": index, "uuid": uuid}
            emit.emit_xid(out, node.node, tags, code, occurrences)
            verdict.warnings.append(_xid_text(node.node, index, code, occurrences))


def _xid_text(node: str, index: str, code: int, occurrences: int) -> str:
    times = f" ({occurrences}x)" if occurrences > 1 else ""
    return f"{node}: XID {code} on GPU {index or '?'}{times}: {xid_meaning(code)[1]}"
