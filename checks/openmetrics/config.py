"""Settings of an ``openmetrics`` instance: where to scrape and which series to forward."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from agent.check import InstanceConfig
from checks.model_endpoint.config import HttpOptions

__all__ = ["MetricSelector", "OpenMetricsConfig"]

_RENAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$")
RESERVED = ("scrape", "up", "errors")


class MetricSelector(BaseModel):
    """Series to forward: one metric by ``name`` (optionally renamed) or many by ``regex``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(None, min_length=1, description="Exact metric (family) name.")
    regex: str | None = Field(None, min_length=1, description="Regex the whole name must match.")
    rename: str | None = Field(
        None, description="Forward as `mlwarden.openmetrics.<rename>` (with `name` only)."
    )

    @field_validator("regex")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regex {value!r}: {exc}") from None
        return value

    @field_validator("rename")
    @classmethod
    def _rename(cls, value: str | None) -> str | None:
        if value is not None:
            if not _RENAME.match(value):
                raise ValueError(f"rename {value!r} must be lower-case words joined by dots, "
                                 "like 'triton.inference_count'")
            if value.split(".")[0] in RESERVED:
                raise ValueError(f"rename {value!r} collides with the check's own metrics "
                                 f"(names starting with {', '.join(RESERVED)})")
        return value

    @model_validator(mode="after")
    def _one_of(self) -> MetricSelector:
        if (self.name is None) == (self.regex is None):
            raise ValueError("give exactly one of `name` or `regex`; found "
                             + ("both" if self.name else "neither"))
        if self.rename is not None and self.regex is not None:
            raise ValueError("`rename` needs `name` (a regex selects many metrics); found `regex`")
        return self


class OpenMetricsConfig(InstanceConfig, HttpOptions):
    """One Prometheus text endpoint (Triton, TorchServe, vLLM, DCGM exporter, ...)."""

    metrics: tuple[MetricSelector, ...] = Field(
        description="Which series to forward (by name or regex)."
    )
    label_map: dict[str, str] = Field(
        default_factory=dict, description="Rename source labels to tags: {label: tag}."
    )
    drop_labels: tuple[str, ...] = Field(default=(), description="Source labels not forwarded.")
    max_series: int = Field(
        2000, ge=1,
        description="Most series forwarded per scrape (the rest are dropped, with a warning).",
    )

    @field_validator("metrics")
    @classmethod
    def _some(cls, value: tuple[MetricSelector, ...]) -> tuple[MetricSelector, ...]:
        if not value:
            raise ValueError("list at least one metric to forward; found none")
        return value

    @property
    def probe_deadline(self) -> float:
        return min(float(self.request_timeout), self.deadline)
