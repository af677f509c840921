"""The shortcuts of the evaluator's hot path change nothing an evaluation says.

- quiet bands (:mod:`agent.rules.bounds`): a window whose samples all lie inside a rule's
  band never satisfies its condition, whatever the samples (rounding, signed zeros,
  subnormals, the largest magnitudes the band admits), and for ``last``/``min``/``max`` a
  sample is hot exactly when it satisfies the condition itself;
- an evaluator that skips quiet groups and expires only the buffers that are due says the
  same transitions, with the same values, at the same times, as one that evaluates every
  affected group and visits every buffer each timer round, over random streams (out of
  order, replaced values, silent series, the ``max_points`` cap, group_by).
"""

from __future__ import annotations

import math
import operator

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.rules.aggregations import AGGREGATORS
from agent.rules.bounds import quiet_band
from agent.rules.config import RulesEngineConfig
from agent.rules.evaluator import RuleEvaluator
from agent.samples import Sample, make_tags

from .helpers import STATUS, rule

COMPARE = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}
ROUNDED = ["avg", "p50", "p90", "p95", "p99"]
SPECIAL = [0.0, -0.0, 5e-324, -5e-324, 2.2250738585072014e-308, 1.0, -1.0, 0.1, 0.3, 5.0,
           math.nextafter(5.0, 0.0), math.nextafter(5.0, 10.0), 1e300, -1e300,
           1.7976931348623157e308, -1.7976931348623157e308, math.inf, -math.inf]
THRESHOLDS = st.one_of(st.sampled_from(SPECIAL),
                       st.floats(allow_nan=False, allow_infinity=False, width=64))


def _reduce(aggregate: str, values: list[float]) -> float | None:
    times = [float(i) for i in range(len(values))]
    return AGGREGATORS[aggregate](times, values, 0, len(values), 60.0, False)


@given(st.sampled_from(["last", "min", "max"]), st.sampled_from(sorted(COMPARE)),
       st.sampled_from(SPECIAL + [math.nan]),
       st.lists(st.sampled_from(SPECIAL), min_size=1, max_size=12))
def test_an_exact_band_makes_hot_exactly_the_samples_that_satisfy_the_condition(agg, op, t, values):
    lo, hi = quiet_band(agg, op, t)
    for v in values:
        assert (v < lo or v > hi) == COMPARE[op](v, t), (v, lo, hi)
    if all(lo <= v <= hi for v in values):
        assert not COMPARE[op](_reduce(agg, values), t)


@st.composite
def _inside(draw):
    """A rounded aggregate, a comparison, a threshold and a window of samples inside its band,
    crowded at the band's edges (where rounding could tip a value over)."""
    agg = draw(st.sampled_from(ROUNDED))
    op = draw(st.sampled_from(sorted(COMPARE)))
    t = draw(THRESHOLDS)
    band = quiet_band(agg, op, t)
    if band is None:
        return agg, op, t, None, []
    lo, hi = band
    edges = [lo, hi, math.nextafter(lo, math.inf), math.nextafter(hi, -math.inf),
             (lo + hi) / 2, 0.0, -0.0, 5e-324, -5e-324]
    edges = [v for v in edges if lo <= v <= hi]
    sample = st.one_of(st.sampled_from(edges), st.floats(lo, hi))
    return agg, op, t, band, draw(st.lists(sample, min_size=1, max_size=40))


@settings(max_examples=2000, deadline=None)
@given(_inside())
def test_a_window_inside_a_rounded_band_never_satisfies_the_condition(case):
    agg, op, t, band, values = case
    if band is None:  # NaN/infinite/huge thresholds: no margin, no band
        assert not abs(t) <= 2.0 ** 880
        return
    value = _reduce(agg, values)
    assert not COMPARE[op](value, t), (agg, op, t, band, values, value)


def test_what_has_no_band():
    assert quiet_band("sum", ">", 1.0) is None
    assert quiet_band("rate", "<", 1.0) is None
    assert quiet_band("count", ">", 1.0) is None
    assert quiet_band("max", "==", 1.0) is None
    assert quiet_band("max", "!=", 1.0) is None
    assert quiet_band("avg", ">", math.inf) is None
    assert quiet_band("p95", ">", 1e300) is None
    assert quiet_band("max", ">", None) is None
    lo, hi = quiet_band("avg", ">", 5.0)
    assert lo < 0.0 < hi < 5.0 and 5.0 - hi < 1e-8  # a thin margin: near misses stay quiet


