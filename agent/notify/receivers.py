"""Builds the notifiers of the configured receivers: one per named receiver, plus the
implicit ``console``, ``slack`` (from ``alerting.slack``) and ``slack:<channel>`` ones.

Notify owns its receivers: it is given their settings (:class:`ReceiverSettings`) and the
receiver names that something may send to (the routes' ``slack:<channel>`` shorthands),
never the route tree. Every Slack bot notifier is built by :func:`slack_bot`, with the
defaults of :class:`~agent.notify.config.SlackSettings`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from agent.history.protocol import SeriesReader
from agent.notify.base import Notification, Notifier
from agent.notify.config import AlertmanagerSettings, ReceiverConfig, SlackSettings
from agent.notify.console import ConsoleNotifier

if TYPE_CHECKING:
    from agent.notify.slack import ChartFn
    from agent.notify.webhook import SparkFn

__all__ = [
    "ReceiverSettings",
    "build_notifiers",
    "chart_fn",
    "fallbacks_of",
    "slack_bot",
    "sparkline_fn",
]

DEFAULT_FOOTER = "mlwarden"


@dataclass(frozen=True)
class ReceiverSettings:
    """The parts of the ``alerting:`` section that say where notifications can go."""

    slack: SlackSettings | None = None
    alertmanager: AlertmanagerSettings = field(default_factory=AlertmanagerSettings)
    receivers: tuple[ReceiverConfig, ...] = ()
    agent_url: str | None = None  # sent to Alertmanager as generatorURL

    @classmethod
    def of(cls, section: Any) -> ReceiverSettings:
        """From an ``alerting:`` section (any object with these four attributes)."""
        return cls(section.slack, section.alertmanager, tuple(section.receivers),
                   section.agent_url)

    @property
    def slack_or_defaults(self) -> SlackSettings:
        return self.slack or SlackSettings()


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


# Receiver types load their client libraries (slack_sdk) only when a config uses them,
# so an agent without Slack never pays for importing it.
def slack_bot(name: str, slack: SlackSettings | None, *, token: SecretStr | str | None = None,
              channel: str | None = None, chart: ChartFn | None = None,
              footer: str = DEFAULT_FOOTER) -> Notifier:
    """A Slack bot notifier: ``token`` and ``channel`` default to ``slack``'s, and the API
    URL and timeout are ``slack``'s (or :class:`SlackSettings`' defaults)."""
    from agent.notify.slack import SlackNotifier

    s = slack or SlackSettings()
    secret = token if token is not None else s.token
    assert secret is not None, f"receiver {name!r}: a Slack bot receiver needs a token"
    return SlackNotifier(
        name,
        token=secret.get_secret_value() if isinstance(secret, SecretStr) else secret,
        channel=channel or s.default_channel,
        base_url=s.base_url,
        timeout=s.timeout,
        chart=chart,
        footer=footer,
    )


def _webhook(name: str, url: SecretStr, settings: ReceiverSettings, reader: SeriesReader | None,
             footer: str) -> Notifier:
    from agent.notify.webhook import WebhookNotifier

    s = settings.slack_or_defaults
    return WebhookNotifier(name, url=url.get_secret_value(), timeout=s.timeout,
                           sparklines=sparkline_fn(reader, s.chart_window), footer=footer)


def _alertmanager(r: ReceiverConfig, settings: ReceiverSettings) -> Notifier:
    from agent.notify.alertmanager import AlertmanagerNotifier

    assert r.url is not None
    return AlertmanagerNotifier(r.name, url=r.url.get_secret_value(),
                                timeout=settings.alertmanager.timeout,
                                generator_url=settings.agent_url)


def _named(r: ReceiverConfig, settings: ReceiverSettings, reader: SeriesReader | None,
           footer: str) -> Notifier:
    """The notifier of one ``receivers:`` entry."""
    if r.type == "slack":
        return slack_bot(r.name, settings.slack, token=r.token, channel=r.channel,
                         chart=_chart(settings, reader), footer=footer)
    if r.type == "webhook":
        assert r.url is not None
        return _webhook(r.name, r.url, settings, reader, footer)
    if r.type == "alertmanager":
        return _alertmanager(r, settings)
    return ConsoleNotifier(r.name)


def _chart(settings: ReceiverSettings, reader: SeriesReader | None) -> ChartFn | None:
    s = settings.slack_or_defaults
    return chart_fn(reader, s.chart_window) if s.charts else None


def build_notifiers(
    settings: ReceiverSettings,
    names: Iterable[str] = (),
    *,
    reader: SeriesReader | None = None,
    footer: str | None = None,
) -> dict[str, Notifier]:
    """One notifier per configured receiver, plus the ``slack:<channel>`` receivers among
    ``names`` (the receiver names routes send to) when a bot token is set."""
    footer = footer or DEFAULT_FOOTER
    slack = settings.slack
    out: dict[str, Notifier] = {"console": ConsoleNotifier("console")}
    if slack is not None and slack.token is not None:
        out["slack"] = slack_bot("slack", slack, chart=_chart(settings, reader), footer=footer)
    elif slack is not None and slack.webhook_url is not None:
        out["slack"] = _webhook("slack", slack.webhook_url, settings, reader, footer)
    for r in settings.receivers:
        out[r.name] = _named(r, settings, reader, footer)
    bot = slack is not None and slack.token is not None
    for name in names:
        if bot and name.startswith("slack:") and name not in out:
            out[name] = slack_bot(name, slack, channel=name.split(":", 1)[1],
                                  chart=_chart(settings, reader), footer=footer)
    return out


def fallbacks_of(settings: ReceiverSettings, names: Iterable[str] = ()) -> Mapping[str, str | None]:
    """Each receiver's configured fallback (a ``slack:<channel>`` one among ``names`` shares
    the ``slack`` receiver's); delivery uses ``console`` where none is set."""
    out: dict[str, str | None] = {r.name: r.fallback for r in settings.receivers}
    if settings.slack is not None:
        out["slack"] = settings.slack.fallback
        for name in names:
            if name.startswith("slack:"):
                out[name] = settings.slack.fallback
    return out


