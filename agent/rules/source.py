"""Where windows longer than memory come from: the history store, behind a protocol.

The rules package never imports the store; anything with ``read_series`` will do
(``agent.history.store.HistoryStore`` in the daemon, a SQLite-backed table in tests).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from agent.samples import Tags

__all__ = ["SeriesSource"]


class SeriesSource(Protocol):
    """Reads recorded samples of one metric; blocking, so callers run it off the loop."""

    def read_series(
        self,
        metric: str,
        since: float,
        until: float | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> dict[Tags, list[tuple[float, float]]]:
        """Samples with ``since < t <= until`` per series, oldest first.

        ``tags`` holds exact tag values every returned series carries (a pre-filter; the
        rules apply their full matchers afterwards).
        """
        ...
