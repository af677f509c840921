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
from agent.alerting.matchers import Matcher

__all__ = ["Route", "build_routes", "in_quiet_hours", "config_warnings"]

log = logging.getLogger(__name__)


@dataclass
class Route:
    """One resolved route node (inherited settings filled in)."""

    id: str
    matchers: tuple[Matcher, ...]
    receiver: str
    group_by: tuple[str, ...]
    group_wait: float
    group_interval: float
    repeat_interval: float
    continue_: bool = False
    quiet_hours: QuietHours | None = None
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

    def add(parent: Route, children: tuple[RouteConfig, ...]) -> None:
        for i, cfg in enumerate(children):
            matchers = tuple(Matcher(k, "=", v) for k, v in sorted(cfg.match.items())) + tuple(
                Matcher(k, "=~", v) for k, v in sorted(cfg.match_re.items())
            )
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
            )
            parent.children.append(node)
            add(node, cfg.routes)

    add(root, config.routes)
    return root


def config_warnings(root: Route) -> list[str]:
    """Legal but suspicious settings, logged at load time."""
    out = []
    for route in root.walk():
        if route.repeat_interval < route.group_interval:
            out.append(
                f"route {route.id}: repeat_interval ({route.repeat_interval:g}s) is shorter than "
                f"group_interval ({route.group_interval:g}s); repeats happen every group_interval"
            )
    return out


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
