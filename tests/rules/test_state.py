"""Alert state in the database (SQLite and PostgreSQL): rows, transitions, resume."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine

from agent.alert import AlertState
from agent.rules.state import AlertStateStore, record_row
from agent.errors import StoreError
from agent.rules.lifecycle import AlertRecord


def _record(**kw) -> AlertRecord:
    base = dict(fingerprint="f" * 32, rule="EndpointDown",
                labels={"model": "ranker", "severity": "critical"}, severity="critical",
                state=AlertState.FIRING, phase=AlertState.FIRING, value=0.0,
                active_since=100.0, clear_since=130.0, fired_at=160.0, last_eval=170.0,
                last_transition=160.0, flips=[160.0], annotations={"summary": "ranker is down"},
                group=(("model", "ranker"),))
    base.update(kw)
    return AlertRecord(**base)


def _transition(to: str, at: float) -> dict:
    return {"fingerprint": "f" * 32, "rule": "EndpointDown", "from_state": "pending",
            "to_state": to, "at": at, "value": 0.0, "labels": '{"model":"ranker"}'}


def test_a_record_round_trips_exactly(db_engine):
    store = AlertStateStore(db_engine, agent="node-1")
    rec = _record()
    store.save([record_row(rec, "node-1")], [_transition("firing", 160.0)])
    [back] = store.load(now=200.0, flap_window=3600)
    assert back == rec


def test_save_upserts_and_appends_transitions(db_engine):
    store = AlertStateStore(db_engine)
    store.save([record_row(_record(state=AlertState.PENDING, phase=AlertState.PENDING,
                                   fired_at=None), None)], [_transition("pending", 100.0)])
    store.save([record_row(_record(), None)], [_transition("firing", 160.0)])
    rows = store.list_alerts()
    assert len(rows) == 1 and rows[0]["state"] == "firing"
    assert rows[0]["labels"] == {"model": "ranker", "severity": "critical"}
    assert [h["to_state"] for h in store.history("EndpointDown")] == ["pending", "firing"]
    assert store.list_alerts("pending") == []
    assert store.history("NoSuchRule") == []


def test_load_skips_alerts_long_over(db_engine):
    store = AlertStateStore(db_engine)
    old = _record(fingerprint="a" * 32, state=AlertState.RESOLVED, phase=AlertState.RESOLVED,
                  resolved_at=200.0, last_transition=200.0, flips=[160.0, 200.0])
    live = _record(fingerprint="b" * 32)
    store.save([record_row(old, None), record_row(live, None)], [])
    assert {r.fingerprint for r in store.load(now=200.0 + 7200, flap_window=3600)} == {"b" * 32}
    assert {r.fingerprint for r in store.load(now=300.0, flap_window=3600)} == {"a" * 32, "b" * 32}


def test_an_unreachable_database_is_a_store_error_naming_it_without_password():
    engine = create_engine("postgresql+psycopg://u:hunter2secret@127.0.0.1:1/none",
                           connect_args={"connect_timeout": 2})
    store = AlertStateStore(engine)
    with pytest.raises(StoreError) as info:
        store.save([record_row(_record(), None)], [])
    assert "127.0.0.1:1/none" in str(info.value)
    assert "hunter2secret" not in str(info.value)
