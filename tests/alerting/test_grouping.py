"""The grouping decision on its own: :func:`agent.alerting.grouping.plan_flush`.

Each test states one of Alertmanager's timer rules as the dispatcher applies them to a due
group; the dispatcher's own tests (test_alert_routing.py and others) run the same rules
end to end through the outbox.
"""

from __future__ import annotations

import dataclasses

from agent.alert import Alert
from agent.alerting.config import QuietHours
from agent.alerting.grouping import FlushFacts, plan_flush
from agent.alerting.groupstate import digest
from agent.alerting.routing import Route

NOW = 1_800_000_000.0  # 2027-01-15 08:00 UTC
ROUTE = Route(id="root", matchers=(), receiver="slack", group_by=("alertname",),
              group_wait=30, group_interval=300, repeat_interval=3600)


def alert(fp: str, state: str = "firing", severity: str = "warning",
          fired_at: float = NOW - 60) -> Alert:
    return Alert(fingerprint=fp, rule="EndpointDown", labels={"alertname": "EndpointDown"},
                 state=state, severity=severity, fired_at=fired_at)


def facts(*alerts: Alert, **kw: object) -> FlushFacts:
    base: dict[str, object] = dict(key="slack|g", alerts=alerts, notified={}, incident=None,
                                   seq=0, last_notify=None, repeat_every=3600, next_every=300)
    base.update(kw)
    return FlushFacts(**base)  # type: ignore[arg-type]


def test_a_new_group_opens_an_incident_keyed_by_its_first_alert():
    plan = plan_flush(facts(alert("a", fired_at=NOW - 50), alert("b", fired_at=NOW - 90)),
                      ROUTE, NOW)
    assert plan.event == "firing" and plan.send and not plan.held
    assert plan.incident == digest("slack|g", NOW - 90, "incident")
    assert plan.dedup == plan.incident and plan.seq == 1
    assert [a.fingerprint for a in plan.shown] == ["a", "b"]
    assert plan.notified == {"a": "firing", "b": "firing"}
    assert plan.stamp_notify and plan.next_flush == NOW + 300 and not plan.empty


def test_nothing_new_says_nothing_until_the_repeat_interval():
    said = dict(notified={"a": "firing"}, incident="inc", seq=1, last_notify=NOW - 3599)
    quiet = plan_flush(facts(alert("a"), **said), ROUTE, NOW)
    assert quiet.event is None and not quiet.send and not quiet.stamp_notify
    assert quiet.seq == 1 and quiet.next_flush == NOW + 300
    repeat = plan_flush(facts(alert("a"), **{**said, "last_notify": NOW - 3600}), ROUTE, NOW)
    assert repeat.event == "repeat" and repeat.send and repeat.seq == 2
    assert repeat.dedup == digest("inc", 2, "repeat")


def test_an_acknowledged_incident_is_not_reminded_but_asked_again_later():
    said = dict(notified={"a": "firing"}, incident="inc", seq=1, last_notify=NOW - 4000)
    plan = plan_flush(facts(alert("a"), **said), ROUTE, NOW).acknowledged()
    assert plan.event is None and not plan.send and plan.seq == 1 and plan.dedup is None
    assert plan.stamp_notify  # the next reminder is one repeat interval from now
    update = plan_flush(facts(alert("a"), alert("b"), **said), ROUTE, NOW)
    assert update.acknowledged() == update  # only reminders stop


def test_news_is_an_update_and_the_last_resolution_closes_the_incident():
    said = dict(notified={"a": "firing", "b": "firing"}, incident="inc", seq=3,
                last_notify=NOW - 10)
    update = plan_flush(facts(alert("a"), alert("b", "resolved"), **said), ROUTE, NOW)
    assert update.event == "update" and [a.fingerprint for a in update.shown] == ["a", "b"]
    assert update.dropped == ("b",) and update.notified == {"a": "firing"}
    assert not update.close_incident and not update.empty
    done = plan_flush(facts(alert("a", "resolved"), alert("b", "resolved"), **said), ROUTE, NOW)
    assert done.event == "resolved" and done.send and done.seq == 4
    assert done.dedup == digest("inc", 4, "resolved")
    assert done.close_incident and done.empty and done.notified == {}


