"""Config models of the ``exporters:`` section.

Datadog settings fall back to the environment variables Datadog's own tools read
(``DD_AGENT_HOST``, ``DD_DOGSTATSD_PORT``, ``DD_DOGSTATSD_SOCKET``, ``DD_API_KEY``,
``DD_APP_KEY``, ``DD_SITE``) so an agent deployed beside a Datadog Agent needs no Datadog
keys in its file. Unified service tagging (``DD_ENV``, ``DD_SERVICE``, ``DD_VERSION``,
``DD_TAGS``) is read by :mod:`agent.export.unified`.
"""

from __future__ import annotations

import math
import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from agent.durations import Duration

__all__ = [
    "DatadogConfig",
    "DogStatsdTarget",
    "ExportersConfig",
    "PrometheusConfig",
    "PushgatewayConfig",
]

# Datadog's intake refuses points older than this (and more than 10 min in the future).
INTAKE_MAX_AGE = 3600.0


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PushgatewayConfig(_Model):
    """Push the latest values to a Prometheus Pushgateway, for agents nothing scrapes."""

    url: str = Field(description="Pushgateway base URL, e.g. http://pushgateway:9091.")
    job: str = Field("mlwarden", min_length=1, description="The `job` grouping key.")
    interval: Duration = Field(30.0, gt=0, description="Time between pushes.")
    timeout: Duration = Field(10.0, gt=0, description="Timeout of one push.")
    delete_on_stop: bool = Field(
        False, description="Delete this agent's group from the Pushgateway when it stops."
    )


class PrometheusConfig(_Model):
    """The /metrics endpoint on the agent's own server."""

    enabled: bool = Field(
        True, description="Serve /metrics (Prometheus text; OpenMetrics and gzip when asked)."
    )
    listen: str | None = Field(
        None,
        description="host:port of an extra listener serving /metrics only, without a token "
        "(for scrapers that cannot send one; /status stays behind `agent.auth_token`).",
    )
    histogram_buckets: dict[str, tuple[float, ...]] = Field(
        default_factory=dict,
        description="Histogram upper bounds (in the metric's unit) by check type, or "
        "`default` for all; distributions (probe latency) are exported as histograms "
        "(default: 5ms to 30s).",
    )
    pushgateway: PushgatewayConfig | None = Field(
        None, description="Also push to a Pushgateway (grouping key: job and instance=hostname)."
    )

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is None:
            return None
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
            raise ValueError(f"expected host:port like '0.0.0.0:9465', found {value!r}")
        return value

    @field_validator("histogram_buckets")
    @classmethod
    def _increasing(cls, value: dict[str, tuple[float, ...]]) -> dict[str, tuple[float, ...]]:
        for check_type, bounds in value.items():
            if any(math.isnan(b) or b == -math.inf for b in bounds):
                raise ValueError(f"{check_type}: bucket bounds must be numbers")
            finite = tuple(b for b in bounds if b != math.inf)
            if not finite:
                raise ValueError(f"{check_type}: give at least one finite bucket bound "
                                 "(+Inf is always added)")
            for low, high in zip(finite, finite[1:]):
                if not high > low:
                    raise ValueError(f"{check_type}: bucket bounds must increase; found {high:g} "
                                     f"after {low:g}")
            value[check_type] = finite
        return value

    @property
    def metrics_listen(self) -> tuple[str, int] | None:
        if self.listen is None:
            return None
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)


class DogStatsdTarget(_Model):
    """Where DogStatsD datagrams go, resolved from the config and then the environment."""

    host: str
    port: int
    socket: str | None


