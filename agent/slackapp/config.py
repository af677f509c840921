"""The ``slack_actions:`` section: how the agent hears button presses and who may press them."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from agent.durations import Duration
from agent.slackapp.model import ACTIONS

__all__ = ["AllowList", "AllowConfig", "HttpModeConfig", "SlackActionsConfig", "chain_warnings"]

_USER = re.compile(r"^[UW][A-Z0-9]{2,}$")
_GROUP = re.compile(r"^S[A-Z0-9]{2,}$")
MAX_TOLERANCE = 300.0  # Slack's own: a signed request older than 5 minutes is refused


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AllowList(_Model):
    """Who may take one action: Slack user IDs, members of Slack user groups, or anyone."""

    users: tuple[str, ...] = Field(
        (), description="Slack user IDs (`U0123ABCD`: a profile's ⋮ menu > Copy member ID).")
    usergroups: tuple[str, ...] = Field(
        (), description="Slack user group IDs (`S0123ABCD`) whose members may act; the bot "
        "token needs `usergroups:read`.")
    anyone: bool = Field(
        False, description="Anyone who can see the message (everyone in its channel).")

    @field_validator("users")
    @classmethod
    def _users(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [v for v in value if not _USER.match(v)]
        if bad:
            raise ValueError(f"expected Slack user IDs like 'U0123ABCD', found {bad!r} "
                             "(a name or @handle changes; the ID does not)")
        return value

    @field_validator("usergroups")
    @classmethod
    def _groups(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [v for v in value if not _GROUP.match(v)]
        if bad:
            raise ValueError(f"expected Slack user group IDs like 'S0123ABCD', found {bad!r}")
        return value

    @property
    def nobody(self) -> bool:
        return not (self.anyone or self.users or self.usergroups)


class AllowConfig(_Model):
    """Who may do what; an action without its own list uses `default`."""

    default: AllowList = Field(default_factory=AllowList,
                               description="For every action without its own list.")
    acknowledge: AllowList | None = Field(None, description="Acknowledge.")
    silence: AllowList | None = Field(None, description="Silence 1h / 4h / until resolved.")
    unsilence: AllowList | None = Field(None, description="Unsilence.")
    chart: AllowList | None = Field(None, description="Chart 24h.")

    def for_action(self, action: str) -> AllowList:
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}")
        own: AllowList | None = getattr(self, action)
        return self.default if own is None else own


class HttpModeConfig(_Model):
    """HTTP mode: Slack posts button presses to a URL you expose (Request URL)."""

    signing_secret: SecretStr = Field(
        ..., description="The app's Signing Secret (Basic Information > App Credentials).")
    listen: str = Field(
        "127.0.0.1:3000", description="host:port of the listener for Slack's requests "
        "(put it behind your HTTPS ingress; Slack only calls https:// URLs).")
    path: str = Field("/slack/actions", description="Path of the Request URL.")
    timestamp_tolerance: Duration = Field(
        300.0, gt=0, le=MAX_TOLERANCE,
        description="Refuse a request signed longer ago than this (replays; at most 5m).")

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
            raise ValueError(f"expected host:port like '127.0.0.1:3000', found {value!r}")
        return value

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f"expected a path starting with '/', found {value!r}")
        return value


class SlackActionsConfig(_Model):
    """Buttons on alert messages: acknowledge, silence, unsilence, chart (docs/alerting.md)."""

    mode: Literal["socket", "http"] = Field(
        "socket", description="`socket`: the agent connects out to Slack (Socket Mode, no "
        "public URL); `http`: Slack posts to a URL you expose.")
    app_token: SecretStr | None = Field(
        None, description="App-level token (`xapp-...`, scope `connections:write`) for Socket "
        "Mode.")
    bot_token: SecretStr | None = Field(
        None, description="Bot token for user group lookups; default: "
        "`alerting.slack.token`.")
    http: HttpModeConfig | None = Field(None, description="HTTP mode's listener and secret.")
    allow: AllowConfig = Field(default_factory=AllowConfig, description="Who may act.")
    until_resolved_max: Duration = Field(
        7 * 86400.0, gt=0, description="A silence 'until resolved' ends after this at the "
        "latest, even if the alert never resolves.")
    base_url: str = Field("https://slack.com/api/", description="Slack Web API base URL.")
    reconnect_max: Duration = Field(
        60.0, gt=0, description="Longest wait between Socket Mode reconnection attempts.")
    timeout: Duration = Field(10.0, gt=0, description="Timeout of one Slack API call.")

    @field_validator("app_token")
    @classmethod
    def _xapp(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith("xapp-"):
            prefix = value.get_secret_value()[:5]
            raise ValueError(
                f"expected an app-level token (xapp-...), found one starting with {prefix!r}: "
                "create it under Basic Information > App-Level Tokens with the scope "
                "connections:write")
        return value

    @model_validator(mode="after")
    def _mode_needs(self) -> "SlackActionsConfig":
        if self.mode == "socket" and self.app_token is None:
            raise ValueError("mode socket needs `app_token` (the app-level token, xapp-..., "
                             "e.g. ${SLACK_APP_TOKEN})")
        if self.mode == "http" and self.http is None:
            raise ValueError("mode http needs `http: {signing_secret: ${SLACK_SIGNING_SECRET}}`")
        return self

    def warnings(self) -> list[str]:
        """Legal but surprising settings (said at load time)."""
        out = []
        nobody = [a for a in ACTIONS if self.allow.for_action(a).nobody]
        if nobody:
            out.append(f"slack_actions.allow: nobody may {', '.join(nobody)} (every press is "
                       "answered 'not allowed'); list `users`, `usergroups` or set "
                       "`anyone: true` under allow.default or the action")
        return out


def chain_warnings(alerting: Any) -> list[str]:
    """``slack_actions`` set where no message can carry its buttons (said at load time):
    buttons go on the messages of Slack receivers in bot mode only."""
    if not alerting.enabled:
        return ["slack_actions is set but alerting is disabled (alerting.enabled: false): no "
                "message carries buttons, so the Slack app is not connected"]
    slack = alerting.slack
    if (slack is not None and slack.token is not None) or \
            any(r.type == "slack" for r in alerting.receivers):
        return []
    return ["slack_actions is set but no receiver posts with a bot token (alerting.slack.token "
            "or a receiver of type slack): a webhook's messages cannot carry buttons, so none "
            "has them"]
