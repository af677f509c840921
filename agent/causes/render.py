"""Linked alerts in words: one message with the cause first, the effects that join it later,
and what is still firing when the cause resolves.

Pure functions of an :class:`~agent.causes.model.Explanation` (or a link), so notifiers only
pick where a text goes (a new message, a thread reply). Each alert is said with its kind's
first fitting phrase from the graph ("GPU 3 on gpu-node-7 fell off the bus (XID 79) at
10:02"), else its rule's summary. Times are HH:MM in ``tz`` (UTC unless told), with the
date when it is not the cause's day.

Values come from data (labels), so every text passes through ``escape``: the Slack notifier
hands in its own (``agent.notify.render.escape``); the console needs none. Block Kit output
stays within Slack's published limits (section text 3000 characters, 50 blocks), listing at
most ``MAX_SHOWN`` effects and "and N more".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timezone, tzinfo
from typing import Any

from agent.causes.graph import CauseGraph, builtin_graph
from agent.causes.model import Explanation, Link, Signal

__all__ = ["MAX_SHOWN", "describe", "joined_text", "linked_blocks", "linked_text",
           "resolved_text"]

MAX_SHOWN = 10
SECTION_LIMIT = 3000   # Block Kit: a section's text
TEXT_LIMIT = 4000      # a message's `text`
Escape = Callable[[str], str]


def _plain(text: str) -> str:
    return text


def _clock(ts: float, tz: tzinfo, day_of: float | None = None) -> str:
    when = datetime.fromtimestamp(ts, tz)
    if day_of is not None and datetime.fromtimestamp(day_of, tz).date() != when.date():
        return when.strftime("%b %d %H:%M")
    return when.strftime("%H:%M")


def describe(signal: Signal, kind: str | None, *, graph: CauseGraph | None = None,
             tz: tzinfo = timezone.utc, day_of: float | None = None, as_cause: bool = False) -> str:
    """One alert in words: its kind's first fitting phrase, else its summary (or rule name)
    with when it started ("at" for a cause, "since" for an effect)."""
    graph = graph or builtin_graph()
    since = _clock(signal.since, tz, day_of)
    found = graph.kinds.get(kind or "")
    phrase = found.phrase(signal) if found is not None else None
    if phrase is not None:
        context = {**signal.label_dict, "since": since, "summary": signal.summary}
        return phrase.text.format(**context)
    return f"{signal.summary or signal.rule} {'at' if as_cause else 'since'} {since}"


def linked_text(explanation: Explanation, *, graph: CauseGraph | None = None,
                tz: tzinfo = timezone.utc, escape: Escape = _plain) -> str:
    """The message in one paragraph (console; Slack's notification text):
    "Cause: GPU 3 on gpu-node-7 fell off the bus (XID 79) at 10:02. Explains: model ranker
    failing probes since 10:02; task train_ranker.fit failed on gpu-node-7"."""
    graph = graph or builtin_graph()
    cause = _cut(escape(describe(explanation.cause, explanation.kind, graph=graph, tz=tz,
                                 as_cause=True)), 500)
    head = f"Cause: {cause}. Explains: "
    effects = [_cut(escape(describe(item.effect, item.effect_kind, graph=graph, tz=tz,
                                    day_of=explanation.cause.since)), 300)
               for item in explanation.links[:MAX_SHOWN]]
    shown = _fit(effects, TEXT_LIMIT - len(head), len("; "))
    more = len(explanation.links) - shown
    return head + "; ".join(effects[:shown]) + (f"; and {more} more" if more else "")


def linked_blocks(explanation: Explanation, *, escape: Escape, graph: CauseGraph | None = None,
                  tz: tzinfo = timezone.utc) -> list[dict[str, Any]]:
    """The message as Block Kit: the cause, then each effect with why it was linked."""
    graph = graph or builtin_graph()
    cause = _cut(escape(describe(explanation.cause, explanation.kind, graph=graph, tz=tz,
                                 as_cause=True)), 500)
    lines = []
    for item in explanation.links[:MAX_SHOWN]:
        said = _cut(escape(describe(item.effect, item.effect_kind, graph=graph, tz=tz,
                                    day_of=explanation.cause.since)), 300)
        lines.append(f"• {said}  _({_cut(escape(item.reason), 200)})_")
    head = "*Explains:*\n"
    shown = _fit(lines, SECTION_LIMIT - len(head), len("\n"))
    more = len(explanation.links) - shown
    body = head + "\n".join(lines[:shown]) + (f"\nand {more} more" if more else "")
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*Cause:* {cause}"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": body}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": (
            f"Linked by mlwarden's cause graph · times {_zone(tz)}")}]},
    ]


def joined_text(link: Link, *, graph: CauseGraph | None = None, tz: tzinfo = timezone.utc,
                escape: Escape = _plain) -> str:
    """An effect that started after the cause's message went out: its thread reply."""
    said = describe(link.effect, link.effect_kind, graph=graph, tz=tz, day_of=link.cause.since)
    return (f"Also explained by this cause: {_cut(escape(said), 1000)} "
            f"({_cut(escape(link.reason), 500)})")


def resolved_text(cause: Signal, kind: str, still_firing: Sequence[Link], *,
                  graph: CauseGraph | None = None, tz: tzinfo = timezone.utc,
                  escape: Escape = _plain) -> str:
    """The cause resolved: say so, and name plainly what it explained that still fires."""
    said = _cut(escape(describe(cause, kind, graph=graph, tz=tz, as_cause=True)), 500)
    when = f" at {_clock(cause.until, tz, cause.since)}" if cause.until is not None else ""
    head = f"Cause resolved{when}: {said}."
    if not still_firing:
        return f"{head} Nothing it explained is still firing."
    effects = [_cut(escape(describe(item.effect, item.effect_kind, graph=graph, tz=tz,
                                    day_of=cause.since)), 300) for item in still_firing[:MAX_SHOWN]]
    head = _cut(head, 600) + " Still firing, now on their own: "
    shown = _fit(effects, SECTION_LIMIT - len(head), len("; "))
    more = len(still_firing) - shown
    return head + "; ".join(effects[:shown]) + (f"; and {more} more" if more else "") + "."


def _fit(items: Sequence[str], room: int, sep: int, reserve: int = 20) -> int:
    """How many of ``items`` fit in ``room`` characters (joined by ``sep`` characters),
    keeping ``reserve`` for "and N more"."""
    used = 0
    for count, item in enumerate(items):
        used += len(item) + (sep if count else 0)
        if used > room - reserve:
            return count
    return len(items)


def _zone(tz: tzinfo) -> str:
    return "UTC" if tz is timezone.utc else str(tz)


def _cut(text: str, limit: int = SECTION_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
