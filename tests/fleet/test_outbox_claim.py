"""Claiming outbox rows on the real PostgreSQL: agents that share the store (each with its
own connection pool, one thread each here) never get the same row, and order per receiver,
retries and dead claimers behave as the delivery stage relies on."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from agent.history.db import make_engine
from agent.history.outbox import Outbox

pytestmark = pytest.mark.integration

AGENTS = 6


def _agents(pg_url: str) -> tuple[list, list[Outbox]]:
    engines = [make_engine(pg_url) for _ in range(AGENTS)]
    boxes = [Outbox(e, owner=f"agent-{i}") for i, e in enumerate(engines)]
    for box in boxes:
        box.pending_count()  # a connection each, so the threads start together
    return engines, boxes


def _run_all(boxes: list[Outbox], work) -> list[BaseException]:  # type: ignore[no-untyped-def]
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(boxes))

    def run(box: Outbox) -> None:
        try:
            barrier.wait(timeout=10)
            work(box)
        except BaseException as exc:  # noqa: BLE001 - reported by the caller
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(b,)) for b in boxes]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a claiming thread hung"
    return errors


def test_agents_claiming_the_same_row_at_once_get_it_once(pg_url, pg_engine):
    engines, boxes = _agents(pg_url)
    try:
        for round_no in range(20):
            item = Outbox(pg_engine).enqueue("notification", "slack", {"n": round_no},
                                             now=100.0, dedup_key=f"k{round_no}")
            assert item is not None
            won: list[str] = []

            def claim(box: Outbox, _id: int = item) -> None:
                if box.claim(_id, now=200.0):
                    won.append(box.owner)

            assert _run_all(boxes, claim) == []
            assert len(won) == 1, f"round {round_no}: claimed by {won}"
            Outbox(pg_engine).mark_sent(item, now=200.0)
    finally:
        for e in engines:
            e.dispose()


def test_agents_draining_one_queue_never_share_a_row(pg_url, pg_engine):
    shared = Outbox(pg_engine)
    # independent items (no order between them), as the Datadog exporter queues
    shared.enqueue_many("datadog_series", "https://api.datadoghq.com",
                        [{"n": n} for n in range(300)], now=100.0)
    engines, boxes = _agents(pg_url)
    claimed: dict[str, list[int]] = {b.owner: [] for b in boxes}
    try:
        def drain(box: Outbox) -> None:
            for _ in range(100):  # bounded: 300 rows, each pass claims at least one or ends
                items = box.due("datadog_series", now=200.0, limit=20)
                if not items:
                    return
                for item in items:
                    if box.claim(item.id, now=200.0, in_order=False):
                        claimed[box.owner].append(item.id)
                        box.mark_sent(item.id, now=200.0)

        assert _run_all(boxes, drain) == []
        every = [i for ids in claimed.values() for i in ids]
        twice = [i for i, n in Counter(every).items() if n > 1]
        assert twice == [], f"rows claimed by more than one agent: {twice[:10]}"
        assert len(every) == 300 and shared.pending_count() == 0
        assert sum(1 for ids in claimed.values() if ids) > 1, "one agent did all the work"
    finally:
        for e in engines:
            e.dispose()


def test_in_order_claims_wait_for_the_earlier_row_of_the_receiver(pg_url, pg_engine):
    a, b = Outbox(pg_engine, owner="a"), Outbox(pg_engine, owner="b")
    first = a.enqueue("notification", "slack", {"n": 1}, now=100.0, dedup_key="first")
    second = a.enqueue("notification", "slack", {"n": 2}, now=100.0, dedup_key="second")
    other = a.enqueue("notification", "pager", {"n": 3}, now=100.0, dedup_key="other")
    assert first is not None and second is not None and other is not None
    assert a.claim(first, now=110.0)
    assert not b.claim(first, now=110.0)  # a holds it
    assert not b.claim(second, now=110.0)  # the receiver's earlier row is being sent
    assert b.claim(other, now=110.0)  # another receiver is not held back
    a.retry_later(first, due_at=150.0, error="Slack HTTP 503")
    assert not b.claim(second, now=120.0)  # the earlier row waits for its retry: still first
    assert not b.claim(first, now=120.0)  # not due yet
    assert b.claim(first, now=150.0)  # released by the retry, due again: anyone may send it
    b.mark_sent(first, now=151.0)
    assert a.claim(second, now=151.0)


def test_a_dead_claimers_row_is_claimed_again_after_the_timeout(pg_url, pg_engine):
    dead, alive = Outbox(pg_engine, owner="dead"), Outbox(pg_engine, owner="alive")
    item = dead.enqueue("notification", "slack", {"n": 1}, now=100.0, dedup_key="x")
    assert item is not None
    assert dead.claim(item, now=100.0, timeout=60.0)
    # the claimer dies without settling the row
    assert alive.due("notification", now=159.0) == []
    assert not alive.claim(item, now=159.0)
    assert [i.id for i in alive.due("notification", now=161.0)] == [item]
    assert alive.claim(item, now=161.0, timeout=60.0)
    assert not dead.claim(item, now=162.0)  # back from the dead, it does not take it again
    assert dead.pending_count() == 1  # being sent still counts as queued
    alive.mark_sent(item, now=162.0)
    assert dead.pending_count() == 0
