"""Builds the configured exporters as agent components (the one place app.py calls).

Prometheus (/metrics) is on unless disabled, with or without Datadog, so metrics stay
reachable when Datadog is not. Datadog's API mode needs the store's engine for its
durable outbox; it is asked for only then, so a DogStatsD or Prometheus-only agent never
opens the database for exporting.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from agent.config import AgentConfig
from agent.export.health import HealthSource
from agent.export.prometheus import PrometheusExporter
from agent.samples import CheckResult

__all__ = ["Exporters", "build_exporters"]


@dataclass
class Exporters:
    prometheus: PrometheusExporter | None = None
    components: list[Any] = field(default_factory=list)


def build_exporters(config: AgentConfig, engine: Callable[[], Engine],
                    submit: Callable[[CheckResult], None]) -> Exporters:
    """Every configured exporter, plus the source that exports their health.

    Components that have ``consume`` are attached to the pipeline by the agent.
    """
    out = Exporters()
    senders: list[Any] = []
    prom = config.exporters.prometheus
    if prom.enabled or prom.pushgateway is not None:
        latest = PrometheusExporter(buckets=prom.histogram_buckets)
        out.components.append(latest)
        out.prometheus = latest if prom.enabled else None  # None: /metrics answers 404
        if prom.pushgateway is not None:
            from agent.export.pushgateway import PushgatewayPusher

            senders.append(PushgatewayPusher(prom.pushgateway, latest, config.agent.hostname))
    dd = config.exporters.datadog
    if dd is not None:
        # the environment's DD_TAGS may override these keys (agent.export.unified)
        file_keys = tuple(config.agent.tags)
        if dd.mode == "api":
            from agent.export.datadog_api import DatadogApiExporter

            senders.append(DatadogApiExporter(dd, engine(), hostname=config.agent.hostname,
                                              file_tag_keys=file_keys))
        else:
            from agent.export.datadog_statsd import DogStatsdExporter

            senders.append(DogStatsdExporter(dd, file_tag_keys=file_keys))
    out.components.extend(senders)
    exporters = [c for c in out.components if hasattr(c, "health")]
    if exporters:
        out.components.append(HealthSource(exporters, submit, config.agent.self_check_interval))
    return out
