"""Applying actions to the store, on SQLite and on the real PostgreSQL: each button changes
the store as issue 21 says, once per press, and only for those allowed.

Presses are the ``block_actions`` payloads Slack sends for a button of the message the
notifier will post (the stand-in builds them from the rendered, validated blocks).
"""

from __future__ import annotations

import threading

import pytest

from agent.alerting.silences import SilenceStore
from agent.slackapp.handlers import apply, on_resolved, silence_matchers, state_of
from agent.slackapp.model import requests_from_payload
from agent.slackapp.policy import Permission
from agent.slackapp.store import ActionStore
from tests.slackapp.helpers import NOW, alert, engine_for, incident, matchers_of, message
from tests.slackapp.socket_stand_in import block_actions_payload

pytestmark = pytest.mark.integration
OK = Permission(True)


@pytest.fixture
def env(db_url):
    engine = engine_for(db_url)
    yield engine, ActionStore(engine, holder="agent-a"), SilenceStore(engine)
    engine.dispose()


def press(target, store, silences, action_id, *, user="U0ANA", name="ana", now=NOW,
          action_ts="1700000100.000001", blocks=None):
    """A press on the message as it shows now (or as ``blocks``: a message not yet redrawn)."""
    blocks = blocks or message(target, store, silences, now)
    payload = block_actions_payload(blocks, action_id, user=user, name=name,
                                    action_ts=action_ts)
    (req,) = requests_from_payload(payload, "test")
    return req


def test_acknowledge_records_who_and_when_once(env):
    _, store, silences = env
    target = incident(store)
    before = message(target, store, silences, NOW)
    req = press(target, store, silences, "mlwarden:acknowledge", blocks=before)
    out = apply(req, permission=OK, store=store, silences=silences, now=NOW + 5)
    assert out.status == "applied" and out.changed
    assert "Acknowledged by <@U0ANA> at <!date^1700000005^{time}|22:13 UTC>" in out.reply
    ack = store.acknowledged(target.id)
    assert (ack.by, ack.by_id, ack.at) == ("ana", "U0ANA", NOW + 5)
    # the same press again (redelivered): nothing changes, nothing is said
    again = apply(req, permission=OK, store=store, silences=silences, now=NOW + 9)
    assert again.status == "duplicate" and again.reply is None
    assert store.acknowledged(target.id).at == NOW + 5
    # someone else pressed it on the message before it was redrawn: the first one stands
    other = press(target, store, silences, "mlwarden:acknowledge", user="U0BOB", name="bob",
                  action_ts="1700000200.000001", blocks=before)
    late = apply(other, permission=OK, store=store, silences=silences, now=NOW + 20)
    assert late.status == "noop" and "<@U0ANA>" in late.reply
    assert store.acknowledged(target.id).by_id == "U0ANA"
    assert [(a.action, a.user_id, a.state) for a in store.actions(target_id=target.id)] == [
        ("acknowledge", "U0ANA", "done"), ("acknowledge", "U0BOB", "done")]


def test_the_acknowledged_message_has_no_acknowledge_button(env):
    _, store, silences = env
    target = incident(store)
    apply(press(target, store, silences, "mlwarden:acknowledge"), permission=OK, store=store,
          silences=silences, now=NOW)
    blocks = message(store.target(target.id), store, silences, NOW + 1)
    ids = [e["action_id"] for b in blocks if b["type"] == "actions" for e in b["elements"]]
    assert "mlwarden:acknowledge" not in ids and "mlwarden:silence:1h" in ids
    context = [b for b in blocks if b.get("block_id", "").startswith("mlwarden:state:")]
    assert "Acknowledged by <@U0ANA>" in context[0]["elements"][0]["text"]


@pytest.mark.parametrize("arg,seconds", [("1h", 3600), ("4h", 14400), ("resolved", 7 * 86400)])
def test_silence_matches_the_alert_and_names_its_author(env, arg, seconds):
    _, store, silences = env
    target = incident(store)
    out = apply(press(target, store, silences, f"mlwarden:silence:{arg}"), permission=OK,
                store=store, silences=silences, now=NOW)
    assert out.status == "applied"
    (silence,) = silences.list(now=NOW)
    assert matchers_of(silence) == ["alert=EndpointDown", "alertname=EndpointDown",
                                    "check=ranker", "model=ranker", "severity=critical"]
    assert (silence.starts_at, silence.ends_at) == (NOW, NOW + seconds)
    assert silence.created_by == "ana (Slack U0ANA)"
    assert "from Slack" in silence.comment and "EndpointDown" in silence.comment
    # it mutes this alert and not another model's
    assert silence.mutes(dict(target.alerts[0].labels), NOW + 1)
    assert not silence.mutes({**target.alerts[0].labels, "model": "reranker"}, NOW + 1)
    state = state_of(target, store, silences, NOW + 1)
    assert state.silenced_until == NOW + seconds and state.silenced_by == "U0ANA"
    assert state.until_resolved is (arg == "resolved")
    assert out.thread and "Silenced by <@U0ANA>" in out.thread