# -- an evaluator with the shortcuts against one without ---------------------------------

SERIES = [make_tags({"check": c, "node": n}) for c, n in (("a", "x"), ("b", "x"), ("c", "y"))]
VALUES = [0.0, -0.0, 0.1, 3.0, 4.5, 5.0, math.nextafter(5.0, 0.0), math.nextafter(5.0, 10.0),
          quiet_band("avg", ">", 5.0)[1], quiet_band("avg", "<", 5.0)[0], 5.5, 7.0, 1e300, -1e300,
          math.inf, 5e-324]

AGGREGATES = ["last", "min", "max", "avg", "p50", "p95", "sum"]
OPS = {">": "gt", ">=": "ge", "<": "lt", "<=": "le", "==": "eq"}


DTS = [0, 1, 5, 15, 15, 30, 70, 200, -7, -40]


@st.composite
def _cases(draw):
    """Rules and steps. Values come from a small palette per example, and thresholds are
    often among them, so windows of equal values at the threshold (where an average's
    rounding shows: avg(0.1, 0.1, 0.1) > 0.1) are common. Every aggregate comes with every
    comparison, in one or two families that each draw a threshold, a window, timers and a
    grouping. A step: seconds since the previous one (0: the same time, a replaced value;
    -7: a sample in the past; -40: the clock steps back), which series, and its value
    (None: a timer round)."""
    palette = draw(st.lists(st.sampled_from(VALUES), min_size=1, max_size=3))
    rules: list = []
    for family in range(draw(st.integers(1, 2))):
        threshold = draw(st.sampled_from([*palette, 5.0, 0.1, 0.0]).filter(math.isfinite))
        window = draw(st.sampled_from(["0s", "30s", "1m", "2m"]))
        timers = {"for": draw(st.sampled_from([0, 20])),
                  "keep_firing_for": draw(st.sampled_from([0, 30]))}
        group = draw(st.sampled_from([None, ["node"], []]))
        rules += [rule(alert=f"R{family}_{agg}_{name}", metric=STATUS, aggregate=agg,
                       window=window, op=op, threshold=threshold, group_by=group, **timers)
                  for agg in AGGREGATES for op, name in OPS.items()]
    series = draw(st.integers(1, len(SERIES)))
    dts = draw(st.lists(st.sampled_from(DTS), min_size=1, max_size=3))  # regular or not
    step = st.tuples(st.sampled_from(dts), st.integers(0, series - 1),
                     st.one_of(st.none(), st.sampled_from(palette)))
    return rules, draw(st.lists(step, min_size=1, max_size=80))


def _run(ev: RuleEvaluator, steps, every_buffer: bool) -> list:
    seen: list = []
    t = 0.0
    for dt, which, value in steps:
        if dt != -7:
            t += dt
        at = t - 7 if dt == -7 else t  # the sample's time; evaluated at t
        try:
            if value is None:
                if every_buffer:  # the walk over every buffer that expiry did before
                    ev._recheck.update(ev.buffers)  # noqa: SLF001
                ev.tick(t)
            else:
                ev.evaluate(ev.ingest([Sample(STATUS, value, SERIES[which], at)]), t)
        except (OverflowError, ValueError) as exc:  # fsum of opposite infinities: both raise
            seen.append(("raised", type(exc).__name__))
            return seen
        changes, dirty = ev.drain()
        seen.extend((c.at, c.record.fingerprint, c.previous.value, c.state.value,
                     repr(c.record.value)) for c in changes)
        seen.append(sorted((r.fingerprint, r.timers(), repr(r.value), r.last_eval) for r in dirty))
        seen.append(sorted(ev.truncated))
        seen.append([(key, buf.times[buf.start:].tolist(), buf.values[buf.start:].tolist(),
                      buf.dropped) for key, buf in ev.buffers.items()])  # what expiry let go
    seen.append(sorted((r.fingerprint, r.timers(), repr(r.value)) for r in ev.alerts()))
    return seen


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_cases(), st.sampled_from(["45s", "3m", "1d"]), st.sampled_from([16, 4096]))
def test_an_evaluator_with_shortcuts_says_what_evaluating_everything_says(case, stale, max_points):
    rules, steps = case
    cfg = RulesEngineConfig(stale_after=stale, max_points=max_points)
    fast = RuleEvaluator(rules, cfg, started=0.0)
    plain = RuleEvaluator(rules, cfg, started=0.0)
    for r in plain.rules:
        r.band = None  # every affected group evaluated with every sample
    assert _run(fast, steps, every_buffer=False) == _run(plain, steps, every_buffer=True)


