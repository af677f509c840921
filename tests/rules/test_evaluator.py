"""Rules over series written as tables: comparisons, for, hysteresis, keep_firing_for,
absent, counters, NaN and missing samples, groups, staleness and flapping."""

from __future__ import annotations

import math

import pytest

from agent.rules.config import RulesEngineConfig
from agent.rules.evaluator import RuleEvaluator
from agent.samples import Sample, make_tags

from .helpers import COUNT, GAUGE, MONO, STATUS, drive, rule, states


@pytest.mark.parametrize(
    ("op", "value", "fires"),
    [
        ("<", 0.5, True), ("<", 1.0, False),
        ("<=", 1.0, True), ("<=", 1.5, False),
        (">", 1.5, True), (">", 1.0, False),
        (">=", 1.0, True), (">=", 0.5, False),
        ("==", 1.0, True), ("==", 1.5, False),
        ("!=", 1.5, True), ("!=", 1.0, False),
    ],
)
def test_comparisons(op, value, fires):
    got = drive(rule(op=op, threshold=1.0), [(10, value)])
    assert states(got) == (["inactive->firing"] if fires else [])


@pytest.mark.parametrize(
    ("aggregate", "values", "threshold", "fires"),
    [
        ("last", [9, 9, 1], 5, False),
        ("avg", [9, 9, 1], 5, True),          # avg 6.33
        ("min", [9, 9, 6], 5, True),
        ("max", [1, 1, 6], 5, True),
        ("sum", [2, 2, 2], 5, True),
        ("count", [0, 0, 0], 2, True),
        ("p50", [1, 9, 9], 5, True),
        ("p99", [1, 1, 1], 5, False),
    ],
)
def test_each_aggregation_in_a_rule(aggregate, values, threshold, fires):
    r = rule(aggregate=aggregate, window="1m", op=">", threshold=threshold)
    got = drive(r, [(10 * (i + 1), v) for i, v in enumerate(values)])
    final = got[-1][2] if got else "inactive"          # judged after the last sample
    assert (final == "firing") is fires


def test_window_excludes_samples_older_than_it():
    r = rule(aggregate="max", window="30s", op=">", threshold=5)
    # 9 at t=10 is out of the 30s window at t=45; the alert resolves then
    got = drive(r, [(10, 9), (20, 1), (45, 1)])
    assert got == [(10, "inactive", "firing"), (45, "firing", "resolved")]


def test_for_holds_pending_until_the_condition_lasted():
    r = rule(op=">", threshold=5, **{"for": "30s"})
    got = drive(r, [(0, 9), (10, 9), (20, 9), (30, 9), (40, 9)])
    assert got == [(0, "inactive", "pending"), (30, "pending", "firing")]


def test_for_resets_when_the_condition_breaks():
    r = rule(op=">", threshold=5, **{"for": "30s"})
    got = drive(r, [(0, 9), (20, 1), (30, 9), (50, 9), (60, 9)])
    assert got == [(0, "inactive", "pending"), (20, "pending", "inactive"),
                   (30, "inactive", "pending"), (60, "pending", "firing")]


def test_pending_fires_on_the_timer_without_new_samples():
    r = rule(op=">", threshold=5, **{"for": "30s"})
    got = drive(r, [(0, 9), (15, None), (30, None)])
    assert got == [(0, "inactive", "pending"), (30, "pending", "firing")]


def test_hysteresis_resolves_only_past_the_recover_level():
    r = rule(op=">", threshold=0.9, recover=0.8)
    got = drive(r, [(0, 0.95), (10, 0.85), (20, 0.88), (30, 0.79), (40, 0.85), (50, 0.91)])
    assert got == [(0, "inactive", "firing"), (30, "firing", "resolved"),
                   (50, "resolved", "firing")]


def test_hysteresis_for_a_low_threshold():
    r = rule(op="<", threshold=1, recover=3)
    got = drive(r, [(0, 0), (10, 2), (20, 3), (30, 2)])
    assert got == [(0, "inactive", "firing"), (20, "firing", "resolved")]


def test_keep_firing_for_bridges_short_clears():
    r = rule(op=">", threshold=5, keep_firing_for="30s")
    got = drive(r, [(0, 9), (10, 1), (20, 9), (30, 1), (50, 1), (60, 1)])
    assert got == [(0, "inactive", "firing"), (60, "firing", "resolved")]


def test_keep_firing_for_expires_on_the_timer():
    r = rule(op=">", threshold=5, keep_firing_for="30s")
    got = drive(r, [(0, 9), (10, 1), (25, None), (40, None)])
    assert got == [(0, "inactive", "firing"), (40, "firing", "resolved")]