def test_until_resolved_ends_when_the_incident_resolves_and_1h_does_not(env):
    _, store, silences = env
    target = incident(store)
    before = message(target, store, silences, NOW)  # two people press before the redraw
    apply(press(target, store, silences, "mlwarden:silence:resolved", blocks=before),
          permission=OK, store=store, silences=silences, now=NOW)
    apply(press(target, store, silences, "mlwarden:silence:1h", action_ts="1700000300.1",
                blocks=before, user="U0BOB"), permission=OK, store=store, silences=silences,
          now=NOW + 1)
    assert len(silences.list(now=NOW + 2)) == 2
    ended = on_resolved(target.id, store=store, silences=silences, now=NOW + 60)
    assert len(ended) == 1
    (left,) = silences.list(now=NOW + 61)
    assert left.ends_at == NOW + 1 + 3600
    assert on_resolved(target.id, store=store, silences=silences, now=NOW + 70) == []
    assert state_of(store.target(target.id), store, silences, NOW + 71).resolved


def test_unsilence_ends_the_silences_made_from_the_message_only(env):
    _, store, silences = env
    target = incident(store)
    cli = silences.add(silence_matchers(target)[0], starts_at=NOW, ends_at=NOW + 600, now=NOW,
                       created_by="ops", comment="from the CLI")
    apply(press(target, store, silences, "mlwarden:silence:4h"), permission=OK, store=store,
          silences=silences, now=NOW)
    silenced = message(target, store, silences, NOW + 1)
    req = press(target, store, silences, "mlwarden:unsilence", action_ts="1700000400.5",
                blocks=silenced)
    out = apply(req, permission=OK, store=store, silences=silences, now=NOW + 10)
    assert out.status == "applied" and "1 silence ended" in out.reply
    assert [s.id for s in silences.list(now=NOW + 11)] == [cli.id]
    assert apply(req, permission=OK, store=store, silences=silences,
                 now=NOW + 12).status == "duplicate"
    # someone else presses Unsilence on the message before its redraw: nothing left to end
    late = press(target, store, silences, "mlwarden:unsilence", action_ts="1700000450.5",
                 blocks=silenced, user="U0BOB")
    nothing = apply(late, permission=OK, store=store, silences=silences, now=NOW + 13)
    assert nothing.status == "noop" and "No silence made from this message" in nothing.reply
    assert [s.id for s in silences.list(now=NOW + 14)] == [cli.id]
    # the redrawn message offers Silence again
    assert state_of(target, store, silences, NOW + 14).silenced_until is None
    press(target, store, silences, "mlwarden:silence:1h", action_ts="1700000500.5",
          now=NOW + 14)


def test_chart_asks_for_24_hours_of_the_alert(env):
    _, store, silences = env
    target = incident(store)
    out = apply(press(target, store, silences, "mlwarden:chart:24h"), permission=OK,
                store=store, silences=silences, now=NOW)
    assert out.status == "applied" and out.chart is not None
    assert out.chart.window == 86400 and out.chart.target.id == target.id
    assert out.chart.target.alerts[0].metric == "mlwarden.endpoint.up"
    assert not silences.list(now=NOW)


def test_someone_not_allowed_changes_nothing_and_is_recorded(env):
    _, store, silences = env
    target = incident(store)
    refused = Permission(False, "You are not allowed to silence alerts from Slack")
    out = apply(press(target, store, silences, "mlwarden:silence:1h", user="U0EVE"),
                permission=refused, store=store, silences=silences, now=NOW)
    assert out.status == "refused" and out.reply == refused.reason and not out.changed
    assert silences.list(now=NOW) == [] and store.acknowledged(target.id) is None
    (record,) = store.actions(target_id=target.id)
    assert (record.user_id, record.state, record.outcome) == ("U0EVE", "refused", "not allowed")


def test_an_unknown_target_is_refused_with_a_reason(env):
    _, store, silences = env
    target = incident(store)
    req = press(target, store, silences, "mlwarden:acknowledge")
    other = ActionStore(engine_for("sqlite://"), holder="elsewhere")  # a reset store
    out = apply(req, permission=OK, store=other, silences=SilenceStore(other.engine), now=NOW)
    assert out.status == "refused" and "no longer knows this alert" in out.reply


