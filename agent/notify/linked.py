"""A notification that carries causes (``Notification.causes``) in words: the cause first,
what it explains and why, effects joining later as thread replies, and the resolution.

The texts are :mod:`agent.causes.render`'s; this module only lays them out for each
medium: Block Kit (Slack bot and webhook), the message text, the thread reply of an update
and the console's plain text. Alerts of the group that no cause explains (the group may
hold more than the cause) are still shown as ordinary alerts after the causes.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from agent.causes.model import Explanation
from agent.causes.render import joined_text, linked_blocks, linked_text, resolved_text
from agent.notify.base import Alert, Notification
from agent.notify.render import LIMITS, _alert_section, _cut, _value_line, escape

__all__ = ["causes_blocks", "causes_plain", "causes_reply", "causes_text", "explanations"]

MAX_CAUSES = 5
MAX_OTHERS = 6


def explanations(note: Notification) -> list[tuple[Explanation, set[str]]]:
    """The explanations of ``note`` with the effects new to it; an effect that paged on its
    own before its cause came says so in its reason."""
    out = []
    for doc in note.causes or ():
        x = Explanation.from_json(doc["explanation"])
        paged = set(doc.get("paged") or ())
        if paged:
            x = dataclasses.replace(x, links=tuple(
                dataclasses.replace(i, reason=f"{i.reason}; it paged on its own")
                if str(i.effect.key) in paged else i for i in x.links))
        out.append((x, set(doc.get("new") or ())))
    return out


def _others(note: Notification, xs: list[tuple[Explanation, set[str]]]) -> list[Alert]:
    """The note's alerts that are not one of its causes or their effects (a group by node
    may hold a cause and its effects)."""
    said = {str(x.cause.key) for x, _ in xs} | {str(i.effect.key) for x, _ in xs
                                               for i in x.links}
    return [a for a in note.alerts if a.fingerprint not in said]


def _said(x: Explanation, text: Any) -> str:
    if x.cause.until is not None:
        return resolved_text(x.cause, x.kind, x.links, escape=text)
    if not x.links:
        head = linked_text(x, escape=text).removesuffix("Explains: ")
        return head + "Explains: nothing that still fires"
    return linked_text(x, escape=text)


def _title(xs: list[tuple[Explanation, set[str]]]) -> str:
    """"[FIRING] Cause: GpuXidCritical explains 3 alerts" (the header, the console's headline)."""
    if all(x.cause.until is not None for x, _ in xs):
        return f"[RESOLVED] Cause: {xs[0][0].cause.rule}"
    effects = sum(len(x.links) for x, _ in xs)
    return (f"[FIRING] Cause: {xs[0][0].cause.rule} explains {effects} "
            f"alert{'s' if effects != 1 else ''}")


def causes_text(note: Notification, now: float, late_note: str | None = None) -> str:
    """The message's ``text`` (notifications, screen readers): the first cause in one line."""
    xs = explanations(note)
    text = _said(xs[0][0], escape)
    if len(xs) > 1:
        text += f" (+{len(xs) - 1} more causes)"
    if late_note:
        text += f" ({late_note})"
    return _cut(text, LIMITS["message_text"])


def causes_blocks(note: Notification, now: float, *, late_note: str | None = None,
                  footer: str = "mlwarden") -> list[dict[str, Any]]:
    """The message as Block Kit: per cause, the cause and its effects with why each was
    linked (or its resolution); then the group's other alerts; then the footer."""
    xs = explanations(note)
    title = _title(xs)
    blocks: list[dict[str, Any]] = [{"type": "header", "text": {
        "type": "plain_text", "text": _cut(title, LIMITS["header_text"] - 4), "emoji": True}}]
    for x, _ in xs[:MAX_CAUSES]:
        if x.cause.until is not None or not x.links:
            blocks.append({"type": "section", "text": {
                "type": "mrkdwn", "text": _cut(_said(x, escape), LIMITS["section_text"])}})
        else:
            blocks.extend(b for b in linked_blocks(x, escape=escape) if b["type"] == "section")
        blocks.append({"type": "divider"})
    others = _others(note, xs)
    for alert in others[:MAX_OTHERS]:
        blocks.extend(_alert_section(alert, now, note.group_labels))
        blocks.append({"type": "divider"})
    if blocks[-1]["type"] == "divider":
        blocks.pop()
    tail = ["Linked by mlwarden's cause graph · times UTC", footer]
    more = max(0, len(xs) - MAX_CAUSES) + max(0, len(others) - MAX_OTHERS)
    if more:
        tail.insert(0, f"and {more} more")
    if late_note:
        tail.append(f":hourglass: {late_note}")
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(tail)}]})
    return blocks


def causes_reply(note: Notification, now: float, late_note: str | None = None) -> str | None:
    """The thread reply of an update: each effect that joined, each cause that resolved
    (with what still fires), then the other alerts' changes; None when no cause has news."""
    parts = []
    for x, new in explanations(note):
        if x.cause.until is not None:
            parts.append(":white_check_mark: " + _said(x, escape))
            continue
        parts += [joined_text(i, escape=escape) for i in x.links if str(i.effect.key) in new]
    if not parts:
        return None
    for alert in _others(note, explanations(note))[:MAX_OTHERS]:
        summary = escape(_cut(alert.annotations.get("summary") or alert.rule, 200))
        parts.append(f"• {alert.state}: {summary} {_value_line(alert, now)}".rstrip())
    if late_note:
        parts.append(f":hourglass: {late_note}")
    return _cut("\n".join(parts), LIMITS["section_text"])


def causes_plain(note: Notification, now: float, late_note: str | None = None) -> str:
    """Console text: the causes in words, then the other alerts one per line."""
    from agent.notify.render import HIDDEN_LABELS

    xs = explanations(note)
    lines = [_title(xs) + (f" ({late_note})" if late_note else "")]
    for x, new in xs:
        lines.append("  " + _said(x, lambda s: s))
        for item in x.links:
            mark = "joined: " if str(item.effect.key) in new and note.event != "firing" else ""
            lines.append(f"    - {mark}{item.effect.rule}: {item.reason}")
    for alert in _others(note, xs):
        labels = ",".join(f"{k}={_cut(v, 80)}" for k, v in sorted(alert.labels.items())
                          if k not in HIDDEN_LABELS)
        summary = _cut(alert.annotations.get("summary") or alert.rule, 200)
        lines.append(f"  {alert.state.upper():8} {alert.severity:8} {summary} {{{labels}}} "
                     f"{_value_line(alert, now).replace('*', '')}".rstrip())
    return "\n".join(lines)