def test_nan_samples_are_missing_not_values():
    r = rule(op="<", threshold=1)
    got = drive(r, [(0, 0), (10, math.nan), (20, math.nan)])
    assert got == [(0, "inactive", "firing")]          # NaN neither resolves nor re-fires
    got = drive(r, [(0, math.nan), (10, math.nan)])
    assert got == []                                   # NaN < 1 never fires


def test_a_window_without_samples_leaves_the_alert_as_it_is():
    r = rule(aggregate="avg", window="30s", op=">", threshold=5)
    got = drive(r, [(0, 9), (100, None), (200, None)])
    assert got == [(0, "inactive", "firing")]


def test_a_silent_series_goes_stale_and_its_alert_resolves():
    settings = RulesEngineConfig(stale_after="5m")
    r = rule(op=">", threshold=5)
    got = drive(r, [(0, 9), (200, None), (301, None)], settings=settings)
    assert got == [(0, "inactive", "firing"), (301, "firing", "resolved")]


def test_increase_over_a_counter_reset_fires_on_the_real_increase():
    # a running total restarts at t=30: the real increase in the window is 5 + 2 + 4 = 11
    r = rule(metric=MONO, aggregate="increase", window="1m", op=">", threshold=10)
    got = drive(r, [(0, 100), (10, 105), (20, 105), (30, 2), (40, 6)])
    assert got == [(40, "inactive", "firing")]


def test_rate_over_a_counter_reset_does_not_go_negative():
    r = rule(metric=MONO, aggregate="rate", window="1m", op="<", threshold=0)
    assert drive(r, [(0, 100), (10, 200), (20, 3), (30, 50)]) == []


def test_rate_of_a_delta_count_is_per_second_of_the_window():
    r = rule(metric=COUNT, aggregate="rate", window="10s", op=">=", threshold=0.5)
    got = drive(r, [(0, 1), (5, 2), (10, 3), (20, 1)])
    # at t=10 the window (0, 10] holds 2 + 3 = 5 runs -> 0.5/s; at t=20 it holds 1 -> 0.1/s
    assert got == [(10, "inactive", "firing"), (20, "firing", "resolved")]


def test_absent_fires_when_a_series_is_silent_and_resolves_when_it_returns():
    r = rule(metric=COUNT, absent="1m")
    got = drive(r, [(0, 1), (30, None), (60, None), (75, None), (80, 1)])
    assert got == [(60, "inactive", "firing"), (80, "firing", "resolved")]


def test_absent_fires_for_a_selector_that_never_matched():
    r = rule(metric=COUNT, absent="1m", where={"check": "nightly"})
    ev = RuleEvaluator([r], started=0.0)
    got = drive(r, [(30, None), (60, None)], evaluator=ev)
    assert got == [(60, "inactive", "firing")]
    assert ev.alerts()[0].labels == {"check": "nightly", "severity": "warning"}
    # the series shows up: the alert resolves
    got = drive(r, [(70, 1)], evaluator=ev, tags=make_tags({"check": "nightly"}))
    assert got == [(70, "firing", "resolved")]


def test_absent_intervals_uses_the_series_own_interval():
    r = rule(metric=COUNT, absent_intervals=3, group_by=["check"])
    points = [(t, 1.0) for t in range(0, 100, 10)]     # every 10s, last at t=90
    got = drive(r, points + [(110, None), (119, None), (120, None), (125, 1)])
    assert got == [(120, "inactive", "firing"), (125, "firing", "resolved")]


def test_unknown_and_critical_are_different_rules():
    unknown = rule(alert="CheckCannotRun", metric=STATUS, op="==", threshold=3)
    critical = rule(alert="CheckTargetCritical", metric=STATUS, op="==", threshold=2)
    ev = RuleEvaluator([unknown, critical], started=0.0)
    tags = make_tags({"check": "ranker"})
    ev.evaluate(ev.ingest([Sample(STATUS, 3.0, tags, 10)]), 10)
    ev.evaluate(ev.ingest([Sample(STATUS, 2.0, tags, 20)]), 20)
    changes, _ = ev.drain()
    assert [(c.record.rule, c.state.value) for c in changes] == [
        ("CheckCannotRun", "firing"), ("CheckCannotRun", "resolved"),
        ("CheckTargetCritical", "firing")]


