"""Builds the notifiers named in the ``alerting:`` config (one per receiver, plus the implicit
``console``, ``slack`` and ``slack:<channel>`` ones)."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from agent.alerting.config import AlertingConfig
from agent.alerting.routing import Route
from typing import TYPE_CHECKING, Any

from agent.history.protocol import SeriesReader
from agent.notify.base import Notification, Notifier
from agent.notify.console import ConsoleNotifier

if TYPE_CHECKING:
    from agent.notify.slack import ChartFn
    from agent.notify.webhook import SparkFn

__all__ = ["build_notifiers", "fallbacks_of", "chart_fn", "sparkline_fn"]


# Receiver types load their client libraries (slack_sdk) only when a config uses them,
# so an agent without Slack never pays for importing it.
def _slack_notifier(*args: Any, **kwargs: Any) -> Notifier:
    from agent.notify.slack import SlackNotifier

    return SlackNotifier(*args, **kwargs)


def _webhook_notifier(*args: Any, **kwargs: Any) -> Notifier:
    from agent.notify.webhook import WebhookNotifier

    return WebhookNotifier(*args, **kwargs)


def _alertmanager_notifier(*args: Any, **kwargs: Any) -> Notifier:
    from agent.notify.alertmanager import AlertmanagerNotifier

    return AlertmanagerNotifier(*args, **kwargs)


_told_no_charts = False


def chart_fn(reader: SeriesReader | None, window: float) -> ChartFn | None:
    """Draws the chart of a notification's alerts (runs in an executor thread); None without
    a reader or without the charts extra (said once: the alerts still go out, without picture)."""
    global _told_no_charts
    if reader is None:
        return None
    from agent.charts import charts_available
    from agent.install import extra_hint

    if not charts_available():
        if not _told_no_charts:
            _told_no_charts = True
            logging.getLogger(__name__).warning(
                "alerting.slack.charts is on, but the charts extra (matplotlib) is not installed: "
                "Slack alerts go without chart images; add it with %s, or set charts: false",
                extra_hint("charts"))
        return None

    def draw(note: Notification, now: float) -> bytes | None:
        from agent.notify.alert_chart import chart_png

        return chart_png(reader, note, now, window)

    return draw


def sparkline_fn(reader: SeriesReader | None, window: float) -> SparkFn | None:
    """Text sparklines by alert fingerprint, for the webhook (runs in an executor thread)."""
    if reader is None:
        return None

    def spark(note: Notification, now: float) -> dict[str, str]:
        from agent.notify.alert_chart import sparklines

        return sparklines(reader, note, now, window)

    return spark


def build_notifiers(
    config: AlertingConfig,
    root: Route,
    *,
    reader: SeriesReader | None = None,
    footer: str | None = None,
) -> dict[str, Notifier]:
    """One notifier per receiver that a route or a fallback can reach."""
    footer = footer or "mlwarden"
    slack = config.slack
    window = slack.chart_window if slack else 3600.0
    out: dict[str, Notifier] = {"console": ConsoleNotifier("console")}
    if slack is not None and slack.token is not None:
        out["slack"] = _slack_notifier(
            "slack",
            token=slack.token.get_secret_value(),
            channel=slack.default_channel,
            base_url=slack.base_url,
            timeout=slack.timeout,
            chart=chart_fn(reader, window) if slack.charts else None,
            footer=footer,
        )
    elif slack is not None and slack.webhook_url is not None:
        out["slack"] = _webhook_notifier(
            "slack",
            url=slack.webhook_url.get_secret_value(),
            timeout=slack.timeout,
            sparklines=sparkline_fn(reader, window),
            footer=footer,
        )
    for r in config.receivers:
        if r.type == "console":
            out[r.name] = ConsoleNotifier(r.name)
        elif r.type == "slack":
            assert slack is not None or r.token is not None
            token = r.token or (slack.token if slack else None)
            assert token is not None
            out[r.name] = _slack_notifier(
                r.name,
                token=token.get_secret_value(),
                channel=r.channel or (slack.default_channel if slack else "#ml-alerts"),
                base_url=slack.base_url if slack else "https://slack.com/api/",
                timeout=slack.timeout if slack else 10.0,
                chart=chart_fn(reader, window) if (slack is None or slack.charts) else None,
                footer=footer,
            )
        elif r.type == "webhook":
            assert r.url is not None
            out[r.name] = _webhook_notifier(
                r.name,
                url=r.url.get_secret_value(),
                timeout=slack.timeout if slack else 10.0,
                sparklines=sparkline_fn(reader, window),
                footer=footer,
            )
        elif r.type == "alertmanager":
            assert r.url is not None
            out[r.name] = _alertmanager_notifier(
                r.name,
                url=r.url.get_secret_value(),
                timeout=config.alertmanager.timeout,
                generator_url=config.agent_url,
            )
    for route in root.walk():
        name = route.receiver
        if (
            name.startswith("slack:")
            and name not in out
            and slack is not None
            and slack.token is not None
        ):
            out[name] = _slack_notifier(
                name,
                token=slack.token.get_secret_value(),
                channel=name.split(":", 1)[1],
                base_url=slack.base_url,
                timeout=slack.timeout,
                chart=chart_fn(reader, window) if slack.charts else None,
                footer=footer,
            )
    return out


def fallbacks_of(config: AlertingConfig, root: Route | None = None) -> Mapping[str, str | None]:
    """Each receiver's configured fallback (a ``slack:#chan`` one shares the ``slack``
    receiver's); delivery uses ``console`` where none is set."""
    out: dict[str, str | None] = {r.name: r.fallback for r in config.receivers}
    if config.slack is not None:
        out["slack"] = config.slack.fallback
        for route in root.walk() if root is not None else ():
            if route.receiver.startswith("slack:"):
                out[route.receiver] = config.slack.fallback
    return out
