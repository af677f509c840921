"""Window states carried forward as windows slide give exactly what reducing anew gives.

The evaluator keeps ``min``/``max``/percentile windows up to date sample by sample
(:mod:`agent.rules.incremental`); these properties check them against the plain reducers
of :mod:`agent.rules.aggregations` over arbitrary histories of a real ``SeriesBuffer``
(in order, out of order, replaced values, expiry, compaction, the max_points cap, signed
zeros and infinities), bit for bit, and that an evaluator using them says the same
transitions with the same values as one reducing every window anew.
"""

from __future__ import annotations

import math
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.rules.aggregations import AGGREGATORS
from agent.rules.config import RulesEngineConfig
from agent.rules.evaluator import RuleEvaluator
from agent.rules.incremental import INCREMENTAL
from agent.rules.window import SeriesBuffer
from agent.samples import Sample, make_tags

from .helpers import STATUS, rule

VALUES = st.sampled_from([0.0, -0.0, 1.0, -1.0, 2.5, 2.5, 7.0, math.inf, -math.inf, 1e308, 5e-324])
WINDOWS = [0.5, 15.0, 60.0, 200.0]
# an operation: advance the clock by dt and append (0), replace the newest (1), insert
# in the past (2), or expire what is older than a window (3)
OPS = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 40), VALUES), min_size=1, max_size=120)


def _bits(x: float | None) -> object:
    return None if x is None else struct.pack("<d", x)  # tells -0.0 from 0.0


@settings(max_examples=300, deadline=None)
@given(OPS, st.sampled_from([16, 4096]))
def test_incremental_states_equal_the_plain_reducers(ops, max_points):
    buf = SeriesBuffer(max_points=max_points)
    states = {(name, w): make() for name, make in INCREMENTAL.items() for w in WINDOWS}
    now = 0.0
    for kind, dt, value in ops:
        now += dt
        if kind == 0 or not len(buf):
            buf.append(now, value)
        elif kind == 1:
            buf.append(buf.times[-1], value)
        elif kind == 2:
            buf.append(max(buf.times[buf.start] + 0.5, now - dt - 10.0), value)
        else:
            buf.expire(now - 60.0, keep=2)
        for (name, window), state in states.items():
            lo, hi = buf.bounds(now - window, now)
            got = state.update(buf.values, lo, hi, buf.epoch)
            want = AGGREGATORS[name](buf.times, buf.values, lo, hi, window, False)
            assert _bits(got) == _bits(want), (name, window, list(buf.values[lo:hi]))


SERIES = [make_tags({"check": "a"}), make_tags({"check": "b"})]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 40), st.integers(0, 1),
                          st.one_of(st.none(), st.sampled_from([0.0, 3.0, 4.5, 5.0, 6.0, 9.0]))),
                min_size=1, max_size=80))
def test_an_evaluator_with_incremental_windows_says_what_reducing_anew_says(steps):
    rules = [rule(alert=f"R{agg}{w}", metric=STATUS, aggregate=agg, window=w, op=op,
                  threshold=5.0, **{"for": 20})
             for agg in ("min", "max", "p50", "p95") for w in ("1m", "2m") for op in (">", "<")]
    cfg = RulesEngineConfig(stale_after="1d")
    fast = RuleEvaluator(rules, cfg, started=0.0)
    plain = RuleEvaluator(rules, cfg, started=0.0)
    for r in plain.rules:
        r.sliding = None  # the plain reducer, every window reduced anew
    assert all(r.sliding is not None for r in fast.rules)
    seen = {id(fast): [], id(plain): []}
    t = 0.0
    for dt, which, value in steps:
        t += dt
        for ev in (fast, plain):
            if value is None:
                ev.tick(t)
            else:
                ev.evaluate(ev.ingest([Sample(STATUS, value, SERIES[which], t)]), t)
            changes, _ = ev.drain()
            seen[id(ev)].extend((c.at, c.record.fingerprint, c.state.value, c.record.value)
                                for c in changes)
    assert seen[id(fast)] == seen[id(plain)]
