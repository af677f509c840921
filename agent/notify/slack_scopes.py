"""Which Slack OAuth scopes each bot-mode feature needs, and what a token's scopes leave off.

Slack names a token's scopes in the ``X-OAuth-Scopes`` header of every Web API answer
(``auth.test`` needs no scope, so the agent asks it at start and on reload). Comparing them
with :data:`FEATURES` says, before the first alert, exactly which scope is missing and
which feature is off because of it, instead of finding out from a failed post at 3 a.m.
docs/alerting.md lists the same table (a test keeps the two equal).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = ["FEATURES", "Feature", "ScopeReport", "scopes_from_headers"]


@dataclass(frozen=True)
class Feature:
    """One thing the Slack receiver does; any one of ``scopes`` enables it."""

    name: str
    scopes: tuple[str, ...]
    methods: str  # the Web API methods it calls
    without: str  # what happens when it is off
    required: bool = False  # without it the receiver can do nothing
    by_name_only: bool = False  # needed only when the channel is configured by name


FEATURES: tuple[Feature, ...] = (
    Feature("posting", ("chat:write",), "chat.postMessage", "no alert can be posted",
            required=True),
    Feature("threads", ("chat:write",), "chat.postMessage with thread_ts",
            "updates, reminders and resolutions cannot be posted", required=True),
    Feature("editing", ("chat:write",), "chat.update",
            "the incident's message cannot show its current state", required=True),
    Feature("charts", ("files:write",), "files.getUploadURLExternal, files.completeUploadExternal",
            "alerts are posted without the chart of their series"),
    Feature("read-back", ("channels:history", "groups:history"),
            "conversations.history, conversations.replies",
            "after a crash or a lost answer an alert may be posted twice"),
    Feature("channel lookup", ("channels:read", "groups:read"), "conversations.list",
            "until the first post of a run names the channel's ID, read-back cannot find "
            "the channel (configure the channel's ID instead of its name to need no lookup)",
            by_name_only=True),
)
# legacy spellings Slack still reports for older apps
_ALIASES = {"chat:write:bot": "chat:write", "chat:write:user": "chat:write"}


def scopes_from_headers(headers: Mapping[str, str] | None) -> frozenset[str] | None:
    """The token's scopes from an answer's headers; None when Slack (or a proxy) sent none."""
    if not headers:
        return None
    value = next((v for k, v in headers.items() if k.lower() == "x-oauth-scopes"), None)
    if value is None:
        return None
    scopes = {s.strip() for s in str(value).split(",") if s.strip()}
    return frozenset(scopes | {_ALIASES[s] for s in scopes if s in _ALIASES})


@dataclass(frozen=True)
class ScopeReport:
    """What a token's scopes allow for one receiver."""

    scopes: frozenset[str]
    by_name: bool  # the channel is configured by #name, not by ID

    def lacks(self, feature: Feature) -> bool:
        if feature.by_name_only and not self.by_name:
            return False
        return not set(feature.scopes) & self.scopes

    def off(self) -> list[Feature]:
        """Features the token's scopes leave off."""
        return [f for f in FEATURES if self.lacks(f)]

    def allows(self, name: str) -> bool:
        return not any(f.name == name for f in self.off())

    @property
    def can_post(self) -> bool:
        return not any(f.required for f in self.off())

    def partial(self) -> list[str]:
        """Features that work in some channels only (one of two scopes missing)."""
        out = []
        for f in FEATURES:
            if len(f.scopes) > 1 and not self.lacks(f):
                missing = [s for s in f.scopes if s not in self.scopes]
                if missing:
                    out.append(f"{f.name} needs {' or '.join(f.scopes)}; without "
                               f"{', '.join(missing)} it works only where the other applies")
        return out

    def problems(self) -> list[str]:
        """One sentence per missing scope: which features it turns off and how to add it."""
        by_scope: dict[str, list[Feature]] = {}
        for f in self.off():
            by_scope.setdefault(" or ".join(f.scopes), []).append(f)
        return [
            f"the token lacks {scopes}: {_names(feats)} {'is' if len(feats) == 1 else 'are'} "
            f"off ({feats[0].without}); add it under OAuth & Permissions > Bot Token Scopes "
            "and reinstall the app"
            for scopes, feats in by_scope.items()
        ]


def _names(features: Iterable[Feature]) -> str:
    names = [f.name for f in features]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
