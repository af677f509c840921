"""The console receiver: notifications on stdout (the embedded default, so an agent with no
Slack configured still shows its alerts somewhere).

On a terminal it prints the human table (a headline and one line per alert). Anywhere else
(a container, a pipe, a file, systemd's journal) stdout is read by a log pipeline that
expects one JSON object per line, like the agent's logs, so each notification is one JSON
record: the headline as ``msg`` and the alerts, with their labels and annotations, as data.
``agent.log_format`` decides for both (``auto``: JSON unless stdout is a terminal).
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from typing import Any, TextIO

from agent.logs import json_line, wants_json
from agent.notify.base import Alert, Notification, Notifier, SendContext
from agent.notify.render import plain_text

__all__ = ["ConsoleNotifier", "alert_record"]

_LEVEL = {"critical": "error", "error": "error", "warning": "warning"}


class ConsoleNotifier(Notifier):
    type = "console"

    def __init__(self, name: str = "console", stream: TextIO | None = None) -> None:
        self.name = name
        self.description = "stdout"
        self._stream = stream

    async def send(self, note: Notification, ctx: SendContext) -> dict[str, Any]:
        stream = self._stream or sys.stdout
        if wants_json(stream):
            text = alert_record(note, ctx.now, ctx.late_note)
        else:
            text = plain_text(note, ctx.now, ctx.late_note)
        print(text, file=stream, flush=True)
        return {"printed": True}


def alert_record(note: Notification, now: float, late_note: str | None = None) -> str:
    """One notification as one JSON log line (``logger`` ``mlwarden.alerts``)."""
    headline = plain_text(note, now, late_note).split("\n", 1)[0]
    firing = note.firing
    worst = "info" if not firing else min(
        (a.severity for a in firing), key=lambda s: ["critical", "error", "warning"].index(s)
        if s in ("critical", "error", "warning") else 3)
    return json_line(_LEVEL.get(worst, "info"), "mlwarden.alerts", headline, now,
                     receiver=note.receiver, event=note.event, group=note.group_labels,
                     incident=note.incident, late=late_note,
                     alerts=[_alert(a) for a in note.alerts],
                     **({"causes": note.causes} if note.causes else {}))


def _alert(a: Alert) -> dict[str, Any]:
    return {"alertname": a.rule, "state": a.state, "severity": a.severity,
            "labels": dict(a.labels), "annotations": dict(a.annotations),
            "value": a.value, "threshold": a.threshold,
            "since": _iso(a.started), "resolved_at": _iso(a.resolved_at)}


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
