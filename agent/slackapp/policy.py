"""Who may act: a person's Slack user ID against the allow list of the action they pressed.

:func:`decide` is the pure rule. :class:`Usergroups` answers "who is in user group S…"
from Slack (``usergroups.users.list``, scope ``usergroups:read``), cached for a few minutes
so a burst of presses costs one call; when Slack cannot say, the press is refused with the
reason (never allowed by default).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from agent.secrets import scrub
from agent.slackapp.config import AllowConfig, AllowList

__all__ = ["Gate", "LookupFailed", "Permission", "Usergroups", "decide"]

log = logging.getLogger(__name__)
VERBS = {"acknowledge": "acknowledge", "silence": "silence", "unsilence": "unsilence",
         "chart": "request charts of"}


@dataclass(frozen=True)
class Permission:
    allowed: bool
    reason: str = ""  # for the person, when refused


class LookupFailed(Exception):
    """Slack could not say who is in a user group."""


def decide(allow: AllowList, action: str, user_id: str,
           members: Mapping[str, frozenset[str] | LookupFailed]) -> Permission:
    """Whether ``user_id`` may take ``action`` under ``allow``; ``members`` holds each of
    ``allow.usergroups``' members (or why they are not known)."""
    if allow.anyone or user_id in allow.users:
        return Permission(True)
    failed = []
    for group in allow.usergroups:
        found = members.get(group)
        if isinstance(found, frozenset) and user_id in found:
            return Permission(True)
        if isinstance(found, LookupFailed) or found is None:
            failed.append(f"{group}: {found or 'not looked up'}")
    verb = VERBS.get(action, action)
    if failed:
        return Permission(False, f"mlwarden could not check whether you may {verb} alerts "
                                 f"({'; '.join(failed)}); nothing was changed.")
    return Permission(False, f"You are not allowed to {verb} alerts from Slack; nothing was "
                             f"changed. Whoever runs mlwarden can add your member ID "
                             f"({user_id}) to slack_actions.allow.{action}.")


class Usergroups:
    """Members of Slack user groups, cached for ``ttl`` seconds."""

    def __init__(self, client: AsyncWebClient | None, *, ttl: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.ttl = ttl
        self.clock = clock
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._said: set[str] = set()

    async def members(self, group: str) -> frozenset[str] | LookupFailed:
        hit = self._cache.get(group)
        if hit is not None and self.clock() - hit[0] < self.ttl:
            return hit[1]
        async with self._locks.setdefault(group, asyncio.Lock()):
            hit = self._cache.get(group)
            if hit is not None and self.clock() - hit[0] < self.ttl:
                return hit[1]
            try:
                found = await self._fetch(group)
            except LookupFailed as exc:
                if hit is not None:  # Slack is away: the last known members still hold
                    return hit[1]
                if str(exc) not in self._said:
                    self._said.add(str(exc))
                    log.warning("slack_actions: %s", exc)
                return exc
            self._cache[group] = (self.clock(), found)
            return found

    async def _fetch(self, group: str) -> frozenset[str]:
        if self.client is None:
            raise LookupFailed(f"user group {group} needs a bot token (slack_actions.bot_token "
                               "or alerting.slack.token) to be looked up")
        try:
            resp = await self.client.usergroups_users_list(usergroup=group)
        except SlackApiError as exc:
            data = getattr(exc.response, "data", None)
            error = str(data.get("error", "")) if isinstance(data, dict) else \
                f"HTTP {getattr(exc.response, 'status_code', '?')}"
            if error == "missing_scope":
                raise LookupFailed("the bot token lacks usergroups:read, so user group "
                                   f"{group} cannot be looked up: add the scope and reinstall "
                                   "the app") from None
            if error == "no_such_subteam":
                raise LookupFailed(f"Slack knows no user group {group}") from None
            raise LookupFailed(f"usergroups.users.list for {group} failed: "
                               f"{error or exc}") from None
        except (SlackClientError, OSError, asyncio.TimeoutError) as exc:
            raise LookupFailed(f"usergroups.users.list for {group} failed: "
                               f"{scrub(str(exc)) or type(exc).__name__}") from None
        return frozenset(str(u) for u in resp.get("users") or ())


class Gate:
    """The allow lists of the config, with user groups resolved through Slack."""

    def __init__(self, allow: AllowConfig, usergroups: Usergroups | None) -> None:
        self.allow = allow
        self.usergroups = usergroups

    async def check(self, action: str, user_id: str) -> Permission:
        allow = self.allow.for_action(action)
        if allow.anyone or user_id in allow.users:
            return Permission(True)
        members: dict[str, frozenset[str] | LookupFailed] = {}
        for group in allow.usergroups:
            if self.usergroups is None:
                members[group] = LookupFailed("no bot token to look it up")
                continue
            members[group] = await self.usergroups.members(group)
            found = members[group]
            if isinstance(found, frozenset) and user_id in found:
                break
        return decide(allow, action, user_id, members)
