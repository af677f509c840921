"""What one alert group says when its flush is due: a pure function of the group's state.

:func:`plan_flush` takes what the dispatcher knows of a due group (its alerts, what was
last said of each, its incident and timers), the route's timing, and the verdicts made
elsewhere this round (which firing alerts are muted, which are said under their cause in
another group, which effects joined the group's cause), and returns a :class:`FlushPlan`:
the notification to queue, if any, and the group's state after it. It reads no clock,
store or config, so each rule of Alertmanager's timers is tested on its own
(tests/alerting/test_grouping.py); the dispatcher only applies the plan.

The rules:

- a firing alert muted by a silence or inhibition is not shown; it is marked ``muted``
  once (counted once) and stays in the group so its resolution can close it quietly;
- an alert said under its cause elsewhere is marked ``linked`` and not shown here;
- inside the route's quiet hours or mute time intervals nothing is sent and nothing
  moves (held, not dropped: tried again on the next tick);
- no incident yet and something fires: ``firing`` (a new incident, keyed by the group and
  the first alert's start); then news (an alert newly firing, an effect joining its cause,
  or an alert that was said firing resolving) makes an ``update`` while something still
  fires, else ``resolved``; no news, still firing and ``repeat_every`` passed: ``repeat``;
- a ``repeat`` of an acknowledged incident is not sent (:meth:`FlushPlan.acknowledged`);
- ``resolved`` is not sent to a receiver with ``send_resolved`` off, but still closes the
  incident for the Slack actions;
- resolved alerts leave the group; a group with no alerts left is removed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from agent.alert import Alert
from agent.alerting.groupstate import digest
from agent.alerting.routing import Route, in_quiet_hours, time_muted

__all__ = ["FlushFacts", "FlushPlan", "plan_flush"]


@dataclass(frozen=True)
class FlushFacts:
    """A due group as the planner sees it (nothing here is changed by planning)."""

    key: str  # the group's key: part of its incident's key
    alerts: Sequence[Alert]
    notified: Mapping[str, str]  # fingerprint -> firing | muted | linked (what was said)
    incident: str | None
    seq: int
    last_notify: float | None
    muted: Collection[str] = ()  # firing fingerprints a silence or inhibition mutes now
    away: Collection[str] = ()  # fingerprints said under their cause in another group
    joined: Collection[str] = ()  # effects new to this group's cause: news for its thread
    repeat_every: float = 0.0
    next_every: float = 0.0  # how long until the next flush after this one
    send_resolved: bool = True


@dataclass(frozen=True)
class FlushPlan:
    """The outcome of a due flush: what to queue and the group's state after it."""

    held: bool = False  # quiet hours or a mute time interval: only ``notified`` changes
    event: str | None = None  # firing | update | repeat | resolved: what the group has to say
    send: bool = False  # whether a notification goes out (``event`` and not a muted resolve)
    shown: tuple[Alert, ...] = ()  # the alerts the notification lists
    incident: str | None = None
    seq: int = 0
    dedup: str | None = None  # the outbox dedup key of the notification
    notified: Mapping[str, str] = dataclasses.field(default_factory=dict)
    newly_muted: int = 0  # alerts muted for the first time (the dispatcher's count)
    dropped: tuple[str, ...] = ()  # resolved fingerprints that leave the group
    empty: bool = False  # no alerts left: the group goes
    close_incident: bool = False  # every alert resolved: the Slack actions close the incident
    stamp_notify: bool = False  # set last_notify to now (a send, or a reminder held by an ack)
    next_flush: float | None = None  # None when held

    def acknowledged(self) -> "FlushPlan":
        """This plan when its incident was acknowledged: a ``repeat`` is not sent, and the
        question is asked again after another repeat interval."""
        if self.event != "repeat":
            return self
        return dataclasses.replace(self, event=None, send=False, shown=(), dedup=None,
                                   seq=self.seq - 1, stamp_notify=True)


