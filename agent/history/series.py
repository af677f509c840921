"""Series identity: a stable key per (metric, tags) and the writer's in-memory id cache.

A series is looked up by a hash of its metric and canonical tags, so the hot path never
compares JSON text in SQL, and after the first sighting never touches SQL at all: the
writer reads :attr:`SeriesCache.ids` with the sample's own metric and tags.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable

from sqlalchemy import Connection, Engine, select

from agent.history.sql import insert_ignore
from agent.history.tables import series
from agent.samples import SeriesKey, Tags

__all__ = ["SeriesCache", "series_key", "tags_json", "tags_from_json"]

_LOOKUP_CHUNK = 500


def tags_json(tags: Tags) -> str:
    """Canonical JSON of a tag tuple (sorted keys): the stored form and the hash input."""
    return json.dumps(dict(tags), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def tags_from_json(text: str) -> Tags:
    return tuple(sorted((str(k), str(v)) for k, v in json.loads(text).items()))


def series_key(metric: str, tags: Tags) -> str:
    """Stable across processes and databases: sha1 of the metric and canonical tags."""
    return hashlib.sha1(f"{metric}\x00{tags_json(tags)}".encode()).hexdigest()


class SeriesCache:
    """Maps series to their row ids; used by the single writer thread only.

    :attr:`ids` is by metric, then tags (``ids[metric][tags]``): a series costs its entry
    and no ``(metric, tags)`` tuple of its own (56 bytes each, 11 a model_endpoint check).
    New ids become visible in :attr:`ids` only after :meth:`commit`, so a transaction that
    rolls back never leaves an id in the cache that the database does not have.
    """

    def __init__(self, engine: Engine) -> None:
        self._insert = insert_ignore(engine, series)
        self.ids: dict[str, dict[Tags, int]] = {}  # read directly on the writer's hot path
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def resolve(self, conn: Connection, keys: Iterable[SeriesKey]) -> dict[SeriesKey, int]:
        """The ids of the keys that are not cached yet — creating missing series."""
        known = self.ids
        missing = {key for key in keys if key[1] not in known.get(key[0], ())}
        if not missing:
            return {}
        by_hash = {series_key(m, t): (m, t) for m, t in missing}
        found = self._lookup(conn, list(by_hash))
        absent = [h for h in by_hash if h not in found]
        if absent:
            now = time.time()
            conn.execute(self._insert, [
                {"key": h, "metric": by_hash[h][0], "tags": tags_json(by_hash[h][1]), "created_at": now}
                for h in absent])
            found.update(self._lookup(conn, absent))  # another agent may have won the race
        return {by_hash[h]: i for h, i in found.items()}

    def commit(self, new: dict[SeriesKey, int]) -> None:
        ids = self.ids
        for (metric, tags), sid in new.items():
            of_metric = ids.get(metric)
            if of_metric is None:
                of_metric = ids[metric] = {}
            if tags not in of_metric:
                self._count += 1
            of_metric[tags] = sid

    def clear(self) -> None:
        self.ids.clear()
        self._count = 0

    @staticmethod
    def _lookup(conn: Connection, hashes: list[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for i in range(0, len(hashes), _LOOKUP_CHUNK):
            part = hashes[i:i + _LOOKUP_CHUNK]
            for key, sid in conn.execute(select(series.c.key, series.c.id).where(series.c.key.in_(part))):
                found[key] = sid
        return found
