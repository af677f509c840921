"""The rules component: pipeline sink, timer, persistence, resume, store fallback, sinks."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import create_engine

from agent.rules.state import AlertStateStore
from agent.pipeline import Pipeline
from agent.rules.config import RulesEngineConfig
from agent.rules.engine import RulesEngine
from agent.samples import CheckResult, Sample, Status, make_tags

from .helpers import COUNT, GAUGE, STATUS, rule
from .series_store import SqliteSeries

TAGS = make_tags({"check": "ranker", "model": "ranker"})


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class Recorder:
    name = "recorder"

    def __init__(self) -> None:
        self.batches: list[list] = []

    def alerts_changed(self, events, now):
        self.batches.append([(e.alert.rule, e.previous.value, e.state.value, now) for e in events])

    @property
    def events(self):
        return [e for batch in self.batches for e in batch]


def result(metric: str, value: float, ts: float, tags=TAGS) -> CheckResult:
    return CheckResult("ranker", "model_endpoint", Status.OK, samples=[Sample(metric, value, tags, ts)])


DOWN = rule(alert="Down", metric=STATUS, op=">=", threshold=2, summary="{model} down ({value:.0f})",
            **{"for": "30s"})


async def _engine(db, clock, sink, rules=(DOWN,), **kw) -> RulesEngine:
    engine = RulesEngine(list(rules), kw.pop("settings", RulesEngineConfig(evaluation_interval=3600)),
                         sinks=[sink], state=AlertStateStore(db), clock=clock, **kw)
    await engine.start()
    return engine


async def test_fires_after_for_and_persists_every_transition(sqlite_engine):
    clock, sink = Clock(), Recorder()
    engine = await _engine(sqlite_engine, clock, sink)
    for t in (1000, 1015, 1030):
        clock.t = t
        await engine.consume(result(STATUS, 2.0, t))
    await engine.stop()
    assert sink.events == [("Down", "pending", "firing", 1030)]   # pending is recorded, not notified
    status = engine.status()
    assert [(a["alert"], a["summary"]) for a in status["firing"]] == [("Down", "ranker down (2)")]
    history = AlertStateStore(sqlite_engine).history("Down")
    assert [(h["from_state"], h["to_state"], h["at"]) for h in history] == [
        ("inactive", "pending", 1000.0), ("pending", "firing", 1030.0)]


async def test_sinks_hear_only_of_saved_changes_and_a_burst_is_saved_at_once(sqlite_engine):
    class CountingStore(AlertStateStore):
        saves: list[int] = []

        def save(self, rows, transitions):
            self.saves.append(len(rows))
            super().save(rows, transitions)

    class ReadsTheStore(Recorder):
        def alerts_changed(self, events, now):
            super().alerts_changed(events, now)
            stored = {(r["labels"]["check"], r["state"]) for r in AlertStateStore(sqlite_engine).list_alerts()}
            assert {(e.alert.labels["check"], e.state.value) for e in events} <= stored

    clock, sink = Clock(1000), ReadsTheStore()
    store = CountingStore(sqlite_engine)
    engine = RulesEngine([DOWN], RulesEngineConfig(evaluation_interval=3600), sinks=[sink],
                         state=store, clock=clock)
    await engine.start()
    tags = [make_tags({"check": f"c{i}"}) for i in range(10)]
    for t in tags:  # ten alerts turn pending, back to back as the pipeline hands results over
        await engine.consume(result(STATUS, 2.0, 1000, tags=t))
    await engine.saved()
    assert store.saves == [10] and sink.events == []  # one transaction; pending is not told
    clock.t = 1030
    for t in tags:
        await engine.consume(result(STATUS, 2.0, 1030, tags=t))
    await engine.stop()
    assert len(sink.events) == 10  # each told only once its firing row was in the store
    assert engine.status()["unsaved"] == 0


async def test_a_restart_resumes_without_refiring_or_forgetting(sqlite_engine):
    clock, sink = Clock(), Recorder()
    engine = await _engine(sqlite_engine, clock, sink)
    for t in (1000, 1030):
        clock.t = t
        await engine.consume(result(STATUS, 2.0, t))
    await engine.stop()
    assert len(sink.events) == 1

    clock.t = 1100
    again, sink2 = Clock(1100), Recorder()
    resumed = await _engine(sqlite_engine, again, sink2)
    assert [a["alert"] for a in resumed.status()["firing"]] == ["Down"]   # before any sample
    again.t = 1110
    await resumed.consume(result(STATUS, 2.0, 1110))       # still down: no second notification
    again.t = 1120
    await resumed.consume(result(STATUS, 0.0, 1120))       # recovered: resolved, once
    await resumed.stop()
    # the resumed alert is told again at start (firing -> firing: a resume, not a change),
    # since a kill between saving and telling would otherwise lose it; routing de-duplicates
    assert sink2.events == [("Down", "firing", "firing", 1100), ("Down", "firing", "resolved", 1120)]
    [row] = AlertStateStore(sqlite_engine).list_alerts()
    assert row["state"] == "resolved" and row["fired_at"] == 1030.0 and row["resolved_at"] == 1120.0


async def test_a_pending_alert_keeps_its_for_clock_across_a_restart(sqlite_engine):
    clock, sink = Clock(1000), Recorder()
    engine = await _engine(sqlite_engine, clock, sink)
    await engine.consume(result(STATUS, 2.0, 1000))
    await engine.stop()
    clock2 = Clock(1020)
    resumed = await _engine(sqlite_engine, clock2, sink)
    clock2.t = 1030
    await resumed.consume(result(STATUS, 2.0, 1030))       # 30s since 1000: fires now, not at 1050
    await resumed.stop()
    assert sink.events == [("Down", "pending", "firing", 1030)]


async def test_the_timer_fires_absent_rules(sqlite_engine):
    clock, sink = Clock(1000), Recorder()
    silent = rule(alert="Silent", metric=COUNT, absent="1m")
    engine = await _engine(sqlite_engine, clock, sink, rules=[silent],
                           settings=RulesEngineConfig(evaluation_interval=0.05))
    await engine.consume(result(COUNT, 1.0, 1000))
    clock.t = 1061
    for _ in range(100):                                    # the engine's own timer task
        if sink.events:
            break
        await asyncio.sleep(0.05)
    await engine.stop()
    assert sink.events[0][:3] == ("Silent", "inactive", "firing")


async def test_long_windows_read_the_store(sqlite_engine):
    history = SqliteSeries()
    history.add([Sample(GAUGE, 9.0, TAGS, t) for t in range(0, 7200, 60)])
    clock, sink = Clock(7200), Recorder()
    slow = rule(alert="SlowAllDay", metric=GAUGE, aggregate="avg", window="2h", op=">", threshold=5)
    engine = await _engine(sqlite_engine, clock, sink, rules=[slow], source=history,
                           settings=RulesEngineConfig(evaluation_interval=3600, memory_window="1h"))
    await engine.tick()
    await engine.stop()
    assert history.reads >= 1
    assert sink.events == [("SlowAllDay", "inactive", "firing", 7200)]


async def test_windows_are_primed_from_the_store_on_start(sqlite_engine):
    history = SqliteSeries()
    history.add([Sample(GAUGE, 9.0, TAGS, t) for t in range(700, 1000, 10)])
    clock, sink = Clock(1000), Recorder()
    r = rule(alert="HighAvg", metric=GAUGE, aggregate="avg", window="5m", op=">", threshold=5)
    engine = await _engine(sqlite_engine, clock, sink, rules=[r], source=history)
    await engine.consume(result(GAUGE, 1.0, 1000))   # alone this would be avg 1; with history ~8.8
    await engine.stop()
    assert sink.events == [("HighAvg", "inactive", "firing", 1000)]


async def test_a_database_outage_does_not_stop_alerting_and_state_is_written_later(sqlite_engine):
    clock, sink = Clock(1000), Recorder()
    broken = create_engine("postgresql+psycopg://u@127.0.0.1:1/none", connect_args={"connect_timeout": 2})
    engine = RulesEngine([DOWN.model_copy(update={"for_": 0.0})], sinks=[sink],
                         state=AlertStateStore(broken), clock=clock)
    await engine.start()
    await engine.consume(result(STATUS, 2.0, 1000))
    assert sink.events == [("Down", "inactive", "firing", 1000)]
    assert engine.status()["store_errors"] >= 1 and engine.status()["unsaved"] == 1
    engine.state = AlertStateStore(sqlite_engine)             # the database is back
    clock.t = 1010
    await engine.consume(result(STATUS, 0.0, 1010))
    await engine.stop()
    assert engine.status()["unsaved"] == 0
    history = AlertStateStore(sqlite_engine).history("Down")
    assert [h["to_state"] for h in history] == ["firing", "resolved"]


async def test_a_failing_sink_does_not_starve_the_others(sqlite_engine):
    class Broken:
        name = "broken"

        def alerts_changed(self, events, now):
            raise RuntimeError("boom")

    clock, sink = Clock(1000), Recorder()
    engine = RulesEngine([DOWN.model_copy(update={"for_": 0.0})], sinks=[Broken(), sink],
                         state=AlertStateStore(sqlite_engine), clock=clock)
    await engine.start()
    await engine.consume(result(STATUS, 2.0, 1000))
    await engine.stop()
    assert sink.events and engine.status()["sink_errors"] == 1


async def test_runs_as_a_pipeline_sink(sqlite_engine):
    clock, sink = Clock(1000), Recorder()
    engine = await _engine(sqlite_engine, clock, sink, rules=[DOWN.model_copy(update={"for_": 0.0})])
    pipeline = Pipeline([engine])
    pipeline.start()
    pipeline.submit(result(STATUS, 3.0, 1000))
    assert await pipeline.drain(5.0)
    await pipeline.stop()
    await engine.stop()
    assert sink.events == [("Down", "inactive", "firing", 1000)]
    assert pipeline.sink_errors == {}


@pytest.mark.parametrize("state", ["firing", "pending"])
async def test_alerts_of_a_removed_rule_are_closed_on_start(sqlite_engine, state):
    clock, sink = Clock(1000), Recorder()
    r = DOWN if state == "pending" else DOWN.model_copy(update={"for_": 0.0})
    engine = await _engine(sqlite_engine, clock, sink, rules=[r])
    await engine.consume(result(STATUS, 2.0, 1000))
    await engine.stop()
    other = rule(alert="Other", metric=STATUS, op=">", threshold=100)
    clock.t = 1100
    fresh = await _engine(sqlite_engine, clock, Recorder(), rules=[other])
    await fresh.stop()
    [row] = AlertStateStore(sqlite_engine).list_alerts()
    assert row["state"] == ("resolved" if state == "firing" else "inactive")


async def test_reload_keeps_alerts_and_windows_and_closes_removed_rules(sqlite_engine):
    from agent.config import parse_config

    clock, sink = Clock(1000), Recorder()
    high = rule(alert="HighAvg", metric=GAUGE, aggregate="avg", window="5m", op=">", threshold=5)
    down = DOWN.model_copy(update={"for_": 0.0})
    engine = await _engine(sqlite_engine, clock, sink, rules=[high, down])
    for t in range(700, 1000, 30):
        clock.t = t
        await engine.consume(result(GAUGE, 9.0, t))
    clock.t = 990
    await engine.consume(result(STATUS, 2.0, 990))
    assert sorted(e[0] for e in sink.events) == ["Down", "HighAvg"]
    new = parse_config("rules:\n"
                       "  - {alert: HighAvg, metric: mlwarden.check.duration, aggregate: avg, "
                       "window: 5m, op: '>', threshold: 5}\n")
    clock.t = 1000
    await engine.reconfigure(new.rules, new.rules_engine)
    await engine.consume(result(GAUGE, 1.0, 1000))   # the window still holds the 9s: avg > 5
    await engine.stop()
    assert sink.events[2:] == [("Down", "firing", "resolved", 1000)]
    assert [a["alert"] for a in engine.status()["firing"]] == ["HighAvg"]
