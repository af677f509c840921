"""The price table: what a GPU-hour costs, by GPU model and node (first match wins)."""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence

from agent.cost.config import PriceEntry

__all__ = ["PriceTable", "money"]

_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥"}


class PriceTable:
    """Looks prices up; ``None`` means unknown, never zero.

    Example::

        table = PriceTable([PriceEntry(gpu_model="*H100*", price_per_hour=4.1)])
        table.price("NVIDIA H100 80GB HBM3", "gpu-a")   # 4.1
    """

    def __init__(self, entries: Sequence[PriceEntry]) -> None:
        self.entries = list(entries)
        self._compiled = [(e.gpu_model.lower(), e.node.lower(), e) for e in self.entries]
        self._cache: dict[tuple[str, str], PriceEntry | None] = {}

    def entry(self, gpu_model: str, node: str) -> PriceEntry | None:
        key = (gpu_model, node)
        if key not in self._cache:
            model, host = gpu_model.lower(), node.lower()
            self._cache[key] = next((e for pm, pn, e in self._compiled
                                     if fnmatch.fnmatchcase(model, pm) and fnmatch.fnmatchcase(host, pn)),
                                    None)
            if len(self._cache) > 10_000:
                self._cache.clear()
        return self._cache[key]

    def price(self, gpu_model: str, node: str) -> float | None:
        entry = self.entry(gpu_model, node)
        return entry.price_per_hour if entry is not None else None

    def cards(self) -> list[PriceEntry]:
        """Priced cards with a known memory size, cheapest first (right-sizing candidates)."""
        return sorted((e for e in self.entries if e.memory_gib is not None), key=lambda e: e.price_per_hour)


def money(value: float | None, currency: str, digits: int = 2) -> str:
    """``$1,234.56`` (or ``1,234.56 CHF``); ``unknown`` for None."""
    if value is None:
        return "unknown"
    symbol = _SYMBOLS.get(currency.upper())
    text = f"{abs(value):,.{digits}f}"
    sign = "-" if value < 0 else ""
    return f"{sign}{symbol}{text}" if symbol else f"{sign}{text} {currency}"