def test_without_send_resolved_the_incident_closes_silently():
    plan = plan_flush(facts(alert("a", "resolved"), notified={"a": "firing"}, incident="inc",
                            seq=1, last_notify=NOW - 10, send_resolved=False), ROUTE, NOW)
    assert plan.event == "resolved" and not plan.send and not plan.shown
    assert plan.close_incident and plan.empty and plan.seq == 1 and not plan.stamp_notify


def test_a_muted_alert_is_counted_once_and_resolves_quietly():
    first = plan_flush(facts(alert("a"), alert("m"), muted={"m"}), ROUTE, NOW)
    assert first.newly_muted == 1 and [a.fingerprint for a in first.shown] == ["a"]
    assert first.notified == {"a": "firing", "m": "muted"}
    again = plan_flush(facts(alert("a"), alert("m"), muted={"m"}, notified=first.notified,
                             incident=first.incident, seq=1, last_notify=NOW), ROUTE, NOW)
    assert again.newly_muted == 0 and again.event is None
    # the muted alert resolves: nothing was said of it, so there is no news
    gone = plan_flush(facts(alert("a"), alert("m", "resolved"), notified=first.notified,
                            incident=first.incident, seq=1, last_notify=NOW), ROUTE, NOW)
    assert gone.event is None and gone.dropped == ("m",) and not gone.empty


def test_a_muted_alert_still_firing_keeps_the_incident_open():
    plan = plan_flush(facts(alert("a", "resolved"), alert("m"), muted={"m"},
                            notified={"a": "firing", "m": "muted"}, incident="inc", seq=1,
                            last_notify=NOW - 10), ROUTE, NOW)
    assert plan.event == "resolved" and plan.send and not plan.close_incident
    assert not plan.empty and plan.notified == {"m": "muted"}


def test_an_effect_said_under_its_cause_elsewhere_is_not_said_here():
    plan = plan_flush(facts(alert("a"), alert("e"), away={"e"}), ROUTE, NOW)
    assert [a.fingerprint for a in plan.shown] == ["a"]
    assert plan.notified == {"a": "firing", "e": "linked"}
    # its resolution is no news here either
    later = plan_flush(facts(alert("a"), alert("e", "resolved"), away={"e"},
                             notified={"a": "firing", "e": "firing"}, incident="inc", seq=1,
                             last_notify=NOW), ROUTE, NOW)
    assert later.event is None and later.dropped == ("e",)


def test_an_effect_joining_the_cause_is_news_for_its_thread():
    plan = plan_flush(facts(alert("a"), notified={"a": "firing"}, incident="inc", seq=1,
                            last_notify=NOW, joined={"e"}), ROUTE, NOW)
    assert plan.event == "update" and plan.send


def test_quiet_hours_hold_all_but_critical_and_change_nothing_else():
    quiet = QuietHours(start="07:00", end="09:00")
    route = dataclasses.replace(ROUTE, quiet_hours=quiet)
    held = plan_flush(facts(alert("a"), alert("m"), muted={"m"}), route, NOW)
    assert held.held and not held.send and held.next_flush is None
    assert held.notified == {"m": "muted"} and held.newly_muted == 1  # marks still apply
    assert plan_flush(facts(alert("a", severity="critical")), route, NOW).event == "firing"
    assert not plan_flush(facts(alert("a")), route, NOW + 3 * 3600).held


def test_a_clean_group_with_nothing_firing_says_nothing():
    plan = plan_flush(facts(alert("a", "resolved")), ROUTE, NOW)
    assert plan.event is None and not plan.send and plan.empty and plan.incident is None


def test_groups_outlive_a_restart_with_their_alerts_as_values(tmp_path):
    """GroupStates saves changed groups to check_state and loads them back as they were;
    a removed group's row goes."""
    from agent.alerting.groupstate import Group, GroupStates
    from agent.history.db import create_schema, make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'g.db'}")
    create_schema(engine)
    states = GroupStates(engine)
    kept = Group("root", "slack|" + "x" * 300, {"alertname": "EndpointDown"}, "slack",
                 alerts={"a": alert("a"), "b": alert("b", "resolved")}, notified={"a": "firing"},
                 incident="inc", seq=2, next_flush=NOW + 300, last_notify=NOW)
    gone = Group("root", "slack|gone", {}, "slack", alerts={"c": alert("c")})
    states.add(kept)
    states.add(gone)
    states.save(NOW)
    states.remove(gone.key)
    states.save(NOW + 1)
    again = GroupStates(engine)
    again.load()
    assert again.groups == {kept.key: kept}
    assert isinstance(again.groups[kept.key].alerts["a"], Alert)
