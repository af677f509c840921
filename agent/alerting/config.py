"""Config models of the ``alerting:`` section: receivers, the route tree, inhibition, delivery.

The shape follows Alertmanager's (a root route with defaults, child routes with matchers,
``continue``, ``group_by`` and the three timers) so people who know one know the other. Two
shorthands keep small configs small: ``slack: {token, default_channel}`` defines the bot
receiver ``slack`` (and ``slack: {webhook_url}`` the webhook receiver ``slack``), and a route
may say ``channel: "#ml-oncall"`` instead of naming a receiver, meaning "the bot receiver,
in that channel". With nothing configured every alert goes to the ``console`` receiver.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from agent.durations import Duration

__all__ = [
    "AlertingConfig",
    "AlertmanagerSettings",
    "DeliveryConfig",
    "InhibitRuleConfig",
    "QuietHours",
    "ReceiverConfig",
    "RouteConfig",
    "SlackSettings",
]

_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
_LABEL = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class SlackSettings(_Model):
    """Slack credentials shared by the Slack receivers (bot token and/or incoming webhook)."""

    token: SecretStr | None = Field(
        None, description="Bot token (xoxb-...): chat.postMessage, threads, updates, charts."
    )
    webhook_url: SecretStr | None = Field(
        None, description="Incoming webhook URL: plain messages, no threads, updates or files."
    )
    default_channel: str = Field("#ml-alerts", description="Channel of the `slack` bot receiver.")
    base_url: str = Field(
        "https://slack.com/api/", description="Slack Web API base URL (tests, proxies)."
    )
    timeout: Duration = Field(10.0, gt=0, description="Timeout of one Slack API call.")
    charts: bool = Field(
        True, description="Attach a chart of the metric's recent history (bot mode)."
    )
    chart_window: Duration = Field(
        3600.0, gt=0, description="History shown on the chart and sparkline."
    )
    fallback: str | None = Field(
        None,
        description="Receiver that gets the `slack` receiver's notifications when Slack "
        "refuses them or the receiver cannot post at all (default: `console`).",
    )


class AlertmanagerSettings(_Model):
    """Defaults of the Alertmanager receivers."""

    resend_interval: Duration = Field(
        60.0,
        gt=0,
        description="Re-post firing alerts this often, so Alertmanager keeps them active.",
    )
    timeout: Duration = Field(10.0, gt=0, description="Timeout of one POST to /api/v2/alerts.")


class ReceiverConfig(_Model):
    """One place notifications go."""

    name: str = Field(..., min_length=1, description="Name that routes refer to.")
    type: Literal["slack", "webhook", "alertmanager", "console"] = Field(
        ...,
        description="`slack` (bot token), `webhook` (Slack incoming webhook), `alertmanager`, `console`.",
    )
    channel: str | None = Field(None, description="Slack channel (`slack` receivers).")
    url: SecretStr | None = Field(
        None, description="Webhook URL (`webhook`) or Alertmanager base URL (`alertmanager`)."
    )
    token: SecretStr | None = Field(None, description="Bot token; default: `alerting.slack.token`.")
    fallback: str | None = Field(
        None,
        description="Receiver that gets this one's notifications when it refuses them or "
        "cannot post at all (invalid_auth, channel_not_found; default: `console`).",
    )
    send_resolved: bool | None = Field(None, description="Default: `alerting.send_resolved`.")

    @model_validator(mode="after")
    def _needs(self) -> "ReceiverConfig":
        if self.type == "webhook" and self.url is None:
            raise ValueError(
                f"receiver {self.name!r} of type webhook needs `url` (the incoming webhook URL)"
            )
        if self.type == "alertmanager" and self.url is None:
            raise ValueError(
                f"receiver {self.name!r} of type alertmanager needs `url` "
                "(e.g. http://alertmanager:9093)"
            )
        if self.fallback == self.name:
            raise ValueError(f"receiver {self.name!r} cannot be its own fallback")
        return self


class QuietHours(_Model):
    """Hold (never drop) notifications during a daily window; they go out when it ends."""

    start: str = Field(..., description="HH:MM")
    end: str = Field(..., description="HH:MM; may be earlier than start (overnight).")
    timezone: str = Field("UTC", description="IANA zone name, e.g. Europe/Berlin.")
    except_severity: tuple[str, ...] = Field(
        ("critical",), description="Severities that are never held."
    )

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        if not _HHMM.match(value):
            raise ValueError(f"expected a time like '22:00', found {value!r}")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r} (use an IANA name like 'Europe/Berlin')"
            ) from None
        return value


class RouteConfig(_Model):
    """A node of the route tree; unset timers and group_by are inherited from the parent."""

    match: dict[str, str] = Field(default_factory=dict, description="Labels that must be equal.")
    match_re: dict[str, str] = Field(
        default_factory=dict, description="Labels that must fully match a regex."
    )
    receiver: str | None = Field(None, description="Receiver name; inherited when unset.")
    channel: str | None = Field(
        None, description="Shorthand: the `slack` bot receiver in this channel."
    )
    group_by: tuple[str, ...] | None = Field(
        None, description="Labels that split alerts into groups; `...` = all."
    )
    group_wait: Duration | None = Field(
        None, description="Wait before the first notification of a group."
    )
    group_interval: Duration | None = Field(
        None, description="Wait before notifying changes of a group."
    )
    repeat_interval: Duration | None = Field(
        None, description="Re-notify an unchanged firing group this often."
    )
    continue_: bool = Field(
        False,
        alias="continue",
        description="Written `continue:` in YAML: keep matching sibling routes after this one.",
    )
    quiet_hours: QuietHours | None = Field(
        None, description="Hold non-critical notifications in this window."
    )
    routes: tuple["RouteConfig", ...] = Field(
        default=(), description="Child routes, tried in order."
    )

    @field_validator("match_re")
    @classmethod
    def _regexes(cls, value: dict[str, str]) -> dict[str, str]:
        for key, pattern in value.items():
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(
                    f"match_re.{key}: {pattern!r} is not a valid regex ({exc})"
                ) from None
        return value

    @model_validator(mode="after")
    def _one_target(self) -> "RouteConfig":
        if self.receiver and self.channel:
            raise ValueError("set either `receiver` or `channel` on a route, not both")
        return self


class InhibitRuleConfig(_Model):
    """A firing source alert mutes the target alerts that share its ``equal`` labels.

    E.g. a NodeDown alert on gpu-3 mutes the EndpointDown alerts of gpu-3.
    """

    source_match: dict[str, str] = Field(..., description="Labels of the muting (source) alert.")
    target_match: dict[str, str] = Field(..., description="Labels of the muted (target) alerts.")
    equal: tuple[str, ...] = Field(
        default=(), description="Labels that must be equal in source and target."
    )


class DeliveryConfig(_Model):
    """How the outbox is drained."""

    retry_initial: Duration = Field(5.0, gt=0, description="First retry delay after a failed send.")
    retry_max: Duration = Field(
        300.0, gt=0, description="Longest retry delay (exponential backoff)."
    )
    pace: Duration = Field(
        1.0, ge=0, description="Minimum time between two messages to one channel."
    )
    late_after: Duration = Field(
        60.0, ge=0, description="A message sent this much later than due says how late and why."
    )
    tick: Duration = Field(
        0.5, gt=0, description="How often groups are flushed and the outbox is drained."
    )
    keep_sent: Duration = Field(
        7 * 86400.0, gt=0, description="Delivered rows are pruned after this."
    )


class AlertingConfig(_Model):
    """Routing of alerts to receivers (the root route's settings live at this level)."""

    enabled: bool = Field(True, description="Route and send alerts at all.")
    slack: SlackSettings | None = Field(
        None, description="Slack bot token and/or incoming webhook."
    )
    alertmanager: AlertmanagerSettings = Field(
        default_factory=AlertmanagerSettings,
        description="Settings of the `alertmanager` receivers.",
    )
    receivers: tuple[ReceiverConfig, ...] = Field(default=(), description="Named receivers.")
    receiver: str | None = Field(
        None,
        description="Default receiver; default: `slack` when Slack is configured, else `console`.",
    )
    group_by: tuple[str, ...] = Field(
        ("alertname",), description="Labels alerts are grouped by by default."
    )
    group_wait: Duration = Field(
        30.0, ge=0, description="Wait before the first notification of a new group."
    )
    group_interval: Duration = Field(
        300.0,
        gt=0,
        description="Wait before notifying changes (alerts joining or resolving) of a group.",
    )
    repeat_interval: Duration = Field(
        4 * 3600.0,
        gt=0,
        description="Re-notify a group that is still firing, unchanged, this often.",
    )
    send_resolved: bool = Field(True, description="Notify when a group's alerts resolve.")
    quiet_hours: QuietHours | None = Field(
        None, description="Root quiet hours (inherited by routes)."
    )
    routes: tuple[RouteConfig, ...] = Field(
        default=(), description="Child routes of the root, tried in order."
    )
    inhibit_rules: tuple[InhibitRuleConfig, ...] = Field(
        default=(),
        description="Firing alerts that mute others (e.g. NodeDown mutes that node's endpoints).",
    )
    delivery: DeliveryConfig = Field(
        default_factory=DeliveryConfig, description="Retries, pacing and lateness of deliveries."
    )
    agent_url: str | None = Field(None, description="Link sent as generatorURL to Alertmanager.")

    @field_validator("group_by")
    @classmethod
    def _labels(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if name != "..." and not _LABEL.match(name):
                raise ValueError(f"{name!r} is not a label name")
        return value

    @model_validator(mode="after")
    def _references(self) -> "AlertingConfig":
        names = [r.name for r in self.receivers]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"receiver names must be unique; repeated: {', '.join(dupes)}")
        known = set(self.receiver_names())
        problems = []
        if self.receiver and self.receiver not in known:
            problems.append(f"receiver {self.receiver!r} is not defined")
        for r in self.receivers:
            if r.fallback and r.fallback not in known:
                problems.append(f"receivers[{r.name}].fallback {r.fallback!r} is not defined")
        if self.slack is not None and self.slack.fallback:
            if self.slack.fallback not in known:
                problems.append(f"slack.fallback {self.slack.fallback!r} is not defined")
            elif self.slack.fallback == "slack":
                problems.append("slack.fallback cannot be the slack receiver itself")
        needs_token = any(r.type == "slack" and r.token is None for r in self.receivers)
        if needs_token and (self.slack is None or self.slack.token is None):
            problems.append("a receiver of type slack needs `token` or `alerting.slack.token`")

        def walk(routes: tuple[RouteConfig, ...], path: str) -> None:
            for i, route in enumerate(routes):
                where = f"{path}[{i}]"
                if route.receiver and route.receiver not in known:
                    problems.append(
                        f"{where}.receiver {route.receiver!r} is not defined "
                        f"(have: {', '.join(sorted(known))})"
                    )
                if route.channel and (self.slack is None or self.slack.token is None):
                    problems.append(f"{where}.channel needs `alerting.slack.token` (bot mode)")
                walk(route.routes, f"{where}.routes")

        walk(self.routes, "routes")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def receiver_names(self) -> list[str]:
        """Every receiver name routes may use, the implicit ones included."""
        names = ["console"]
        if self.slack is not None and (self.slack.token or self.slack.webhook_url):
            names.append("slack")
        names.extend(r.name for r in self.receivers)
        return names

    def default_receiver(self) -> str:
        if self.receiver:
            return self.receiver
        return "slack" if "slack" in self.receiver_names() else "console"
