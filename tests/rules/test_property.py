"""Properties of the alert state machine over arbitrary series (hypothesis).

- firing never goes back to pending;
- only an alert that fired is ever resolved;
- restarting at any point (state saved to and resumed from a real SQLite database)
  gives the same transitions afterwards and the same persisted state at the end as a run
  without the restart.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.rules.state import AlertStateStore, record_row
from agent.history.db import create_schema, make_engine
from agent.rules.config import RulesEngineConfig
from agent.rules.evaluator import RuleEvaluator
from agent.samples import Sample, make_tags

from .helpers import STATUS, rule
from .series_store import SqliteSeries

SERIES = [make_tags({"check": "a"}), make_tags({"check": "b"})]

rules_st = st.builds(
    lambda op, for_, kff, recover, group: rule(
        metric=STATUS, op=op, threshold=5.0, keep_firing_for=kff,
        recover=(None if recover is None else (5.0 - recover if op == ">" else 5.0 + recover)),
        group_by=group, **{"for": for_}),
    op=st.sampled_from([">", "<"]),
    for_=st.sampled_from([0, 15, 40]),
    kff=st.sampled_from([0, 20, 45]),
    recover=st.sampled_from([None, 0.0, 2.0]),
    group=st.sampled_from([None, ["check"], []]),
)
settings_st = st.builds(
    lambda threshold, window, settle: RulesEngineConfig(
        flap_threshold=threshold, flap_window=window, flap_settle=settle, stale_after="1d"),
    threshold=st.integers(2, 6),
    window=st.sampled_from([60, 300]),
    settle=st.sampled_from([20, 90]),
)
# a step: (seconds since the previous step, which series, value or None for a timer tick)
step_st = st.tuples(
    st.integers(1, 30),
    st.integers(0, 1),
    st.one_of(st.none(), st.sampled_from([0.0, 3.0, 4.5, 5.0, 5.5, 7.0, 10.0, math.nan])),
)


def _run(evaluator, steps, t0, out, save=None, history=None):
    t = t0
    for dt, which, value in steps:
        t += dt
        if value is None:
            evaluator.tick(t)
        else:
            sample = Sample(STATUS, value, SERIES[which], t)
            if history is not None:
                history.add([sample])
            evaluator.evaluate(evaluator.ingest([sample]), t)
        changes, dirty = evaluator.drain()
        out.extend((c.at, c.record.fingerprint, c.previous.value, c.state.value) for c in changes)
        if save is not None:
            save(dirty, changes)
    return t


def _saver(store):
    def save(dirty, changes):
        store.save([record_row(r, None) for r in dirty],
                   [{"fingerprint": c.record.fingerprint, "rule": c.record.rule,
                     "from_state": c.previous.value, "to_state": c.state.value, "at": c.at,
                     "value": c.record.value, "labels": "{}"} for c in changes])
    return save


def _durable(store):
    keys = ("state", "active_since", "fired_at", "resolved_at", "transitions_window", "detail")
    return {row["fingerprint"]: {k: row[k] for k in keys} for row in store.list_alerts()}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(r=rules_st, cfg=settings_st, steps=st.lists(step_st, min_size=1, max_size=40),
       cut=st.integers(0, 40))
def test_invariants_and_restart_equivalence(r, cfg, steps, cut):
    cut = min(cut, len(steps))
    with tempfile.TemporaryDirectory() as tmp:
        stores = []
        for name in ("plain", "restarted"):
            engine = make_engine(f"sqlite:///{Path(tmp) / name}.db")
            create_schema(engine)
            stores.append(AlertStateStore(engine))
        plain_store, restart_store = stores

        # without a restart
        plain: list = []
        _run(RuleEvaluator([r], cfg, started=0.0), steps, 0.0, plain, _saver(plain_store))

        # the invariants
        fired: set[str] = set()
        for _, fp, prev, new in plain:
            assert not (prev == "firing" and new == "pending"), plain
            if new == "resolved":
                assert fp in fired, f"resolved an alert that never fired: {plain}"
            if new == "firing":
                fired.add(fp)

        # with a restart after `cut` steps: a new evaluator resumes its alerts from the
        # database and refills its windows from the history, as the engine does on start
        history = SqliteSeries()
        before: list = []
        first = RuleEvaluator([r], cfg, started=0.0)
        t = _run(first, steps[:cut], 0.0, before, _saver(restart_store), history)
        second = RuleEvaluator([r], cfg, started=t)
        second.restore(restart_store.load(t, cfg.flap_window), t)
        for metric, span in second.prime_spans().items():
            second.prime(metric, history.read_series(metric, t - span, t))
        after: list = []
        _run(second, steps[cut:], t, after, _saver(restart_store), history)
        history.close()

        assert before + after == plain
        assert _durable(restart_store) == _durable(plain_store)
        for engine in (plain_store.engine, restart_store.engine):
            engine.dispose()