def test_group_by_makes_one_alert_per_group_from_the_worst_series():
    r = rule(metric=STATUS, op=">=", threshold=2, group_by=["model"],
             summary="{model}: worst {value:.0f}")
    ev = RuleEvaluator([r], started=0.0)
    a = make_tags({"model": "ranker", "node": "a"})
    b = make_tags({"model": "ranker", "node": "b"})
    ev.evaluate(ev.ingest([Sample(STATUS, 0.0, a, 10), Sample(STATUS, 2.0, b, 10)]), 10)
    ev.evaluate(ev.ingest([Sample(STATUS, 3.0, a, 20)]), 20)
    changes, _ = ev.drain()
    assert len(changes) == 1
    alert = ev.alerts()[0]
    assert alert.labels == {"model": "ranker", "severity": "warning"}
    assert alert.value == 3.0
    assert alert.annotations["summary"] == "ranker: worst 2"  # rendered at the transition


def test_where_selects_series():
    r = rule(metric=STATUS, op=">=", threshold=2, where={"check": "=~rank.*", "env": "!=dev"})
    ev = RuleEvaluator([r], started=0.0)
    ev.evaluate(ev.ingest([
        Sample(STATUS, 2.0, make_tags({"check": "ranker", "env": "dev"}), 10),
        Sample(STATUS, 2.0, make_tags({"check": "scorer", "env": "prod"}), 10),
        Sample(STATUS, 2.0, make_tags({"check": "ranker", "env": "prod"}), 10),
    ]), 10)
    assert [a.labels for a in ev.alerts()] == [{"check": "ranker", "env": "prod", "severity": "warning"}]


def test_labels_and_fingerprints():
    r = rule(op=">", threshold=1, labels={"team": "ml"}, severity="critical")
    ev = RuleEvaluator([r], started=0.0)
    ev.evaluate(ev.ingest([Sample(GAUGE, 2.0, make_tags({"check": "x"}), 1)]), 1)
    rec = ev.alerts()[0]
    assert rec.labels == {"check": "x", "team": "ml", "severity": "critical"}
    from agent.alert import fingerprint

    assert rec.fingerprint == fingerprint("TestAlert", rec.labels)


def _notifications(transitions):
    return [t for t in transitions if t[2] in ("firing", "resolved", "flapping")]


def test_a_flapping_series_is_notified_once_as_flapping():
    settings = RulesEngineConfig(flap_threshold=4, flap_window="10m", flap_settle="2m")
    r = rule(op=">", threshold=5)
    # crosses the threshold on every sample for 10 minutes (60 samples, 59 crossings)
    flapping = [(10 * i, 9.0 if i % 2 == 0 else 1.0) for i in range(60)]
    quiet = [(600 + 10 * i, 1.0) for i in range(1, 20)]          # then settles below
    got = drive(r, flapping + quiet, settings=settings)
    notified = _notifications(got)
    assert states(notified) == ["inactive->firing", "firing->resolved", "resolved->firing",
                                "firing->flapping", "flapping->resolved"]
    # without flap detection the same input would have notified 60 times
    plain = drive(r, flapping + quiet, settings=RulesEngineConfig(flap_threshold=10_000))
    assert len(_notifications(plain)) == 60


def test_flapping_carries_the_count():
    settings = RulesEngineConfig(flap_threshold=3, flap_window="10m", flap_settle="1m")
    r = rule(op=">", threshold=5)
    ev = RuleEvaluator([r], settings, started=0.0)
    drive(r, [(0, 9), (10, 1), (20, 9)], evaluator=ev)
    rec = ev.alerts()[0]
    assert rec.state.value == "flapping" and rec.flap_count == 3


def test_for_and_keep_firing_for_hold_a_noisy_series_steady():
    r = rule(op=">", threshold=5, keep_firing_for="1m", **{"for": "1m"})
    noisy = [(10 * i, 9.0 if i % 3 else 1.0) for i in range(30)]
    assert _notifications(drive(r, noisy)) == []       # never 1m in a row above: never fires
    steady_then_noisy = [(10 * i, 9.0) for i in range(8)] + [(80 + 10 * i, 9.0 if i % 3 else 1.0)
                                                             for i in range(30)]
    got = _notifications(drive(r, steady_then_noisy))
    assert states(got) == ["pending->firing"]          # fired once, held through the noise


def test_a_gauges_facts_are_its_text_not_its_identity():
    """endpoint.ready carries the server's reason as a fact: one series, one alert, the
    reason in the alert's text, and the text it fired with kept when it resolves."""
    r = rule(metric="mlwarden.endpoint.ready", op="<", threshold=1,
             summary="{model} not ready: {reason}")
    ev = RuleEvaluator([r], started=0.0)
    base = {"model": "iris", "endpoint": "http://m:8080", "protocol": "v2"}
    ok, why = make_tags(base), make_tags({**base, "reason": "Model iris not found"})
    ev.evaluate(ev.ingest([Sample(r.metric, 1.0, ok, 10)]), 10)
    ev.evaluate(ev.ingest([Sample(r.metric, 0.0, why, 20)]), 20)
    assert ev.series_count() == 1
    [alert] = ev.alerts()
    assert "reason" not in alert.labels
    assert alert.annotations["summary"] == "iris not ready: Model iris not found"
    ev.evaluate(ev.ingest([Sample(r.metric, 1.0, ok, 30)]), 30)  # back: resolves at once
    changes, _ = ev.drain()
    assert [(c.at, c.state.value) for c in changes] == [(20, "firing"), (30, "resolved")]
    assert changes[-1].alert().annotations["summary"] == "iris not ready: Model iris not found"
    assert changes[0].alert().series == [base]
    assert changes[0].alert().metric == "mlwarden.endpoint.ready"


