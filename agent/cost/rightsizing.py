"""Right-sizing: which rule speaks for a model, and what following it would save.

The rules, tried in this order (thresholds in ``cost.rightsizing``; docs/cost.md):

``not-enough-data``  fewer than ``min_coverage`` of GPU readings in the period.
``cpu-tier``         p95 utilisation <= ``cpu_utilization_p95`` and p95 memory <=
                     ``cpu_memory_gib``: "a smaller GPU or the CPU tier would do". The saving
                     quoted is the larger of the CPU tier's (``cost.cpu_tier``, one replica
                     per GPU) and the cheapest smaller card's.
``smaller-gpu``      p95 utilisation <= ``smaller_gpu_utilization_p95`` and a priced card
                     (a ``cost.prices`` entry with ``memory_gib``) cheaper than today's holds
                     the p95 memory plus ``memory_headroom``.
``near-capacity``    p95 utilisation >= ``busy_utilization_p95``: add a GPU before latency
                     suffers.
``right-sized``      none of the above.

Savings per day are ``(today's price - the new price per hour) x GPUs x 24``, where today's
price is what the model's GPUs actually cost per GPU-hour in the period; unknown when either
price is unknown.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.cost.config import CostConfig, PriceEntry
from agent.cost.prices import PriceTable, money

__all__ = ["ModelFigures", "Recommendation", "recommend"]

GIB = 2.0**30


@dataclass(frozen=True)
class ModelFigures:
    """What the rules look at, for one model over the period."""

    model: str
    coverage: float              # seconds of the period with GPU readings of the model
    gpus: float                  # average GPUs serving it over the covered time
    utilization_p95: float | None
    memory_p95: float | None     # bytes
    memory_total: float | None   # bytes: the card (or MIG instance)
    price_per_gpu_hour: float | None  # what its GPUs cost in the period


@dataclass(frozen=True)
class Recommendation:
    rule: str
    text: str
    saving_per_day: float | None = None
    option: str = ""   # "cpu tier" or the card proposed


def _gib(value: float | None) -> str:
    return "?" if value is None else f"{value / GIB:.1f}"


def _span(seconds: float) -> str:
    days = round(seconds / 86400.0, 1)
    if days >= 1:
        return f"{days:g} day" + ("" if days == 1 else "s")
    return f"{seconds / 3600.0:.0f} h"


def _pct(value: float | None) -> str:
    return "?" if value is None else f"{value * 100:.0f} %"


def recommend(f: ModelFigures, config: CostConfig) -> Recommendation:
    r = config.rightsizing
    currency = config.currency
    if f.coverage < r.min_coverage or f.utilization_p95 is None:
        return Recommendation("not-enough-data",
                              f"{_span(f.coverage)} of GPU readings (the rules need "
                              f"{_span(r.min_coverage)}): no recommendation yet")
    util = f.utilization_p95
    memory = f"memory {_gib(f.memory_p95)} of {_gib(f.memory_total)} GiB"
    facts = f"p95 utilisation {_pct(util)}, {memory} for {_span(f.coverage)}"
    card = _smaller_card(f, config)
    card_saving = _saving(f, card.price_per_hour if card else None)
    if util <= r.cpu_utilization_p95 and f.memory_p95 is not None \
            and f.memory_p95 <= r.cpu_memory_gib * GIB:
        cpu = config.cpu_tier.price_per_hour if config.cpu_tier else None
        options = [(s, name) for s, name in ((_saving(f, cpu), f"the CPU tier at {money(cpu, currency)}/h"),
                                             (card_saving, card.label if card else ""))
                   if s is not None]
        if options:
            saving, name = max(options)
            return Recommendation("cpu-tier", f"{facts}: a smaller GPU or the CPU tier would do; "
                                  f"saving ~{money(saving, currency)}/day ({name})", saving, name)
        return Recommendation("cpu-tier", f"{facts}: a smaller GPU or the CPU tier would do; "
                              "saving unknown (price the CPU tier or a smaller card)")
    if util <= r.smaller_gpu_utilization_p95 and card is not None:
        saving = card_saving
        what = f"saving ~{money(saving, currency)}/day" if saving is not None else "saving unknown"
        return Recommendation("smaller-gpu", f"{facts}: a smaller GPU would do ({card.label}, "
                              f"{card.memory_gib:g} GiB at {money(card.price_per_hour, currency)}/h); "
                              f"{what}", saving, card.label)
    if util >= r.busy_utilization_p95:
        return Recommendation("near-capacity", f"p95 utilisation {_pct(util)} for {_span(f.coverage)}: "
                              "near capacity; add a GPU before latency suffers")
    return Recommendation("right-sized", f"{facts}: right-sized")


def _smaller_card(f: ModelFigures, config: CostConfig) -> PriceEntry | None:
    """The cheapest priced card cheaper than today's that holds p95 memory plus headroom."""
    if f.memory_p95 is None or f.price_per_gpu_hour is None:
        return None
    need = f.memory_p95 * (1.0 + config.rightsizing.memory_headroom)
    for entry in PriceTable(config.prices).cards():
        if entry.price_per_hour < f.price_per_gpu_hour and (entry.memory_gib or 0.0) * GIB >= need:
            if f.memory_total is None or (entry.memory_gib or 0.0) * GIB < f.memory_total:
                return entry
    return None


def _saving(f: ModelFigures, new_price: float | None) -> float | None:
    if new_price is None or f.price_per_gpu_hour is None:
        return None
    return (f.price_per_gpu_hour - new_price) * f.gpus * 24.0
