"""The finished-runs cursor: which runs were already reported, kept in the agent's store.

A watermark on ``end_date`` plus the keys of runs reported near it. Each poll re-reads
from ``watermark - overlap`` (rows committed late, clocks that disagree) and skips keys
already reported; keys older than the overlap are forgotten, so the state stays small. A key
holds the end date too: a run cleared and run again ends anew and is reported again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["RunCursor", "run_key"]


def run_key(dag_id: str, run_id: str, end: float) -> str:
    return f"{dag_id}\x1f{run_id}\x1f{end:.6f}"


@dataclass
class RunCursor:
    watermark: float
    recent: dict[str, float] = field(default_factory=dict)

    @classmethod
    def load(cls, value: Any, default_watermark: float) -> RunCursor:
        if not isinstance(value, dict) or not isinstance(value.get("watermark"), (int, float)):
            return cls(default_watermark)
        recent = {str(k): float(v) for k, v in (value.get("recent") or {}).items()
                  if isinstance(v, (int, float))}
        return cls(float(value["watermark"]), recent)

    def dump(self) -> dict[str, Any]:
        return {"watermark": self.watermark, "recent": dict(self.recent)}

    def since(self, overlap: float) -> float:
        return self.watermark - overlap

    def seen(self, key: str) -> bool:
        return key in self.recent

    def advance(self, key: str, end: float, overlap: float) -> None:
        self.recent[key] = end
        if end > self.watermark:
            self.watermark = end
        floor = self.watermark - overlap
        if len(self.recent) > 64:  # prune in batches, not on every run
            self.recent = {k: v for k, v in self.recent.items() if v >= floor}
