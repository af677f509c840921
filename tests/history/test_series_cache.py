"""The writer's series id cache: ids by metric then tags, visible only once committed."""

from __future__ import annotations

from sqlalchemy import select

from agent.history.db import create_schema, make_engine
from agent.history.series import SeriesCache, series_key
from agent.history.tables import series
from agent.samples import make_tags

UP, LAT = "mlwarden.endpoint.up", "mlwarden.endpoint.latency"
A, B = make_tags({"check": "a"}), make_tags({"check": "b"})


def test_ids_by_metric_then_tags_and_only_once_committed(sqlite_url):
    engine = make_engine(sqlite_url)
    create_schema(engine)
    cache = SeriesCache(engine)
    with engine.begin() as conn:
        new = cache.resolve(conn, {(UP, A), (UP, B), (LAT, A)})
        rows = {key: sid for key, sid in conn.execute(select(series.c.key, series.c.id))}
    assert new == {(UP, A): rows[series_key(UP, A)], (UP, B): rows[series_key(UP, B)],
                   (LAT, A): rows[series_key(LAT, A)]}
    assert cache.ids == {} and len(cache) == 0  # not committed: not visible
    cache.commit(new)
    assert cache.ids == {UP: {A: new[(UP, A)], B: new[(UP, B)]}, LAT: {A: new[(LAT, A)]}}
    assert len(cache) == 3
    with engine.begin() as conn:
        assert cache.resolve(conn, {(UP, A), (LAT, A)}) == {}  # known: no SQL, nothing new
        again = cache.resolve(conn, {(UP, A), (LAT, B)})
    assert list(again) == [(LAT, B)]
    cache.commit(again)
    cache.commit(again)  # committing the same id twice counts it once
    assert len(cache) == 4 and cache.ids[LAT] == {A: new[(LAT, A)], B: again[(LAT, B)]}
    cache.clear()
    assert cache.ids == {} and len(cache) == 0
    with engine.begin() as conn:  # the rows stay: the same ids come back from the database
        assert cache.resolve(conn, {(UP, A)}) == {(UP, A): new[(UP, A)]}
    engine.dispose()
