"""The notification outbox shared on PostgreSQL: the same alert enqueued by three agents at
once (same dedup_key, each agent with its own connection pool) is one row, so one send."""

from __future__ import annotations

import threading

import pytest

from agent.history.db import make_engine
from agent.history.outbox import Outbox

pytestmark = pytest.mark.integration


def test_three_agents_enqueue_the_same_alert_once(pg_url, pg_engine):
    engines = [make_engine(pg_url) for _ in range(3)]
    try:
        outboxes = [Outbox(e) for e in engines]
        for box in outboxes:
            box.pending_count()  # open a connection each, so the threads start together
        ids: list[int | None] = []
        errors: list[BaseException] = []
        for round_no in range(5):
            barrier = threading.Barrier(len(outboxes))
            ids.clear()

            def enqueue(box: Outbox, agent: str) -> None:
                try:
                    barrier.wait(timeout=10)
                    ids.append(box.enqueue(
                        "notification", "slack:#ml-oncall",
                        {"alert": "EndpointDown", "model": "ranker", "from": agent},
                        now=1000.0 + round_no, dedup_key=f"EndpointDown:ranker:firing:{round_no}"))
                except BaseException as exc:  # noqa: BLE001 - reported below
                    errors.append(exc)

            threads = [threading.Thread(target=enqueue, args=(b, f"agent-{i}"))
                       for i, b in enumerate(outboxes)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=20)
            assert not errors, errors
            assert len(ids) == 3 and sum(i is not None for i in ids) == 1, ids
        shared = Outbox(pg_engine)
        due = shared.due("notification", now=2000.0, limit=100)
        assert len(due) == 5
        assert sorted(item.dedup_key for item in due) == [
            f"EndpointDown:ranker:firing:{n}" for n in range(5)]
    finally:
        for e in engines:
            e.dispose()
