"""Config models of the ``exporters:`` section."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ExportersConfig", "PrometheusConfig"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PrometheusConfig(_Model):
    """The /metrics endpoint on the agent's own server."""

    enabled: bool = Field(True, description="Serve /metrics in Prometheus text format.")


class ExportersConfig(_Model):
    prometheus: PrometheusConfig = Field(default_factory=PrometheusConfig)
