"""Applying actions: acknowledge, silence, unsilence, chart, as functions over two ports.

:func:`apply` takes one :class:`~agent.slackapp.model.ActionRequest`, the verdict on who
may act, the action store and the silence store, and returns an
:class:`~agent.slackapp.model.Outcome` (what changed, what to tell the person, what to say
in the thread). It does no network I/O and reads no clock: ``now`` is passed in, so the
same function serves Socket Mode, HTTP mode and tests.

Applied once: the action's key is claimed in the store first; a duplicate (Slack
redelivered the envelope, or another agent got it too) changes nothing. An agent that
claimed an action and died half-way leaves a claim that expires; the agent that takes it
over finds a silence the first one already made by the action's mark in the silence's
comment, instead of making a second one.

A silence matches the labels common to the incident's alerts (the rule's ``alertname``
and the group's labels among them), so it mutes this incident and whatever joins it; when
the alerts share no rule, each alert gets a silence on its own labels.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from agent.alerting.matchers import LabelMatcher
from agent.alerting.silences import Silence, SilenceNotFound
from agent.slackapp import blocks
from agent.slackapp.model import (
    CHART_WINDOWS,
    SILENCES,
    Ack,
    ActionRequest,
    ActionState,
    ChartRequest,
    Outcome,
    Target,
    common_labels,
)
from agent.slackapp.policy import Permission
from agent.slackapp.store import ActionStore

__all__ = ["Silences", "apply", "on_resolved", "silence_matchers", "state_of"]

log = logging.getLogger(__name__)


class Silences(Protocol):
    """The part of :class:`agent.alerting.silences.SilenceStore` actions use."""

    def add(self, matchers: Sequence[LabelMatcher], *, starts_at: float, ends_at: float, now: float,
            created_by: str = "", comment: str = "") -> Silence: ...

    def expire(self, silence_id: str, *, now: float) -> Silence: ...

    def list(self, *, now: float, include_expired: bool = False) -> list[Silence]: ...


def silence_matchers(target: Target) -> list[list[LabelMatcher]]:
    """One matcher set per silence to make for ``target`` (see the module's docstring)."""
    common = common_labels(target.alerts)
    if common.get("alertname"):
        return [[LabelMatcher(k, "=", v) for k, v in sorted(common.items()) if v != ""]]
    return [[LabelMatcher(k, "=", v) for k, v in sorted(a.labels.items()) if v != ""]
            for a in target.alerts]


def _mark(req: ActionRequest) -> str:
    return f"[action {req.key[:16]}]"


def state_of(target: Target, store: ActionStore, silences: Silences, now: float) -> ActionState:
    """What the target's message should show now (its ack, its active silences); once it
    resolved, the silences as they stood when it resolved (an 'until resolved' one ends then)."""
    made = store.silence_ids(target.id)
    until_resolved = set(store.silence_ids(target.id, until_resolved=True))
    at = now if target.resolved_at is None else min(now, target.resolved_at - 0.001)
    active = [s for s in silences.list(now=at) if s.id in made]
    latest = max(active, key=lambda s: s.ends_at, default=None)
    return ActionState(
        target_id=target.id, ack=target.ack,
        silenced_until=None if latest is None else latest.ends_at,
        silenced_by=_user_id(latest.created_by) if latest is not None else "",
        until_resolved=latest is not None and latest.id in until_resolved,
        resolved=target.resolved_at is not None,
    )


def _user_id(created_by: str) -> str:
    # "ana (Slack U0ANA)" -> "U0ANA"
    return created_by.rsplit("Slack ", 1)[-1].rstrip(")") if "Slack " in created_by else ""


def apply(req: ActionRequest, *, permission: Permission, store: ActionStore,
          silences: Silences, now: float, until_resolved_max: float = 7 * 86400.0) -> Outcome:
    """Apply ``req`` once; see the module's docstring."""
    claim = store.claim(req, now=now)
    if not claim.mine:
        return Outcome(req, claim.status)
    if not permission.allowed:
        store.finish(req.key, state="refused", outcome="not allowed", now=now)
        return Outcome(req, "refused", reply=permission.reason)
    target = store.target(req.target_id)
    if target is None:
        store.finish(req.key, state="refused", outcome="unknown target", now=now)
        return Outcome(req, "refused", reply="mlwarden no longer knows this alert (its history "
                                             "was reset or pruned); nothing was changed.")
    try:
        if req.action == "acknowledge":
            return _acknowledge(req, target, store, now)
        if req.action == "silence":
            return _silence(req, target, store, silences, now, until_resolved_max,
                            takeover=claim.status == "takeover")
        if req.action == "unsilence":
            return _unsilence(req, target, store, silences, now)
        return _chart(req, target, store, now)
    except Exception:
        # a redelivery (or the person pressing again) may take it over at once; the silence
        # mark keeps a silence made before the failure from being made twice
        store.release(req.key, now=now)
        raise


def _done(req: ActionRequest, store: ActionStore, now: float, outcome: str,
          silence_ids: Sequence[str] = ()) -> None:
    store.finish(req.key, state="done", outcome=outcome, now=now, silence_ids=silence_ids)


def _acknowledge(req: ActionRequest, target: Target, store: ActionStore, now: float) -> Outcome:
    if target.resolved_at is not None:
        _done(req, store, now, "resolved already")
        return Outcome(req, "noop", reply="This incident has resolved; there is nothing to "
                                          "acknowledge.", target=target)
    if target.ack is not None:
        _done(req, store, now, f"acknowledged already by {target.ack.by}")
        return Outcome(req, "noop", reply=blocks.ack_line(target.ack) + ".", target=target)
    mine = Ack(req.user_name or req.user_id, req.user_id, now)
    stood = store.acknowledge(target.id, mine, action_key=req.key)
    target = store.target(target.id) or target
    if stood != mine:  # someone else's acknowledgement won the race
        _done(req, store, now, f"acknowledged already by {stood.by if stood else '?'}")
        return Outcome(req, "noop", reply=blocks.ack_line(stood) + "." if stood else None,
                       target=target)
    _done(req, store, now, "acknowledged")
    line = blocks.ack_line(mine)
    return Outcome(req, "applied", reply=f"{line}. Reminders stop for this incident.",
                   thread=f"{line}. Reminders stop for this incident.", target=target,
                   changed=True)


def _silence(req: ActionRequest, target: Target, store: ActionStore, silences: Silences,
             now: float, until_resolved_max: float, *, takeover: bool) -> Outcome:
    if target.resolved_at is not None:
        _done(req, store, now, "resolved already")
        return Outcome(req, "noop", reply="This incident has resolved; a silence would mute "
                                          "nothing of it. Nothing was changed.", target=target)
    length = SILENCES[req.arg]
    ends = now + (until_resolved_max if length is None else length)
    made: list[Silence] = []
    if takeover:  # an agent that died half-way may have made them already
        made = [s for s in silences.list(now=now, include_expired=True)
                if _mark(req) in s.comment]
    if not made:
        what = "until resolved" if length is None else f"for {req.arg}"
        for matchers in silence_matchers(target):
            made.append(silences.add(
                matchers, starts_at=now, ends_at=ends, now=now, created_by=req.who,
                comment=f"from Slack, {what}: {target.describe()} {_mark(req)}"))
    ids = [s.id for s in made]
    _done(req, store, now, f"silenced until {ends:.0f}", silence_ids=ids)
    line = blocks.silence_line(req.user_id, ends, until_resolved=length is None,
                               length="" if length is None else req.arg)
    shown = "  ".join(" ".join(f"`{m}`" for m in s.matchers) for s in made)
    return Outcome(req, "applied", reply=f"{line}. Matching {shown}.",
                   thread=f"{line}. Matching {shown}.", target=target, changed=True)


def _unsilence(req: ActionRequest, target: Target, store: ActionStore, silences: Silences,
               now: float) -> Outcome:
    made = set(store.silence_ids(target.id))
    ended = _expire(made, silences, now)
    if not ended:
        _done(req, store, now, "no active silence")
        return Outcome(req, "noop", reply="No silence made from this message is active "
                                          "(`mlwarden silence list` shows the others).",
                       target=target)
    _done(req, store, now, f"ended {len(ended)} silence(s)", silence_ids=ended)
    line = blocks.unsilence_line(req.user_id, len(ended))
    return Outcome(req, "applied", reply=line + ".", thread=line + ".", target=target,
                   changed=True)


def _expire(ids: set[str], silences: Silences, now: float) -> list[str]:
    ended = []
    for silence in silences.list(now=now):
        if silence.id in ids:
            try:
                silences.expire(silence.id, now=now)
            except SilenceNotFound:
                continue
            ended.append(silence.id)
    return ended


def _chart(req: ActionRequest, target: Target, store: ActionStore, now: float) -> Outcome:
    _done(req, store, now, "chart requested")
    return Outcome(req, "applied", reply=blocks.chart_reply(target, req.arg),
                   chart=ChartRequest(target, CHART_WINDOWS[req.arg]), target=target)


def on_resolved(target_id: str, *, store: ActionStore, silences: Silences,
                now: float) -> list[str]:
    """The target's incident resolved: close it and end its 'until resolved' silences.

    Returns the ids of the silences ended. Safe to call again (the second call ends nothing).
    """
    store.close(target_id, now=now)
    return _expire(set(store.silence_ids(target_id, until_resolved=True)), silences, now)
