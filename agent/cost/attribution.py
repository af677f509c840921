"""Who a GPU's time belongs to at one reading: models, idle, or other.

The rules (docs/cost.md):

- The unit of cost is the physical GPU. A MIG instance is the share of its GPU that its
  memory is of the GPU's memory (equal shares where memory is unknown); what no instance
  covers is unassigned capacity of the GPU.
- A GPU (or instance) held by workloads is split among them by the memory each holds
  (equally where memory is unknown). A workload's share goes to its model
  (:class:`~agent.cost.models.ModelMatcher`), else to "other" (a training pod, a notebook).
- A GPU that nothing is seen holding belongs to a model whose rule names only its node (a
  node dedicated to one model). Otherwise it (or the unassigned part of one) is "idle" when
  the gpu check judged it idle (utilisation under its threshold for its idle window), else
  "other": busy with something the agent cannot see, or the check could not tell.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from agent.cost.models import ModelMatcher
from agent.cost.usage import GpuUse, Workload

__all__ = ["Share", "attribute"]


@dataclass(frozen=True)
class Share:
    """A fraction of one physical GPU's time at one reading."""

    use: str                  # "model", "idle" or "other"
    share: float              # 0..1 of the physical GPU
    model: str = ""
    memory_used: float | None = None   # bytes the model holds on this GPU (or instance)
    memory_total: float | None = None  # the card's (or the instance's) memory


def attribute(uses: Mapping[str, GpuUse], matcher: ModelMatcher) -> list[tuple[GpuUse, list[Share]]]:
    """Each physical GPU that answered, with the shares of its time."""
    instances: dict[str, list[GpuUse]] = {}
    for use in uses.values():
        if use.parent:
            instances.setdefault(use.parent, []).append(use)
    out = []
    for gpu in uses.values():
        if gpu.parent or not gpu.up:
            continue
        parts = instances.get(gpu.uuid)
        out.append((gpu, _mig_shares(gpu, parts, matcher) if parts else _held(gpu, gpu, 1.0, matcher)))
    return out


def _mig_shares(gpu: GpuUse, parts: list[GpuUse], matcher: ModelMatcher) -> list[Share]:
    known = gpu.memory_total and all(p.memory_total for p in parts)
    shares: list[Share] = []
    for part in sorted(parts, key=lambda p: p.uuid):
        if known:
            size = (part.memory_total or 0.0) / (gpu.memory_total or 1.0)
        else:
            size = 1.0 / len(parts)
        shares.extend(_held(gpu, part, min(size, 1.0), matcher))
    rest = 1.0 - sum(s.share for s in shares)
    if rest > 1e-9:
        shares.append(Share("idle" if gpu.idle else "other", rest))
    return shares


def _held(gpu: GpuUse, part: GpuUse, size: float, matcher: ModelMatcher) -> list[Share]:
    holders = part.holders()
    if not holders:
        model = matcher.model_of_node(gpu.node)
        if model is not None:
            return [Share("model", size, model, part.memory_used, part.memory_total)]
        return [Share("idle" if gpu.idle else "other", size)]
    weights = _weights(holders)
    by_model: dict[str, list[float]] = {}
    other = 0.0
    for work, weight in zip(holders, weights):
        model = matcher.model_of(work, gpu.node)
        if model is None:
            other += weight
            continue
        acc = by_model.setdefault(model, [0.0, 0.0])
        acc[0] += weight
        acc[1] += work.memory if work.memory is not None else 0.0
    out = []
    for model, (weight, memory) in sorted(by_model.items()):
        held = memory if part.workloads else part.memory_used  # a pod label holds the whole GPU
        out.append(Share("model", size * weight, model, held, part.memory_total))
    if other > 1e-12:
        out.append(Share("other", size * other))
    return out


def _weights(holders: list[Workload]) -> list[float]:
    memory = [w.memory for w in holders]
    total = sum(m for m in memory if m is not None)
    if all(m is not None for m in memory) and total > 0:
        return [m / total for m in memory]  # type: ignore[operator]
    return [1.0 / len(holders)] * len(holders)
