"""The Block Kit of alert actions: the buttons, the line that says who took or silenced an
alert, and the texts of replies, as pure functions a notifier calls.

Blocks are built with slack-sdk's models (``slack_sdk.models.blocks``), whose ``to_dict``
validates Slack's published limits, so a shape Slack would refuse fails here, in a test,
not at 3 a.m. Times are Slack date tokens (``<!date^1700000000^{time}|10:42 UTC>``): each
reader sees their own time zone, and clients that cannot render the token show the UTC
fallback. People are mentions (``<@U0ANA>``), which Slack shows as their name.

Every block of ours has a ``block_id`` starting with ``mlwarden:``, so an edit can find
and replace them in a message built by someone else (:func:`with_action_blocks`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    ButtonElement,
    ContextBlock,
    MarkdownTextObject,
    PlainTextObject,
)

from agent.slackapp.model import (
    Ack,
    ActionState,
    Target,
    action_id,
    button_value,
)

__all__ = [
    "BLOCK_PREFIX", "MAX_BLOCKS", "ack_line", "action_blocks", "chart_reply", "mention",
    "silence_line", "slack_time", "unsilence_line", "with_action_blocks",
]

BLOCK_PREFIX = "mlwarden:"
MAX_BLOCKS = 50  # Slack's limit per message
_SILENCE_LABELS = (("1h", "Silence 1h"), ("4h", "Silence 4h"),
                   ("resolved", "Silence until resolved"))


def mention(user_id: str) -> str:
    return f"<@{user_id}>"


def slack_time(ts: float, token: str = "{time}") -> str:
    """A Slack date token for ``ts`` with a UTC fallback (``10:42 UTC``)."""
    when = datetime.fromtimestamp(ts, timezone.utc)
    fallback = when.strftime("%H:%M UTC") if token == "{time}" else \
        when.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(ts)}^{token}|{fallback}>"


def ack_line(ack: Ack) -> str:
    """``Acknowledged by @ana at 10:42``."""
    return f":eyes: Acknowledged by {mention(ack.by_id)} at {slack_time(ack.at)}"


def silence_line(by_id: str, until: float, *, until_resolved: bool, length: str = "") -> str:
    """The silence as the message and the thread say it."""
    if until_resolved:
        return (f":mute: Silenced by {mention(by_id)} until the alert resolves (at the latest "
                f"{slack_time(until, '{date_short_pretty} {time}')})")
    span = f" for {length}" if length else ""
    return (f":mute: Silenced by {mention(by_id)}{span}, until "
            f"{slack_time(until, '{date_short_pretty} {time}')}")


def unsilence_line(by_id: str, count: int) -> str:
    noun = "silence" if count == 1 else "silences"
    return f":loud_sound: Unsilenced by {mention(by_id)} ({count} {noun} ended)"


def chart_reply(target: Target, window: str) -> str:
    return f"The chart of {target.describe()} over the last {window} will be posted in the thread."


def _button(text: str, action: str, arg: str, target_id: str, style: str | None = None) -> \
        ButtonElement:
    return ButtonElement(text=PlainTextObject(text=text, emoji=False),
                         action_id=action_id(action, arg), value=button_value(target_id),
                         style=style)


def action_blocks(state: ActionState) -> list[dict[str, Any]]:
    """The blocks a message about ``state.target_id`` ends with.

    A context line when someone acknowledged or silenced it; the buttons while it fires
    (Acknowledge until someone did; Silence 1h / 4h / until resolved, or Unsilence while a
    silence made from it is active; Chart 24h). A resolved incident keeps the line and
    loses the buttons.
    """
    tid = state.target_id
    out: list[dict[str, Any]] = []
    lines = []
    if state.ack is not None:
        lines.append(ack_line(state.ack))
    if state.silenced_until is not None:
        lines.append(silence_line(state.silenced_by, state.silenced_until,
                                  until_resolved=state.until_resolved))
    if lines:
        out.append(ContextBlock(block_id=f"{BLOCK_PREFIX}state:{tid}", elements=[
            MarkdownTextObject(text=line) for line in lines]).to_dict())
    if state.resolved:
        return out
    buttons = []
    if state.ack is None:
        buttons.append(_button("Acknowledge", "acknowledge", "", tid, style="primary"))
    if state.silenced:
        buttons.append(_button("Unsilence", "unsilence", "", tid))
    else:
        buttons.extend(_button(text, "silence", arg, tid) for arg, text in _SILENCE_LABELS)
    buttons.append(_button("Chart 24h", "chart", "24h", tid))
    out.append(ActionsBlock(block_id=f"{BLOCK_PREFIX}actions:{tid}",
                            elements=buttons).to_dict())
    return out


def _ours(block: Mapping[str, Any]) -> bool:
    return str(block.get("block_id", "")).startswith(BLOCK_PREFIX)


def with_action_blocks(blocks: Sequence[Mapping[str, Any]],
                       state: ActionState) -> list[dict[str, Any]]:
    """``blocks`` (a posted message's, as a payload's ``message.blocks`` carries them) with
    our blocks replaced by those of ``state``: where ours were, else at the end.

    A message that would pass Slack's 50 blocks loses its own last blocks before ours
    (the footer goes first): the buttons are what the reader needs.
    """
    mine = action_blocks(state)
    kept = [dict(b) for b in blocks]
    at = next((i for i, b in enumerate(kept) if _ours(b)), len(kept))
    kept = [b for b in kept if not _ours(b)]
    at = min(at, len(kept))
    room = MAX_BLOCKS - len(mine)
    if len(kept) > room:
        kept = kept[:room]
        at = min(at, len(kept))
    return kept[:at] + mine + kept[at:]
