"""Alert messages as Slack Block Kit, Slack mrkdwn fallback text and plain console text.

Every value that comes from data (labels, annotations, DAG names, error messages) passes
through :func:`escape` (``&``, ``<``, ``>``: Slack's control characters, so a DAG named
``<!channel>`` cannot ping a channel) and label values are shown as inline code, so
``*bold*`` in a label stays literal. Messages are cut to Block Kit's limits with
"and N more" rather than rejected by Slack.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from agent.notify.base import Alert, Notification

__all__ = [
    "LIMITS",
    "blocks_for",
    "escape",
    "code",
    "fallback_text",
    "plain_text",
    "sparkline",
    "human_duration",
    "thread_reply",
]

# Slack's published Block Kit limits (https://docs.slack.dev/reference/block-kit/blocks)
LIMITS = {
    "blocks": 50,
    "section_text": 3000,
    "section_fields": 10,
    "field_text": 2000,
    "header_text": 150,
    "context_elements": 10,
    "button_text": 75,
    "button_url": 3000,
    "actions_elements": 25,
    "message_text": 4000,
}
MAX_ALERTS_SHOWN = 10
HIDDEN_LABELS = {"alertname", "alert", "severity", "__metric__"}
_EMOJI = {
    "critical": ":red_circle:",
    "error": ":red_circle:",
    "warning": ":large_orange_circle:",
    "info": ":large_blue_circle:",
}
_FMT = re.compile(r"(?<![\w])([*_~`])|([*_~`])(?![\w])")
_LINKS = (
    ("runbook_url", "Runbook"),
    ("dashboard_url", "Dashboard"),
    ("log_url", "Airflow log"),
    ("url", "Link"),
)


def escape(text: object) -> str:
    """Escape Slack's control characters and defuse formatting marks at word edges."""
    out = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    # a zero-width space next to a mark at a word edge stops Slack from reading it as bold/italic/code
    return _FMT.sub(lambda m: "\u200b" + (m.group(1) or m.group(2)) + "\u200b", out)


def code(text: object, limit: int = 200) -> str:
    """A data value as inline code (shown literally), escaped and cut to ``limit``."""
    value = _cut(str(text), limit).replace("`", "'")
    value = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\n", " ")
    return f"`{value}`" if value else "`(empty)`"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"


def human_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m" if minutes else f"{hours}h"
    return f"{hours // 24}d{hours % 24}h"


def _clock(ts: float | None) -> str:
    if ts is None:
        return "?"
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _num(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.4g}"


def _title(note: Notification) -> str:
    rules = sorted({a.rule for a in note.alerts})
    name = rules[0] if len(rules) == 1 else f"{len(rules)} alerts"
    if note.event == "resolved":
        return f"[RESOLVED] {name}"
    return f"[FIRING:{len(note.firing)}] {name}"


def _worst(alerts: Sequence[Alert]) -> str:
    order = ["critical", "error", "warning", "info"]
    sev = [a.severity for a in alerts] or ["info"]
    return min(sev, key=lambda s: order.index(s) if s in order else len(order))


def _value_line(alert: Alert, now: float) -> str:
    parts = []
    if alert.value is not None:
        cmp = f" (threshold {_num(alert.threshold)})" if alert.threshold is not None else ""
        parts.append(f"value *{_num(alert.value)}*{cmp}")
    if alert.state == "resolved" and alert.resolved_at is not None:
        dur = human_duration(alert.resolved_at - (alert.started or alert.resolved_at))
        parts.append(f"resolved {_clock(alert.resolved_at)} after {dur}")
    elif alert.started is not None:
        parts.append(f"since {_clock(alert.started)} ({human_duration(now - alert.started)})")
    return " · ".join(parts)


def _alert_section(
    alert: Alert, now: float, group_labels: dict[str, str]
) -> list[dict[str, Any]]:
    summary = alert.annotations.get("summary") or alert.rule
    icon = (
        ":white_check_mark:"
        if alert.state == "resolved"
        else _EMOJI.get(alert.severity, ":warning:")
    )
    lines = [f"{icon} *{escape(_cut(summary, 500))}*"]
    desc = alert.annotations.get("description")
    if desc:
        lines.append(escape(_cut(desc, 1500)))
    line = _value_line(alert, now)
    if line:
        lines.append(line)
    section: dict[str, Any] = {
        "type": "section",
        "text": {"type": "mrkdwn", "text": _cut("\n".join(lines), 2900)},
    }
    shown = [
        (k, v)
        for k, v in sorted(alert.labels.items())
        if k not in HIDDEN_LABELS and group_labels.get(k) != v and v != ""
    ]
    fields = [
        {
            "type": "mrkdwn",
            "text": _cut(f"*{escape(_cut(k, 100))}*\n{code(v, 300)}", LIMITS["field_text"]),
        }
        for k, v in shown[: LIMITS["section_fields"]]
    ]
    if fields:
        section["fields"] = fields
    blocks = [section]
    buttons = []
    for key, label in _LINKS:
        url = alert.annotations.get(key, "")
        if url.startswith(("http://", "https://")) and len(url) <= LIMITS["button_url"]:
            buttons.append(
                {
                    "type": "button",
                    "text": {"type": "plain_text", "text": label},
                    "url": url,
                    "action_id": f"link-{key}",
                }
            )
    if buttons:
        blocks.append({"type": "actions", "elements": buttons})
    return blocks


