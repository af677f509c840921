"""What the check learns from runs it saw, kept in the agent's store across restarts.

Per DAG: the last finished run's state, the time of the last success (freshness) and the
durations of recent successful runs, from which the p95 used for *stuck* is computed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DagHistory", "p95", "KEEP_DURATIONS", "NEVER"]

KEEP_DURATIONS = 50
NEVER = 0.0  # last_success value meaning "looked up, this DAG has never succeeded"


def p95(values: list[float]) -> float | None:
    """Nearest-rank 95th percentile."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


@dataclass
class DagHistory:
    last_success: dict[str, float] = field(default_factory=dict)
    last_state: dict[str, str] = field(default_factory=dict)
    durations: dict[str, list[float]] = field(default_factory=dict)

    @classmethod
    def load(cls, value: Any) -> DagHistory:
        if not isinstance(value, dict):
            return cls()
        return cls(
            {k: float(v) for k, v in (value.get("last_success") or {}).items()
             if isinstance(v, (int, float))},
            {k: str(v) for k, v in (value.get("last_state") or {}).items()},
            {k: [float(x) for x in v if isinstance(x, (int, float))]
             for k, v in (value.get("durations") or {}).items() if isinstance(v, list)},
        )

    def dump(self) -> dict[str, Any]:
        return {"last_success": self.last_success, "last_state": self.last_state,
                "durations": self.durations}

    def record(self, dag_id: str, state: str, end: float, duration: float | None) -> None:
        self.last_state[dag_id] = state
        if state == "success":
            if end > self.last_success.get(dag_id, NEVER):
                self.last_success[dag_id] = end
            if duration is not None and duration >= 0:
                kept = self.durations.setdefault(dag_id, [])
                kept.append(duration)
                del kept[:-KEEP_DURATIONS]

    def p95(self, dag_id: str, min_history: int) -> float | None:
        values = self.durations.get(dag_id) or []
        return p95(values) if len(values) >= min_history else None
