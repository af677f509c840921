"""How the rest of the agent reads recorded samples: a protocol the history store implements.

The rules (windows longer than memory), Slack charts and sparklines, and dashboard previews
read history through it and never import the store (``HistoryStore`` in the daemon, a
SQLite-backed table in tests).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from agent.samples import Tags

__all__ = ["SeriesReader"]


class SeriesReader(Protocol):
    """Reads recorded samples of one metric; blocking, so callers run it off the loop."""

    def read_series(
        self,
        metric: str,
        since: float,
        until: float | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> Mapping[Tags, list[tuple[float, float]]]:
        """Samples with ``since < t <= until`` per series, oldest first.

        ``tags`` holds exact tag values every returned series carries (a pre-filter; callers
        apply their full matchers afterwards).
        """
        ...
