"""Builds the configured exporters as agent components (the one place app.py calls).

Prometheus (/metrics) is on unless disabled, with or without Datadog, so metrics stay
reachable when Datadog is not. Datadog's API mode needs the store's engine for its
durable outbox; it is asked for only then, so a DogStatsD or Prometheus-only agent never
opens the database for exporting. It takes the ``exporters`` section and the agent's
:class:`~agent.identity.Identity`, not the whole config, and says which of its components
are pipeline sinks (``Exporters.sinks``): app.py attaches those, nothing is discovered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from agent.export.config import ExportersConfig
from agent.export.health import HasHealth, HealthSource
from agent.export.prometheus import PrometheusExporter
from agent.identity import Identity
from agent.pipeline import Sink
from agent.samples import CheckResult

if TYPE_CHECKING:
    from agent.export.datadog_api import DatadogApiExporter
    from agent.export.datadog_statsd import DogStatsdExporter

__all__ = ["Exporters", "build_exporters"]


@dataclass
class Exporters:
    """What :func:`build_exporters` built.

    ``components`` are started and stopped by the agent (every exporter, then the health
    source); ``sinks`` are those of them the pipeline feeds, in the order they are fed.
    """

    prometheus: PrometheusExporter | None = None
    components: list[Any] = field(default_factory=list)
    sinks: list[Sink] = field(default_factory=list)


def build_exporters(config: ExportersConfig, identity: Identity, engine: Callable[[], Engine],
                    submit: Callable[[CheckResult], None]) -> Exporters:
    """Every configured exporter, plus the source that exports their health."""
    out = Exporters()
    exporters: list[HasHealth] = []
    prom = config.prometheus
    if prom.enabled or prom.pushgateway is not None:
        latest = PrometheusExporter(buckets=prom.histogram_buckets)
        exporters.append(latest)
        out.sinks.append(latest)
        out.prometheus = latest if prom.enabled else None  # None: /metrics answers 404
        if prom.pushgateway is not None:
            from agent.export.pushgateway import PushgatewayPusher

            exporters.append(PushgatewayPusher(prom.pushgateway, latest, identity.hostname))
    dd = config.datadog
    if dd is not None:
        # the environment's DD_TAGS may override these keys (agent.export.unified)
        file_keys = tuple(identity.tags)
        sender: DatadogApiExporter | DogStatsdExporter
        if dd.mode == "api":
            from agent.export.datadog_api import DatadogApiExporter

            sender = DatadogApiExporter(dd, engine(), hostname=identity.hostname,
                                        file_tag_keys=file_keys)
        else:
            from agent.export.datadog_statsd import DogStatsdExporter

            sender = DogStatsdExporter(dd, file_tag_keys=file_keys)
        exporters.append(sender)
        out.sinks.append(sender)
    out.components.extend(exporters)
    if exporters:
        out.components.append(HealthSource(exporters, submit, identity.report_interval))
    return out
