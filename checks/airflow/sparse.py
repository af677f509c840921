"""Per-DAG gauges that are 0 for almost every DAG, sent only when they say something.

With 2,000 DAGs, sending "0 running runs, 0 stuck, 0 queued, not late" for every DAG on
every poll is most of a poll's samples and CPU. A series is sent when it is non-zero, once
more as 0 when it returns to 0 (so an alert on it resolves), and in full on the first poll
of a check instance (so a restarted agent resolves what it can no longer remember).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["SparseGauges"]


class SparseGauges:
    def __init__(self) -> None:
        self._nonzero: set[tuple[str, tuple[tuple[str, str], ...]]] | None = None
        self._seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()

    def begin(self) -> None:
        self._seen = set()

    def gauge(self, check: Any, metric: str, value: float, tags: Mapping[str, str],
              facts: Mapping[str, str] | None = None) -> None:
        """``facts`` ride along (which runs are stuck) but do not make another series."""
        key = (metric, tuple(sorted(tags.items())))
        if value or self._nonzero is None or key in self._nonzero:
            check.gauge(metric, value, tags={**tags, **facts} if facts else tags)
        if value:
            self._seen.add(key)

    def end(self, complete: bool = True) -> None:
        """Close a poll; after an incomplete one, non-zero series stay remembered."""
        if complete or self._nonzero is None:
            self._nonzero = self._seen if complete else None
        else:
            self._nonzero |= self._seen