def test_two_agents_applying_one_press_at_once_make_one_silence(env, db_url):
    engine, store, silences = env
    target = incident(store)
    req = press(target, store, silences, "mlwarden:silence:1h")
    stores = [ActionStore(engine, holder="agent-a"), ActionStore(engine_for(db_url),
                                                                 holder="agent-b")]
    barrier = threading.Barrier(2)
    results = []

    def run(s):
        barrier.wait()
        results.append(apply(req, permission=OK, store=s, silences=SilenceStore(s.engine),
                             now=NOW).status)

    threads = [threading.Thread(target=run, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) in (["applied", "busy"], ["applied", "duplicate"])
    assert len(silences.list(now=NOW)) == 1
    stores[1].engine.dispose()


def test_an_agent_that_died_half_way_is_taken_over_without_a_second_silence(env, db_url):
    engine, store, silences = env
    target = incident(store)
    req = press(target, store, silences, "mlwarden:silence:1h")
    # agent a claimed it and made the silence, then died before recording it
    assert store.claim(req, now=NOW).status == "new"
    silences.add(silence_matchers(target)[0], starts_at=NOW, ends_at=NOW + 3600, now=NOW,
                 created_by=req.who, comment=f"from Slack [action {req.key[:16]}]")
    b = ActionStore(engine, holder="agent-b")
    assert apply(req, permission=OK, store=b, silences=silences, now=NOW + 5).status == "busy"
    out = apply(req, permission=OK, store=b, silences=silences, now=NOW + 61)  # claim expired
    assert out.status == "applied"
    assert len(silences.list(now=NOW + 62)) == 1
    assert store.action(req.key).state == "done"
    assert store.silence_ids(target.id) == [silences.list(now=NOW + 62)[0].id]


def test_a_failure_while_applying_lets_the_next_delivery_take_over_at_once(env):
    _, store, silences = env
    target = incident(store)
    req = press(target, store, silences, "mlwarden:silence:1h")

    class Broken(SilenceStore):
        def add(self, *args, **kwargs):
            raise RuntimeError("database went away")

    with pytest.raises(RuntimeError):
        apply(req, permission=OK, store=store, silences=Broken(store.engine), now=NOW)
    out = apply(req, permission=OK, store=store, silences=silences, now=NOW + 1)
    assert out.status == "applied" and len(silences.list(now=NOW + 1)) == 1


def test_a_group_of_one_rule_gets_one_silence_of_many_rules_one_each(env):
    _, store, silences = env
    one_rule = incident(store, alert(model="ranker", check="ranker"),
                        alert(model="ranker", check="ranker-canary"), incident="inc-a")
    assert [[str(m) for m in ms] for ms in silence_matchers(one_rule)] == [
        ["alert=EndpointDown", "alertname=EndpointDown", "model=ranker", "severity=critical"]]
    mixed = incident(store, alert(model="ranker"), alert("GpuIdle", "warning", node="gpu-1"),
                     incident="inc-b", group_labels={})
    out = apply(press(mixed, store, silences, "mlwarden:silence:1h"), permission=OK,
                store=store, silences=silences, now=NOW)
    assert out.status == "applied"
    made = silences.list(now=NOW)
    assert sorted(matchers_of(s)[0] for s in made) == ["alert=EndpointDown", "alert=GpuIdle"]
    assert len(store.silence_ids(mixed.id)) == 2


def test_acks_for_the_status_page_follow_the_newest_incident(env):
    _, store, silences = env
    first = incident(store, incident="inc-1", now=NOW)
    fp = first.alerts[0].fingerprint
    assert store.acks([fp]) == {}
    apply(press(first, store, silences, "mlwarden:acknowledge"), permission=OK, store=store,
          silences=silences, now=NOW + 5)
    (ack,) = store.acks([fp, "unknown"]).values()
    assert (ack.by, ack.at) == ("@ana", NOW + 5)
    # the alert resolved and fired again: a new incident, not acknowledged yet
    on_resolved(first.id, store=store, silences=silences, now=NOW + 100)
    incident(store, incident="inc-2", now=NOW + 200)
    assert store.acks([fp]) == {}


def test_actions_are_read_by_rule_for_alerts_history(env):
    _, store, silences = env
    target = incident(store)
    other = incident(store, alert("GpuIdle", "warning", node="gpu-1"), incident="inc-g")
    apply(press(target, store, silences, "mlwarden:silence:1h"), permission=OK, store=store,
          silences=silences, now=NOW)
    apply(press(other, store, silences, "mlwarden:acknowledge"), permission=OK, store=store,
          silences=silences, now=NOW + 1)
    (record,) = store.actions(rule="EndpointDown")
    assert record.describe() == "silenced 1h by ana"
    assert record.rules == ("EndpointDown",) and record.group_labels["model"] == "ranker"
    assert [r.action for r in store.actions(rule="GpuIdle")] == ["acknowledge"]


def test_registering_again_merges_the_alerts_that_joined(env):
    _, store, _ = env
    first = incident(store, alert(model="ranker"))
    joined = incident(store, alert(model="ranker", check="ranker-canary"))
    assert joined.id == first.id and len(joined.alerts) == 2
    store.posted(first.id, channel="C0ALERTS01", ts="1700000000.000100", now=NOW)
    assert store.target(first.id).ts == "1700000000.000100"
    fps = [a.fingerprint for a in joined.alerts]
    apply(press(joined, store, SilenceStore(store.engine), "mlwarden:acknowledge"),
          permission=OK, store=store, silences=SilenceStore(store.engine), now=NOW)
    assert set(store.acks(fps)) == set(fps)
