"""GPUs that were there and no longer answer: fell off the bus, GpuIsLost, a count drop.

Other tools just go silent when a GPU disappears, because its series stop. This module
remembers every GPU a node has shown (UUID, index, model, when last seen) in the check's
durable state, so a GPU missing after a restart is still reported, and names each lost GPU
so it gets its own ``gpu.up 0`` series and the node's ``gpu.lost`` count rises.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from checks.gpu.readings import GpuReading

__all__ = ["LostGpu", "LostTracker"]


@dataclass(frozen=True)
class LostGpu:
    uuid: str
    index: str
    model: str
    reason: str


class LostTracker:
    """Known GPUs per node, and which of them are missing now."""

    def __init__(self, forget_after: float, state: Mapping[str, Any] | None = None) -> None:
        self.forget_after = forget_after
        self.known: dict[str, dict[str, dict[str, Any]]] = {}
        for node, gpus in (state or {}).items():
            if isinstance(gpus, dict):
                self.known[str(node)] = {str(u): dict(v) for u, v in gpus.items() if isinstance(v, dict)}

    def observe(self, node: str, gpus: Iterable[GpuReading], lost_indexes: Mapping[str, str],
                now: float, missing_reason: str) -> list[LostGpu]:
        """Record the physical GPUs read now; return those known but missing or lost."""
        known = self.known.setdefault(node, {})
        seen = set()
        for gpu in gpus:
            if gpu.is_mig:
                continue
            seen.add(gpu.uuid)
            known[gpu.uuid] = {"index": gpu.index, "model": gpu.model, "seen": now}
        lost: list[LostGpu] = []
        matched: set[str] = set()
        for uuid, info in list(known.items()):
            if uuid in seen:
                continue
            if now - float(info.get("seen", now)) > self.forget_after:
                del known[uuid]
                continue
            index = str(info.get("index", ""))
            reason = lost_indexes.get(index, missing_reason)
            if index in lost_indexes:
                matched.add(index)
            lost.append(LostGpu(uuid, index, str(info.get("model", "")), reason))
        for index, reason in lost_indexes.items():
            if index not in matched:  # lost before this agent ever read its UUID
                lost.append(LostGpu("", index, "", reason))
        return sorted(lost, key=lambda g: (g.index, g.uuid))

    def state(self) -> dict[str, dict[str, dict[str, Any]]]:
        return {node: {u: dict(v) for u, v in gpus.items()} for node, gpus in self.known.items()}