def test_a_counts_facts_keep_identifying_each_event():
    """A failed task instance is one event per run and try: its facts stay in its labels."""
    r = rule(metric="mlwarden.airflow.task_instance.failed", aggregate="sum", window="30m",
             op=">", threshold=0, summary="{task_id} failed on try {try_number} ({run_id})")
    ev = RuleEvaluator([r], started=0.0)
    first = make_tags({"dag_id": "d", "task_id": "t", "run_id": "r1", "try_number": "1"})
    second = make_tags({"dag_id": "d", "task_id": "t", "run_id": "r2", "try_number": "2"})
    samples = [Sample(r.metric, 1.0, first, 10), Sample(r.metric, 1.0, second, 20)]
    ev.evaluate(ev.ingest(samples), 20)
    summaries = sorted(a.annotations["summary"] for a in ev.alerts())
    assert summaries == ["t failed on try 1 (r1)", "t failed on try 2 (r2)"]


def test_a_missing_fact_reads_n_a_not_a_placeholder():
    r = rule(metric="mlwarden.endpoint.up", op="<", threshold=1, summary="down: {reason}")
    ev = RuleEvaluator([r], started=0.0)
    ev.evaluate(ev.ingest([Sample(r.metric, 0.0, make_tags({"endpoint": "x"}), 10)]), 10)
    assert ev.alerts()[0].annotations["summary"] == "down: n/a"


def test_a_series_holds_only_what_its_rules_use():
    """Memory (issue #20): a series read only by last-value rules keeps no memo, one without
    facts holds the shared empty facts, and its groups are a tuple; a fact that comes and
    goes is held and let go, and a windowed rule gets its memo on first use."""
    from agent.rules.window import NO_FACTS

    last = rule(metric="mlwarden.endpoint.ready", op="<", threshold=1, summary="{reason}")
    avg = rule(alert="Avg", metric="mlwarden.endpoint.latency", aggregate="avg", window="1m",
               op=">", threshold=2.0)
    avg_too = rule(alert="AvgCritical", metric=avg.metric, aggregate="avg", window="1m",
                   op=">", threshold=2.5)  # two levels of one reduction: a memo is kept
    ev = RuleEvaluator([last, avg, avg_too], started=0.0)
    tags = make_tags({"endpoint": "x"})
    ev.evaluate(ev.ingest([Sample(last.metric, 1.0, tags, 10), Sample(avg.metric, 3.0, tags, 10)]), 10)
    ready, latency = ev.buffers[(last.metric, tags)], ev.buffers[(avg.metric, tags)]
    assert ready.memo is None and ready.facts is NO_FACTS and latency.facts is NO_FACTS
    assert latency.memo is not None and len(latency.memo) == 1
    assert type(ready.groups) is tuple and len(ready.groups) == 1 and len(latency.groups) == 2
    assert sorted(a.rule for a in ev.alerts()) == ["Avg", "AvgCritical"]
    why = make_tags({"endpoint": "x", "reason": "gone"})
    ev.evaluate(ev.ingest([Sample(last.metric, 0.0, why, 20)]), 20)
    assert ready.facts == {"reason": "gone"}
    assert ev.alerts()[0].annotations["summary"] == "gone"
    ev.evaluate(ev.ingest([Sample(last.metric, 1.0, tags, 30)]), 30)
    assert ready.facts is NO_FACTS and not NO_FACTS
    # expiry files the buffer itself, which knows its key: the very tuple the map holds
    assert next(k for k, b in ev.buffers.items() if b is ready) is ready.key
    other = make_tags({"endpoint": "y"})  # due the same second: the same int object
    ev.evaluate(ev.ingest([Sample(last.metric, 1.0, other, 30)]), 30)
    ev.tick(40)
    assert any(ready in bucket for bucket in ev._due.values())
    assert ready.due is ev.buffers[(last.metric, other)].due is not None
    ev.tick(10_000)  # silent past stale_after: forgotten, and its alert closes
    assert ev.series_count() == 0 and ready.groups == () and ready.due is None