def blocks_for(
    note: Notification,
    now: float,
    *,
    late_note: str | None = None,
    sparklines: dict[str, str] | None = None,
    footer: str = "mlwarden",
) -> list[dict[str, Any]]:
    """The Block Kit message of ``note``: header, one section per alert (cut to fit), context."""
    if note.causes:  # the cause first (agent.notify.linked)
        from agent.notify.linked import causes_blocks

        return causes_blocks(note, now, late_note=late_note, footer=footer)
    resolved_all = note.event == "resolved"
    icon = (
        ":white_check_mark:"
        if resolved_all
        else _EMOJI.get(_worst(note.firing or note.alerts), ":warning:")
    )
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": _cut(f"{_title(note)}", LIMITS["header_text"] - 4),
                "emoji": True,
            },
        },
    ]
    # a group_by label the alerts lack is empty in the group key: it says nothing, so it
    # is not shown (no "(empty)")
    present = {k: v for k, v in note.group_labels.items() if v != ""}
    if present:
        labels = "  ".join(f"{escape(_cut(k, 60))}={code(v, 120)}" for k, v in present.items())
        blocks.append(
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": _cut(f"{icon} {labels}", 2900)}],
            }
        )
    alerts = sorted(note.alerts, key=lambda a: (a.state != "firing", a.started or 0, a.fingerprint))
    shown = alerts[:MAX_ALERTS_SHOWN]
    for alert in shown:
        blocks.extend(_alert_section(alert, now, note.group_labels))
        spark = (sparklines or {}).get(alert.fingerprint)
        if spark:
            blocks.append(
                {"type": "context", "elements": [{"type": "mrkdwn", "text": _cut(spark, 2900)}]}
            )
        blocks.append({"type": "divider"})
    if blocks[-1]["type"] == "divider":
        blocks.pop()
    more = len(alerts) - len(shown)
    tail = [footer]
    if more > 0:
        tail.insert(0, f"and {more} more")
    if late_note:
        tail.append(f":hourglass: {late_note}")
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(tail)}]})
    assert len(blocks) <= LIMITS["blocks"]
    return blocks


def fallback_text(note: Notification, now: float, late_note: str | None = None) -> str:
    """The ``text`` of a message: notifications and screen readers show it."""
    if note.causes:
        from agent.notify.linked import causes_text

        return causes_text(note, now, late_note)
    firing = note.firing
    head = escape(_title(note))
    if firing:
        head += ": " + escape(_cut(firing[0].annotations.get("summary") or firing[0].rule, 300))
    if len(note.alerts) > 1:
        head += f" (+{len(note.alerts) - 1} more)"
    if late_note:
        head += f" ({late_note})"
    return _cut(head, LIMITS["message_text"])


def thread_reply(note: Notification, now: float, late_note: str | None = None) -> str:
    """The thread reply of an update, repeat or resolution."""
    if note.causes:  # an effect joined its cause, or the cause resolved
        from agent.notify.linked import causes_reply

        reply = causes_reply(note, now, late_note)
        if reply is not None:
            return reply
    parts = []
    if note.event == "resolved":
        starts = [a.started for a in note.alerts if a.started is not None]
        ends = [a.resolved_at for a in note.alerts if a.resolved_at is not None]
        dur = f" after {human_duration(max(ends) - min(starts))}" if starts and ends else ""
        parts.append(f":white_check_mark: Resolved{dur}.")
    elif note.event == "repeat":
        parts.append(f":repeat: Still firing: {len(note.firing)} alert(s).")
    else:
        parts.append(f":arrows_counterclockwise: Now firing: {len(note.firing)} alert(s).")
    for alert in note.alerts[:MAX_ALERTS_SHOWN]:
        summary = escape(_cut(alert.annotations.get("summary") or alert.rule, 200))
        parts.append(f"• {alert.state}: {summary} {_value_line(alert, now)}".rstrip())
    if len(note.alerts) > MAX_ALERTS_SHOWN:
        parts.append(f"and {len(note.alerts) - MAX_ALERTS_SHOWN} more")
    if late_note:
        parts.append(f":hourglass: {late_note}")
    return _cut("\n".join(parts), LIMITS["section_text"])


def plain_text(note: Notification, now: float, late_note: str | None = None) -> str:
    """Console output: one headline and one line per alert, no markup."""
    if note.causes:
        from agent.notify.linked import causes_plain

        return causes_plain(note, now, late_note)
    lines = [_title(note) + (f" ({late_note})" if late_note else "")]
    for alert in note.alerts:
        labels = ",".join(
            f"{k}={_cut(v, 80)}" for k, v in sorted(alert.labels.items()) if k not in HIDDEN_LABELS
        )
        summary = _cut(alert.annotations.get("summary") or alert.rule, 200)
        lines.append(
            f"  {alert.state.upper():8} {alert.severity:8} {summary} {{{labels}}} "
            f"{_value_line(alert, now).replace('*', '')}".rstrip()
        )
    return "\n".join(lines)


_SPARK = "▁▂▃▄▅▆▇█"


def sparkline(points: Sequence[tuple[float, float]], width: int = 30) -> str:
    """A text chart of ``points`` (the webhook's picture of the metric), bucketed to ``width``."""
    values = [v for _, v in points if v is not None and not math.isnan(v)]
    if not values:
        return ""
    if len(values) > width:
        size = len(values) / width
        values = [
            sum(chunk) / len(chunk)
            for chunk in (
                values[int(i * size) : max(int(i * size) + 1, int((i + 1) * size))]
                for i in range(width)
            )
        ]
    lo, hi = min(values), max(values)
    span = hi - lo
    if span == 0:
        return _SPARK[3] * len(values)
    return "".join(_SPARK[min(7, int((v - lo) / span * 7.999))] for v in values)