class DatadogConfig(_Model):
    """Send metrics, service checks and events to Datadog: via a local Datadog Agent or the HTTP API."""

    mode: Literal["dogstatsd", "api"] = Field(
        "dogstatsd",
        description="`dogstatsd`: to a local Datadog Agent; `api`: straight to Datadog's intake.",
    )
    # -- dogstatsd
    host: str | None = Field(
        None, description="DogStatsD host (default: $DD_AGENT_HOST, else 127.0.0.1)."
    )
    port: int | None = Field(
        None, ge=1, le=65535, description="DogStatsD UDP port (default: $DD_DOGSTATSD_PORT, else 8125)."
    )
    socket: str | None = Field(
        None, description="DogStatsD Unix socket path; wins over host/port (default: $DD_DOGSTATSD_SOCKET)."
    )
    buffering: bool = Field(
        True, description="Pack many metrics per datagram (client-side buffering)."
    )
    max_packet_size: int | None = Field(
        None, ge=512, le=65_000,
        description="Largest DogStatsD datagram in bytes (default 8192 over a Unix socket or "
        "to a loopback address, 1432 (one Ethernet MTU) over UDP to another host).",
    )
    flush_interval: Duration | None = Field(
        None, gt=0,
        description="dogstatsd: buffer flush period (default 1s); api: how often points are "
        "batched and sent (default 10s).",
    )
    service_checks: bool = Field(
        True, description="Send a service check per check instance with its status."
    )
    # -- api
    api_key: SecretStr | None = Field(
        None, description="Datadog API key for `mode: api` (default: $DD_API_KEY)."
    )
    site: str | None = Field(
        None, description="Datadog site, e.g. datadoghq.eu (default: $DD_SITE, else datadoghq.com)."
    )
    api_url: str | None = Field(
        None, description="Intake base URL; overrides `site` (proxies, tests)."
    )
    timeout: Duration = Field(10.0, gt=0, description="Timeout of one API request.")
    max_points_per_request: int = Field(
        5000, ge=1, description="Points per series submission (one outbox item each)."
    )
    queue_max_items: int = Field(
        10_000, ge=1,
        description="Unsent batches kept in the outbox; beyond this the oldest are dropped and counted.",
    )
    max_age: Duration = Field(
        INTAKE_MAX_AGE, gt=0, le=INTAKE_MAX_AGE,
        description="Unsent points older than this are dropped and counted (Datadog refuses > 1h).",
    )
    retry_initial: Duration = Field(1.0, gt=0, description="First retry delay after a failure.")
    retry_max: Duration = Field(60.0, gt=0, description="Longest retry delay (exponential backoff).")
    client_backoff: Duration = Field(
        300.0, gt=0,
        description="How long the datadog client refuses to call after 3 timeouts in a row.",
    )
    send_metadata: bool = Field(
        False,
        description="api: set each metric's type, unit and description in Datadog from the "
        "catalog (once per metric, again when the catalog changes it); needs an application key.",
    )
    app_key: SecretStr | None = Field(
        None, description="Datadog application key for `send_metadata` (default: $DD_APP_KEY, "
        "else $DD_APPLICATION_KEY)."
    )
    # -- both modes
    custom_metrics_budget: int | None = Field(
        None, ge=1,
        description="Most distinct custom metrics (metric name x tag set, what Datadog bills) "
        "sent per rolling hour. Over it, `cardinality_tags` are removed from the biggest "
        "contributors first, then new series are held back; each decision is logged once and "
        "shown in /status.",
    )
    cardinality_tags: tuple[str, ...] = Field(
        (), description="Tags the budget may remove to stay under it, in order of preference "
        "(e.g. [pod, model_version])."
    )

    @model_validator(mode="after")
    def _api_needs_a_key(self) -> DatadogConfig:
        if self.mode == "api" and self.api_key is None and not os.environ.get("DD_API_KEY"):
            raise ValueError("mode `api` needs `api_key` (or the DD_API_KEY environment variable), "
                             "found neither")
        if self.send_metadata:
            if self.mode != "api":
                raise ValueError("send_metadata sets metric metadata through Datadog's API: it "
                                 "needs `mode: api` (a Datadog Agent cannot set it)")
            if not self.resolved_app_key():
                raise ValueError("send_metadata needs an application key: `app_key` (or the "
                                 "DD_APP_KEY environment variable), found neither")
        if self.cardinality_tags and self.custom_metrics_budget is None:
            raise ValueError("cardinality_tags are removed only to stay under "
                             "custom_metrics_budget, which is not set")
        reserved = sorted({"env", "service", "version"} & set(self.cardinality_tags))
        if reserved:
            raise ValueError(f"cardinality_tags may not name {reserved}: unified service "
                             "tagging needs env, service and version on everything sent")
        return self

    @property
    def interval(self) -> float:
        if self.flush_interval is not None:
            return self.flush_interval
        return 10.0 if self.mode == "api" else 1.0

    def dogstatsd_target(self) -> DogStatsdTarget:
        env = os.environ
        socket = self.socket or env.get("DD_DOGSTATSD_SOCKET") or None
        host = self.host or env.get("DD_AGENT_HOST") or "127.0.0.1"
        port = self.port or int(env.get("DD_DOGSTATSD_PORT") or 8125)
        return DogStatsdTarget(host=host, port=port, socket=socket)

    def resolved_api_key(self) -> str:
        if self.api_key is not None:
            return self.api_key.get_secret_value()
        return os.environ.get("DD_API_KEY", "")

    def resolved_app_key(self) -> str:
        if self.app_key is not None:
            return self.app_key.get_secret_value()
        env = os.environ
        return env.get("DD_APP_KEY") or env.get("DD_APPLICATION_KEY") or ""

    def resolved_api_url(self) -> str:
        if self.api_url:
            return self.api_url.rstrip("/")
        site = self.site or os.environ.get("DD_SITE") or "datadoghq.com"
        return f"https://api.{site}"


class ExportersConfig(_Model):
    """Where samples go besides the history store."""

    prometheus: PrometheusConfig = Field(default_factory=PrometheusConfig)
    datadog: DatadogConfig | None = Field(
        None, description="Datadog exporter; Prometheus stays on beside it as the fallback."
    )
