"""A small SQLite-backed history that implements the SeriesReader protocol (agent/history/protocol.py).

The real history store (agent.history.store, built in parallel) implements the same
``read_series``; this one is enough to prove the rules read through the protocol: it is a
real SQLite table queried with SQL, not a dict.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Mapping

from agent.samples import Sample, Tags


class SqliteSeries:
    def __init__(self, path: str = ":memory:") -> None:
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._lock = threading.Lock()
        self._db.execute("CREATE TABLE IF NOT EXISTS samples (metric TEXT, tags TEXT, ts REAL, value REAL)")
        self.reads = 0

    def add(self, samples: Iterable[Sample]) -> None:
        with self._lock, self._db:
            self._db.executemany(
                "INSERT INTO samples VALUES (?, ?, ?, ?)",
                [(s.metric, json.dumps(list(s.tags)), s.timestamp, s.value) for s in samples])

    def read_series(self, metric: str, since: float, until: float | None = None,
                    tags: Mapping[str, str] | None = None) -> dict[Tags, list[tuple[float, float]]]:
        with self._lock:
            self.reads += 1
            rows = self._db.execute(
                "SELECT tags, ts, value FROM samples WHERE metric = ? AND ts > ? AND ts <= ? "
                "ORDER BY ts", (metric, since, until if until is not None else 1e18)).fetchall()
        out: dict[Tags, list[tuple[float, float]]] = {}
        for tags_json, ts, value in rows:
            key = tuple((k, v) for k, v in json.loads(tags_json))
            if tags and any(dict(key).get(k) != v for k, v in tags.items()):
                continue
            out.setdefault(key, []).append((ts, value))
        return out

    def close(self) -> None:
        self._db.close()
