"""What the Slack notifier does (agent.slackapp.wiring), done by hand for tests of the
receiving side alone: register an incident's target and render its message (the
notifier's blocks plus the action blocks)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Engine

from agent.alert import Alert, alert_labels, fingerprint
from agent.alerting.silences import SilenceStore
from agent.history.db import create_schema, make_engine
from agent.notify.base import Notification
from agent.notify.render import blocks_for
from agent.slackapp.blocks import action_blocks
from agent.slackapp.handlers import state_of
from agent.slackapp.model import AlertRef, Target
from agent.slackapp.store import ActionStore

NOW = 1_700_000_000.0


def engine_for(url: str) -> Engine:
    engine = make_engine(url)
    create_schema(engine)
    return engine


def alert(rule: str = "EndpointDown", severity: str = "critical",
          **labels: str) -> AlertRef:
    labels = labels or {"check": "ranker", "model": "ranker"}
    full = alert_labels(rule, labels, severity)
    return AlertRef(fingerprint(rule, labels), rule, full, "mlwarden.endpoint.up",
                    (dict(labels),))


def incident(store: ActionStore, *alerts: AlertRef, receiver: str = "oncall",
             incident: str = "inc-1", group_labels: Mapping[str, str] | None = None,
             now: float = NOW) -> Target:
    alerts = alerts or (alert(),)
    labels = dict(group_labels) if group_labels is not None else \
        {"alertname": alerts[0].rule, "model": alerts[0].labels.get("model", "")}
    return store.register(receiver=receiver, group_key=f"{{}}:{labels}", incident=incident,
                          group_labels=labels, alerts=alerts, now=now)


def message(target: Target, store: ActionStore, silences: SilenceStore,
            now: float) -> list[dict[str, Any]]:
    """The alert message as the notifier posts it."""
    infos = [Alert(a.fingerprint, a.rule, dict(a.labels), "firing",
                   severity=a.labels.get("severity", "warning"),
                   annotations={"summary": f"{a.labels.get('model')} is down",
                                "runbook_url": "https://runbooks.example/down"},
                   value=0.0, threshold=1.0, fired_at=now - 120, metric=a.metric)
             for a in target.alerts]
    note = Notification(target.receiver, target.group_key, dict(target.group_labels), "firing",
                        target.incident, infos, now)
    return blocks_for(note, now) + action_blocks(state_of(target, store, silences, now))


def silences_of(silences: SilenceStore, now: float) -> list[Any]:
    return silences.list(now=now)


def matchers_of(silence: Any) -> Sequence[str]:
    return sorted(str(m) for m in silence.matchers)


def note() -> Notification:
    """A notification as the dispatcher makes it (one firing alert)."""
    alert = Alert("f" * 32, "EndpointDown", {"alertname": "EndpointDown", "model": "ranker",
                                             "severity": "critical"}, "firing",
                  severity="critical", annotations={"summary": "ranker is down",
                                                    "runbook_url": "https://rb.example/x"},
                  value=0.0, threshold=1.0, fired_at=NOW - 60)
    return Notification("oncall", "g", {"alertname": "EndpointDown"}, "firing", "inc", [alert],
                        NOW)
