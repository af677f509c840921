"""The route tree's side of building notifiers: notify builds them from the receiver
settings (:mod:`agent.notify.receivers`) and the receiver names the routes send to, which
this module reads off the tree."""

from __future__ import annotations

from collections.abc import Mapping

from agent.alerting.config import AlertingConfig
from agent.alerting.routing import Route
from agent.history.protocol import SeriesReader
from agent.notify import receivers as notify_receivers
from agent.notify.base import Notifier
from agent.notify.receivers import ReceiverSettings

__all__ = ["build_notifiers", "fallbacks_of", "route_receivers"]


def route_receivers(root: Route | None) -> list[str]:
    """The receiver names the route tree sends to, in walk order."""
    return [route.receiver for route in root.walk()] if root is not None else []


def build_notifiers(config: AlertingConfig, root: Route, *, reader: SeriesReader | None = None,
                    footer: str | None = None) -> dict[str, Notifier]:
    """One notifier per receiver that a route or a fallback can reach."""
    return notify_receivers.build_notifiers(ReceiverSettings.of(config), route_receivers(root),
                                            reader=reader, footer=footer)


def fallbacks_of(config: AlertingConfig, root: Route | None = None) -> Mapping[str, str | None]:
    """Each receiver's configured fallback; delivery uses ``console`` where none is set."""
    return notify_receivers.fallbacks_of(ReceiverSettings.of(config), route_receivers(root))