def _marks(facts: FlushFacts) -> tuple[dict[str, str], int, list[Alert]]:
    """Mark muted and linked alerts; the rest are live (said here)."""
    notified = dict(facts.notified)
    newly_muted = 0
    live = []
    for alert in facts.alerts:
        if alert.state == "firing" and alert.fingerprint in facts.muted:
            if notified.get(alert.fingerprint) is None:
                newly_muted += 1  # counted once per alert; "firing" stays so it can resolve
                notified[alert.fingerprint] = "muted"
        elif alert.fingerprint in facts.away:
            notified[alert.fingerprint] = "linked"
        else:
            live.append(alert)
    return notified, newly_muted, live


def worst_severity(firing: Sequence[Alert]) -> str:
    """The severity quiet hours are judged by: critical if any alert is."""
    if any(a.severity == "critical" for a in firing):
        return "critical"
    return firing[0].severity if firing else "info"


def _event(facts: FlushFacts, said: Mapping[str, str], firing: Sequence[Alert],
           resolved: Sequence[Alert], now: float) -> str | None:
    if facts.incident is None:
        return "firing" if firing else None
    if resolved or facts.joined or any(said.get(a.fingerprint) != "firing" for a in firing):
        return "update" if firing else "resolved"  # news: said in the incident's thread
    if firing and _repeat_due(facts, now):
        return "repeat"
    return None


def _repeat_due(facts: FlushFacts, now: float) -> bool:
    return facts.last_notify is not None and now - facts.last_notify >= facts.repeat_every


def _numbered(facts: FlushFacts, event: str, firing: Sequence[Alert],
              now: float) -> tuple[str, int, str]:
    """The incident, sequence number and dedup key of a message that goes out: a ``firing``
    message opens an incident keyed by the group and its first alert's start."""
    seq = facts.seq + 1
    incident = facts.incident
    if event == "firing":
        incident = digest(facts.key, min((a.started or now) for a in firing), "incident")
    assert incident is not None
    return incident, seq, incident if event == "firing" else digest(incident, seq, event)


def _held(route: Route, now: float, firing: Sequence[Alert]) -> bool:
    return in_quiet_hours(route.quiet_hours, now, worst_severity(firing)) or time_muted(route, now)


def _settled(facts: FlushFacts, notified: dict[str, str],
             firing: Sequence[Alert]) -> tuple[str, ...]:
    """Mark what fires as said, and let resolved alerts leave; returns those that left."""
    notified.update((a.fingerprint, "firing") for a in firing)
    dropped = tuple(a.fingerprint for a in facts.alerts if a.state == "resolved")
    for fp in dropped:
        notified.pop(fp, None)
    return dropped


def plan_flush(facts: FlushFacts, route: Route, now: float) -> FlushPlan:
    """What a due group sends now, holds, repeats or resolves (module docstring)."""
    notified, newly_muted, live = _marks(facts)
    firing = [a for a in live if a.state == "firing"]
    if _held(route, now, firing):
        return FlushPlan(held=True, notified=notified, newly_muted=newly_muted,
                         incident=facts.incident, seq=facts.seq)
    # an alert said firing that resolved (not one just said under its cause elsewhere)
    resolved = [a for a in facts.alerts
                if a.state == "resolved" and notified.get(a.fingerprint) == "firing"]
    event = _event(facts, notified, firing, resolved, now)
    send = event is not None and (event != "resolved" or facts.send_resolved)
    incident, seq, dedup = (_numbered(facts, str(event), firing, now) if send
                            else (facts.incident, facts.seq, None))
    dropped = _settled(facts, notified, firing)
    return FlushPlan(
        event=event, send=send, shown=tuple(firing + resolved) if send else (),
        incident=incident, seq=seq, dedup=dedup, notified=notified, newly_muted=newly_muted,
        dropped=dropped, empty=len(dropped) == len(facts.alerts),
        # every alert resolved, muted ones too: the incident is over
        close_incident=event == "resolved" and len(dropped) == len(facts.alerts),
        stamp_notify=send, next_flush=now + facts.next_every)
