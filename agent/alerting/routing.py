"""The route tree: which receivers an alert's labels reach, and with which grouping and timers.

Matching follows Alertmanager's ``dispatch/route.go``: a route matches when its matchers
do; its children are tried in order and the first that matches wins unless it has
``continue``; when no child matches, the route itself is the answer. The root matches
everything.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from agent.alerting.config import AlertingConfig, QuietHours, RouteConfig
from agent.alerting.matchers import LabelMatcher, parse_label_matchers
from agent.alerting.timeintervals import TimeInterval, in_any

__all__ = ["Route", "build_routes", "in_quiet_hours", "time_muted"]

log = logging.getLogger(__name__)


@dataclass
class Route:
    """One resolved route node (inherited settings filled in)."""

    id: str
    matchers: tuple[LabelMatcher, ...]
    receiver: str
    group_by: tuple[str, ...]
    group_wait: float
    group_interval: float
    repeat_interval: float
    continue_: bool = False
    quiet_hours: QuietHours | None = None
    mute_intervals: tuple[TimeInterval, ...] = ()
    active_intervals: tuple[TimeInterval, ...] = ()
    children: list["Route"] = field(default_factory=list)

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(m.matches(labels) for m in self.matchers)

    def match(self, labels: Mapping[str, str]) -> list["Route"]:
        """The deepest matching routes for ``labels`` (several when ``continue`` is set)."""
        if not self.matches(labels):
            return []
        found: list[Route] = []
        for child in self.children:
            hits = child.match(labels)
            found.extend(hits)
            if hits and not child.continue_:
                break
        return found or [self]

    def group_labels(self, labels: Mapping[str, str]) -> dict[str, str]:
        if "..." in self.group_by:
            return dict(sorted(labels.items()))
        return {k: labels.get(k, "") for k in self.group_by}

    def group_key(self, labels: Mapping[str, str]) -> str:
        parts = ",".join(f"{k}={v!r}" for k, v in self.group_labels(labels).items())
        return f"{self.id}:{{{parts}}}"

    def walk(self) -> list["Route"]:
        out = [self]
        for child in self.children:
            out.extend(child.walk())
        return out

    def receivers(self) -> list[str]:
        """The receiver names this route and those below it send to, in walk order: what
        notify builds notifiers for."""
        return [route.receiver for route in self.walk()]


def _receiver_of(cfg: RouteConfig, parent: str) -> str:
    if cfg.channel:
        return f"slack:{cfg.channel}"
    return cfg.receiver or parent


def build_routes(config: AlertingConfig) -> Route:
    """The root route of ``config`` with every child's inherited settings resolved."""
    root = Route(
        id="root",
        matchers=(),
        receiver=config.default_receiver(),
        group_by=config.group_by,
        group_wait=config.group_wait,
        group_interval=config.group_interval,
        repeat_interval=config.repeat_interval,
        quiet_hours=config.quiet_hours,
    )

    intervals = config.intervals()

    def add(parent: Route, children: tuple[RouteConfig, ...]) -> None:
        for i, cfg in enumerate(children):
            matchers = tuple(LabelMatcher(k, "=", v) for k, v in sorted(cfg.match.items())) + tuple(
                LabelMatcher(k, "=~", v) for k, v in sorted(cfg.match_re.items())
            ) + tuple(m for text in cfg.matchers for m in parse_label_matchers(text))
            node = Route(
                id=f"{parent.id}/{i}",
                matchers=matchers,
                receiver=_receiver_of(cfg, parent.receiver),
                group_by=cfg.group_by if cfg.group_by is not None else parent.group_by,
                group_wait=cfg.group_wait if cfg.group_wait is not None else parent.group_wait,
                group_interval=cfg.group_interval
                if cfg.group_interval is not None
                else parent.group_interval,
                repeat_interval=cfg.repeat_interval
                if cfg.repeat_interval is not None
                else parent.repeat_interval,
                continue_=cfg.continue_,
                quiet_hours=cfg.quiet_hours if cfg.quiet_hours is not None else parent.quiet_hours,
                mute_intervals=tuple(intervals[n] for n in cfg.mute_time_intervals),
                active_intervals=tuple(intervals[n] for n in cfg.active_time_intervals),
            )
            parent.children.append(node)
            add(node, cfg.routes)

    add(root, config.routes)
    return root


def time_muted(route: Route, now: float) -> str | None:
    """Why ``route``'s notifications are held now by its time intervals, or None."""
    muted = in_any(route.mute_intervals, now)
    if muted is not None:
        return f"in mute time interval {muted!r}"
    if route.active_intervals and in_any(route.active_intervals, now) is None:
        names = ", ".join(repr(t.name) for t in route.active_intervals)
        return f"outside its active time intervals ({names})"
    return None


def in_quiet_hours(quiet: QuietHours | None, now: float, severity: str) -> bool:
    """True when ``now`` falls in the daily window and ``severity`` is not exempt."""
    if quiet is None or severity in quiet.except_severity:
        return False
    local = datetime.fromtimestamp(now, ZoneInfo(quiet.timezone))
    minute = local.hour * 60 + local.minute
    sh, sm = map(int, quiet.start.split(":"))
    eh, em = map(int, quiet.end.split(":"))
    start, end = sh * 60 + sm, eh * 60 + em
    if start <= end:
        return start <= minute < end
    return minute >= start or minute < end