def test_the_shortcuts_are_taken():
    """Quiet groups are skipped and expiry visits only what is due (a guard against the
    property above passing because both evaluators took the long way)."""
    rules = [rule(alert="Hot", metric=STATUS, aggregate="max", window="1m", op=">", threshold=5.0)]
    ev = RuleEvaluator(rules, RulesEngineConfig(), started=0.0)
    r = ev.rules[0]
    assert r.band == (-math.inf, 5.0)
    for t in range(0, 300, 15):
        ev.evaluate(ev.ingest([Sample(STATUS, 1.0, SERIES[0], float(t))]), float(t))
        ev.tick(t + 1.0)
    group = next(iter(r.groups.values()))
    assert group.hot == -math.inf and group.alert is None
    buf = next(iter(ev.buffers.values()))
    assert not ev._recheck and buf.due is not None and buf.due > 300  # noqa: SLF001
    ev.evaluate(ev.ingest([Sample(STATUS, 9.0, SERIES[0], 300.0)]), 300.0)
    assert group.hot == 300.0 and group.alert is not None  # a hot sample: evaluated, fires


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([0.5, 1.0, 7.5, 15.0]), st.sampled_from([0.25, 1.0, 3.0, 15.0]),
       st.sampled_from([0.0, 1.7e9, 1.7e9 + 0.1, 1e15]), st.sampled_from(["30s", "1m", "5m"]),
       st.sampled_from(["20s", "2m"]), st.lists(st.integers(1, 400), min_size=1, max_size=3))
def test_expiry_of_the_due_acts_in_the_rounds_a_walk_over_every_buffer_would(
        interval, tick_every, offset, window, stale, lasts):
    """Regular series (some falling silent) and timer rounds on a finer grid, at the
    magnitudes of wall-clock time: each round lets go of exactly the samples and series
    that a walk over every buffer lets go of."""
    rules = [rule(alert="R", metric=STATUS, aggregate="max", window=window, op=">", threshold=5.0)]
    cfg = RulesEngineConfig(stale_after=stale)
    fast = RuleEvaluator(rules, cfg, started=offset)
    walk = RuleEvaluator(rules, cfg, started=offset)
    ticks = 0
    for step in range(max(lasts) + 40):
        t = offset + step * interval
        for which, last in enumerate(lasts):
            if step < last:
                for ev in (fast, walk):
                    ev.evaluate(ev.ingest([Sample(STATUS, 1.0, SERIES[which], t)]), t)
        while offset + ticks * tick_every < t + interval:
            now = offset + ticks * tick_every
            ticks += 1
            walk._recheck.update(walk.buffers)  # noqa: SLF001
            for ev in (fast, walk):
                ev.tick(now)
            assert [(k, b.start, b.times.tolist()) for k, b in fast.buffers.items()] == \
                [(k, b.start, b.times.tolist()) for k, b in walk.buffers.items()], now


def test_a_series_moving_its_samples_every_round_files_one_entry():
    """Out of order and replaced samples send a buffer back to every next round; filed
    under the same second again, it keeps its one entry there (no pile-up over an hour's
    window)."""
    rules = [rule(alert="R", metric=STATUS, aggregate="max", window="1h", op=">", threshold=5.0)]
    ev = RuleEvaluator(rules, RulesEngineConfig(), started=0.0)
    for step in range(1, 400):
        t = step * 15.0
        ev.evaluate(ev.ingest([Sample(STATUS, 1.0, SERIES[0], t),
                               Sample(STATUS, 2.0, SERIES[0], t - 7.5),  # out of order
                               Sample(STATUS, 3.0, SERIES[1], t),
                               Sample(STATUS, 4.0, SERIES[1], t)]), t)  # replaced
        ev.tick(t + 1.0)
    entries = sum(len(bucket) for bucket in ev._due.values())  # noqa: SLF001
    assert len(ev.buffers) == 2 and entries <= 4, entries
