"""The daemon freezes long-lived objects out of the collector's walks, and still frees cycles."""

from __future__ import annotations

import asyncio
import gc
import weakref

from agent.gcfreeze import FULL_AFTER, GcFreezer


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


async def test_long_lived_objects_are_frozen_and_cycles_among_them_freed_at_the_next_refreeze():
    before = gc.get_threshold()
    freezer = GcFreezer(first=0.01, every=3600)
    freezer.enabled = True  # tune_gc() does this in `mlwarden run` only
    a, b = Node(), Node()
    a.other, b.other = b, a
    gone = []
    weakref.finalize(a, gone.append, "a")
    try:
        await freezer.start()
        for _ in range(200):
            if freezer.freezes:
                break
            await asyncio.sleep(0.01)
        assert freezer.freezes == 1 and gc.get_freeze_count() > 0
        # /status says how many as of the freeze (counting walks them all: not per request);
        # frozen objects freed since by reference counting have left the count
        assert freezer.status()["frozen_objects"] >= gc.get_freeze_count() > 0
        # the first freeze collects the young generations only: no full pause on the loop
        assert freezer.last_freeze_seconds is not None
        assert freezer.last_full_collection_seconds is None
        # and full passes wait for more middle-generation collections than CPython's 10
        assert gc.get_threshold()[2] == FULL_AFTER and freezer.status()["thresholds"][2] == FULL_AFTER
        del a, b  # now a cycle of frozen garbage: a plain collection never walks it
        gc.collect()
        assert gone == []
        freezer.refreeze()  # what the component does every `every` seconds
        assert gone == ["a"]
        status = freezer.status()
        assert status["enabled"] and status["freezes"] == 2
        assert status["last_full_collection_seconds"] >= 0
        assert sum(status["collections"]) >= 3  # counted from the collector's callbacks
    finally:
        await freezer.stop()
        gc.unfreeze()  # leave the test process as it was
    assert gc.get_threshold() == before  # stop gives the collector its thresholds back


async def test_outside_the_daemon_it_does_nothing():
    freezer = GcFreezer(first=0.0)
    await freezer.start()
    await asyncio.sleep(0.05)
    await freezer.stop()
    assert freezer.status()["enabled"] is False and freezer.freezes == 0


def test_a_collection_whose_start_it_did_not_see_is_not_timed():
    freezer = GcFreezer()
    freezer._timing("stop", {"generation": 0})  # noqa: SLF001 - registered mid-collection
    assert freezer.collections == [0, 0, 0] and freezer.collection_seconds == [0.0, 0.0, 0.0]
    freezer._timing("start", {"generation": 1})  # noqa: SLF001
    freezer._timing("stop", {"generation": 1})  # noqa: SLF001
    assert freezer.collections == [0, 1, 0] and 0.0 <= freezer.collection_seconds[1] < 60
