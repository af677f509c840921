"""Config models of the ``alerting:`` section: receivers, the route tree, inhibition, delivery.

The shape follows Alertmanager's (a root route with defaults, child routes with matchers,
``continue``, ``group_by`` and the three timers) so people who know one know the other. Two
shorthands keep small configs small: ``slack: {token, default_channel}`` defines the bot
receiver ``slack`` (and ``slack: {webhook_url}`` the webhook receiver ``slack``), and a route
may say ``channel: "#ml-oncall"`` instead of naming a receiver, meaning "the bot receiver,
in that channel". With nothing configured every alert goes to the ``console`` receiver.

Alertmanager users' keys work as they wrote them: ``matchers:`` (``severity="critical"``)
beside the older ``match``/``match_re``, ``source_matchers``/``target_matchers`` in inhibit
rules, and named ``time_intervals`` (or the older top-level ``mute_time_intervals``) that
routes use as ``mute_time_intervals``/``active_time_intervals``.

Cross-references (a route's receiver, a fallback, a time interval's name) are checked by
:func:`reference_problems`, which reads the raw mapping: ``parse_config`` runs it even when
other keys of the section are wrong, so one pass reports every problem with its own path.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from agent.alerting.matchers import parse_label_matchers
from agent.alerting.timeintervals import TimeInterval
from agent.durations import Duration
from agent.notify.config import (
    AlertmanagerSettings,
    DeliveryConfig,
    ReceiverConfig,
    SlackSettings,
)

__all__ = [
    "AlertingConfig",
    "AlertmanagerSettings",
    "DeliveryConfig",
    "InhibitRuleConfig",
    "QuietHours",
    "ReceiverConfig",
    "RouteConfig",
    "SlackSettings",
    "reference_problems",
    "timer_warnings",
]

_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def _matcher_text(text: str) -> str:
    parse_label_matchers(text)  # ValueError says what is wrong where
    return text


# one string of Alertmanager matchers (validated per item, so errors name `matchers[1]`)
MatcherText = Annotated[str, AfterValidator(_matcher_text)]
_LABEL = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


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
    matchers: tuple[MatcherText, ...] = Field(
        default=(),
        description='Alertmanager matchers, all of which must hold: `severity="critical"`, '
        '`team=~"ml|data"`, `env!="dev"` (beside `match`/`match_re`).',
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
    mute_time_intervals: tuple[str, ...] = Field(
        default=(),
        description="Names of `time_intervals` during which this route's notifications are "
        "held (not inherited by child routes, as in Alertmanager).",
    )
    active_time_intervals: tuple[str, ...] = Field(
        default=(),
        description="Names of `time_intervals` outside of which this route's notifications are held.",
    )
    routes: tuple["RouteConfig", ...] = Field(
        default=(), description="Child routes, tried in order."
    )

    @field_validator("match_re")
    @classmethod
    def _regexes(cls, value: dict[str, str]) -> dict[str, str]:
        from agent.alerting.matchers import LabelMatcher

        for key, pattern in value.items():
            try:
                LabelMatcher(key, "=~", pattern)
            except ValueError as exc:
                raise ValueError(f"match_re.{exc}") from None
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

    source_match: dict[str, str] = Field(
        default_factory=dict, description="Labels of the muting (source) alert."
    )
    target_match: dict[str, str] = Field(
        default_factory=dict, description="Labels of the muted (target) alerts."
    )
    source_matchers: tuple[MatcherText, ...] = Field(
        default=(),
        description='Alertmanager matchers of the source alert, e.g. `alertname="NodeDown"`.',
    )
    target_matchers: tuple[MatcherText, ...] = Field(
        default=(), description="Alertmanager matchers of the target alerts."
    )
    equal: tuple[str, ...] = Field(
        default=(), description="Labels that must be equal in source and target."
    )

    @model_validator(mode="after")
    def _both_sides(self) -> "InhibitRuleConfig":
        for side in ("source", "target"):
            if not getattr(self, f"{side}_match") and not getattr(self, f"{side}_matchers"):
                raise ValueError(f"an inhibit rule needs `{side}_matchers` (or `{side}_match`): "
                                 f"which alerts are its {side}")
        return self


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
    time_intervals: tuple[TimeInterval, ...] = Field(
        default=(),
        description="Named recurring windows (Alertmanager's syntax) that routes name in "
        "`mute_time_intervals` / `active_time_intervals`.",
    )
    mute_time_intervals: tuple[TimeInterval, ...] = Field(
        default=(),
        description="The older name of `time_intervals` in Alertmanager; both may be used.",
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
    def _references(self, info: ValidationInfo) -> "AlertingConfig":
        if info.context and info.context.get("references_checked"):
            return self  # parse_config reports each one with its path, from the raw file
        problems = reference_problems(self.model_dump(by_alias=True))
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def intervals(self) -> dict[str, TimeInterval]:
        """Every named time interval, from both spellings of the section."""
        return {t.name: t for t in (*self.mute_time_intervals, *self.time_intervals)}

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


def reference_problems(raw: Any, where: str = "alerting") -> list[str]:
    """Every broken cross-reference of an ``alerting:`` mapping, each with its key path.

    Reads the raw (substituted) mapping and skips what has the wrong shape (validation
    reports that), so it finds undefined receivers even when a sibling key is invalid.
    """
    if not isinstance(raw, Mapping):
        return []
    problems: list[str] = []

    def items(key: str) -> list[tuple[int, Mapping[str, Any]]]:
        value = raw.get(key)
        return ([(i, v) for i, v in enumerate(value) if isinstance(v, Mapping)]
                if isinstance(value, (list, tuple)) else [])

    slack = raw.get("slack") if isinstance(raw.get("slack"), Mapping) else None
    has_token = slack is not None and slack.get("token") is not None
    has_webhook = slack is not None and slack.get("webhook_url") is not None
    receivers = items("receivers")
    seen: dict[str, int] = {}
    for i, r in receivers:
        name = r.get("name")
        if isinstance(name, str) and name in seen:
            problems.append(f"{where}.receivers[{i}].name: {name!r} is already used by "
                            f"receivers[{seen[name]}]; receiver names must be unique")
        elif isinstance(name, str):
            seen[name] = i
    known = ["console"] + (["slack"] if has_token or has_webhook else []) + list(seen)
    have = f"(have: {', '.join(known)})"
    default = raw.get("receiver")
    if isinstance(default, str) and default not in known:
        problems.append(f"{where}.receiver: {default!r} is not defined {have}")
    for i, r in receivers:
        fallback = r.get("fallback")
        if isinstance(fallback, str) and fallback not in known:
            problems.append(f"{where}.receivers[{i}].fallback: {fallback!r} is not defined {have}")
        if r.get("type") == "slack" and r.get("token") is None and not has_token:
            problems.append(f"{where}.receivers[{i}]: a receiver of type slack needs `token` "
                            "or `alerting.slack.token`")
    fallback = slack.get("fallback") if slack is not None else None
    if isinstance(fallback, str):
        if fallback not in known:
            problems.append(f"{where}.slack.fallback: {fallback!r} is not defined {have}")
        elif fallback == "slack":
            problems.append(f"{where}.slack.fallback: cannot be the slack receiver itself")
    intervals = [t.get("name") for key in ("time_intervals", "mute_time_intervals")
                 for _, t in items(key)]
    for key in ("time_intervals", "mute_time_intervals"):
        for i, t in items(key):
            name = t.get("name")
            if isinstance(name, str) and intervals.count(name) > 1:
                problems.append(f"{where}.{key}[{i}].name: {name!r} is defined more than once")
    names = sorted({n for n in intervals if isinstance(n, str)})

    def walk(routes: Any, path: str) -> None:
        if not isinstance(routes, (list, tuple)):
            return
        for i, route in enumerate(routes):
            if not isinstance(route, Mapping):
                continue
            here = f"{path}[{i}]"
            receiver = route.get("receiver")
            if isinstance(receiver, str) and receiver not in known:
                problems.append(f"{here}.receiver: {receiver!r} is not defined {have}")
            if route.get("channel") is not None and not has_token:
                problems.append(f"{here}.channel: needs `alerting.slack.token` (bot mode)")
            for key in ("mute_time_intervals", "active_time_intervals"):
                refs = route.get(key)
                for n, ref in enumerate(refs if isinstance(refs, (list, tuple)) else []):
                    if isinstance(ref, str) and ref not in names:
                        problems.append(f"{here}.{key}[{n}]: {ref!r} is not a defined time interval "
                                        f"(have: {', '.join(names) or 'none; define them under '}"
                                        f"{'' if names else where + '.time_intervals'})")
            walk(route.get("routes"), f"{here}.routes")

    walk(raw.get("routes"), f"{where}.routes")
    return problems


def timer_warnings(raw: Any, where: str = "alerting") -> list[str]:
    """Legal but suspicious route timers (repeat_interval < group_interval), from the raw
    mapping with inheritance applied, so `config validate` says them even for a file that
    has errors elsewhere. Values that do not parse are skipped (validation reports them)."""
    from agent.durations import format_duration, parse_duration

    if not isinstance(raw, Mapping):
        return []
    out: list[str] = []

    def timer(node: Mapping[str, Any], key: str, inherited: float) -> float:
        try:
            return parse_duration(node[key]) if node.get(key) is not None else inherited
        except ValueError:
            return inherited

    def visit(node: Mapping[str, Any], path: str, group: float, repeat: float) -> None:
        group, repeat = timer(node, "group_interval", group), timer(node, "repeat_interval", repeat)
        keys = ("group_interval", "repeat_interval")
        sets = path == where or any(node.get(k) is not None for k in keys)
        if repeat < group and sets:  # said where it is set, not again for each child inheriting it
            out.append(f"{path}: repeat_interval ({format_duration(repeat)}) is shorter than "
                       f"group_interval ({format_duration(group)}); repeats happen only every "
                       "group_interval")
        children = node.get("routes")
        for i, child in enumerate(children if isinstance(children, (list, tuple)) else []):
            if isinstance(child, Mapping):
                visit(child, f"{path}.routes[{i}]", group, repeat)

    fields = AlertingConfig.model_fields
    visit(raw, where, fields["group_interval"].default, fields["repeat_interval"].default)
    return out
