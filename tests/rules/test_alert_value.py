"""The alert the rules make is the one routing groups, the outbox stores and notifiers send
(agent/alert.py): what a notification needs is decided where the event is made, and what
is already stored (group state, outbox rows, fingerprints) reads back unchanged."""

from __future__ import annotations

import dataclasses
import json

import pytest

from agent.alert import Alert, AlertState, fingerprint
from agent.notify.base import Notification
from agent.rules.config import RulesEngineConfig
from agent.rules.engine import NOTIFIABLE
from agent.rules.evaluator import RuleEvaluator
from agent.samples import Sample

from .helpers import GAUGE, TAGS, rule


def _events(points, settings):
    r = rule(op=">", threshold=5, severity="critical", labels={"team": "ml"},
             summary="{check} is slow ({value:.0f})")
    ev = RuleEvaluator([r], settings, started=0.0)
    out = []
    for t, value in points:
        ev.evaluate(ev.ingest([Sample(GAUGE, value, TAGS, t)]), t)
        changes, _ = ev.drain()
        out.extend(c.event() for c in changes if c.state in NOTIFIABLE)
    return ev, out


def test_the_rules_event_carries_the_alert_as_notifications_say_it():
    settings = RulesEngineConfig(flap_threshold=3, flap_window="10m", flap_settle="1m")
    ev, events = _events([(0, 9), (10, 1), (20, 9), (200, 1), (300, 1)], settings)
    assert [(e.previous.value, e.state.value, e.alert.state) for e in events] == [
        ("inactive", "firing", "firing"),
        ("firing", "resolved", "resolved"),
        ("resolved", "flapping", "firing"),    # a flapping alert still fires
        ("flapping", "resolved", "resolved"),  # settled below the threshold
    ]
    fired, resolved, flapping, _ = events
    assert flapping.flap_count == 3 and fired.flap_count == 0
    a = fired.alert
    # the routing labels, once, where the alert is made; the fingerprint is the rule's own
    assert a.labels == {"check": "ranker", "check_type": "model_endpoint", "team": "ml",
                        "severity": "critical", "alertname": "TestAlert", "alert": "TestAlert"}
    own = {k: v for k, v in a.labels.items() if k not in ("alertname", "alert")}
    assert a.fingerprint == fingerprint("TestAlert", own)
    assert {e.alert.fingerprint for e in events} == {a.fingerprint}
    assert (a.rule, a.severity, a.value, a.threshold, a.fired_at, a.resolved_at, a.metric) == (
        "TestAlert", "critical", 9.0, 5.0, 0, None, GAUGE)
    assert a.annotations["summary"] == "ranker is slow (9)" and a.series == [dict(TAGS)]
    assert resolved.alert.resolved_at == 10 and flapping.alert.resolved_at is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.state = "resolved"  # type: ignore[misc]


def test_a_resolution_without_its_own_end_ends_when_it_is_told():
    """A record restored without ``resolved_at`` (an older row) still says when it ended."""
    ev, [fired] = _events([(0, 9)], RulesEngineConfig())
    from agent.rules.evaluator import Change

    rec = ev.alerts()[0]
    rec.resolved_at = None
    change = Change(rec, None, AlertState.FIRING, AlertState.RESOLVED, 500.0)
    assert change.event().alert.resolved_at == 500.0 and change.alert().threshold is None


# what notify's AlertInfo wrote into the outbox and the dispatcher's group state before
# the two alert types were one (its to_json, verbatim)
STORED = {"fingerprint": "95de8bd2461ddac7d6c9c1a8f5c66cd2", "rule": "EndpointDown",
          "labels": {"check": "ranker", "model": "ranker", "severity": "critical",
                     "alertname": "EndpointDown", "alert": "EndpointDown"},
          "state": "firing", "severity": "critical",
          "annotations": {"summary": "ranker is down"}, "value": 0.0, "threshold": 1.0,
          "active_since": 1.7e9, "fired_at": 1.7e9 + 60, "resolved_at": None,
          "metric": "mlwarden.endpoint.up", "series": [{"check": "ranker"}]}


def test_stored_alerts_read_back_unchanged_with_the_same_fingerprint():
    a = Alert.from_json(json.loads(json.dumps(STORED)))
    assert a.to_json() == STORED
    # the fingerprint the store and the outbox hold is what the rule's labels still give
    assert a.fingerprint == fingerprint(
        "EndpointDown", {"check": "ranker", "model": "ranker", "severity": "critical"})
    assert Alert.of("EndpointDown", {"check": "ranker", "model": "ranker",
                                     "severity": "critical"}, "firing", "critical").labels == \
        STORED["labels"]
    # a notification row, with a key a newer writer added, loads and says the same again
    row = {"receiver": "slack", "group_key": "g", "group_labels": {"alertname": "EndpointDown"},
           "event": "firing", "incident": "i", "alerts": [{**STORED, "newer": 1}],
           "created_at": 1.7e9, "seq": 0, "causes": None}
    note = Notification.from_json(json.loads(json.dumps(row)))
    assert note.alerts == [a] and note.to_json() == {**row, "alerts": [STORED]}
