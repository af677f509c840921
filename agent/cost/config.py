"""Config of the ``cost:`` section: the price table, which workloads serve which model,
which counters count predictions, the right-sizing thresholds and the weekly digest.

Prices have no built-in values: a GPU without a matching price has an *unknown* cost (shown
as such), never a guessed or zero one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from agent.durations import Duration

if TYPE_CHECKING:
    from agent.alerting.config import AlertingConfig

__all__ = ["CostConfig", "CpuTier", "DigestConfig", "DigestTarget", "ModelRule", "PriceEntry",
           "RequestMetric", "RightsizingConfig", "DEFAULT_REQUESTS", "digest_target"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PriceEntry(_Model):
    """One row of the price table: what a GPU-hour costs for GPUs whose model and node match."""

    gpu_model: str = Field(
        "*", min_length=1,
        description="Glob on the GPU model name, case-insensitive (e.g. `*H100*`, `*A10G*`).",
    )
    node: str = Field(
        "*", min_length=1,
        description="Glob on the node name, for node pools priced apart (e.g. `spot-*`).",
    )
    price_per_hour: float = Field(..., ge=0, description="Price of one GPU-hour, in `currency`.")
    capacity: Literal["on_demand", "spot"] = Field(
        "on_demand", description="How the node is bought: the `capacity` tag of its cost metrics "
        "and a column of the report.",
    )
    memory_gib: float | None = Field(
        None, gt=0,
        description="Memory of this card (GiB): lets right-sizing propose it as a smaller GPU.",
    )
    name: str | None = Field(
        None, description="How recommendations name this card (default: `gpu_model` without `*`)."
    )

    @property
    def label(self) -> str:
        return self.name or self.gpu_model.replace("*", "").strip() or "any GPU"


class ModelRule(_Model):
    """GPU workloads that serve ``model``: every glob given must match (case-sensitive)."""

    model: str = Field(..., min_length=1, description="The model's name, as request metrics label it.")
    pod: str | None = Field(None, description="Glob on the pod name (NVML process or DCGM label).")
    namespace: str | None = Field(None, description="Glob on the Kubernetes namespace.")
    container: str | None = Field(None, description="Glob on the container name (DCGM) or ID.")
    process: str | None = Field(None, description="Glob on the process name (NVML), e.g. `tritonserver`.")
    node: str | None = Field(None, description="Glob on the node name.")

    @model_validator(mode="after")
    def _some_selector(self) -> ModelRule:
        if not any((self.pod, self.namespace, self.container, self.process, self.node)):
            raise ValueError(f"model {self.model!r}: give at least one of pod, namespace, "
                             "container, process or node to say which GPU workloads serve it")
        return self


class RequestMetric(_Model):
    """A forwarded counter that counts a model server's successful predictions."""

    metric: str = Field(..., description="Catalog name as forwarded, e.g. "
                        "`mlwarden.openmetrics.model_infer_request_success`.")
    model_label: str = Field("model", description="The label holding the model's name.")

    @field_validator("metric")
    @classmethod
    def _dotted(cls, value: str) -> str:
        if not value.startswith("mlwarden."):
            raise ValueError(f"expected the forwarded name (mlwarden.openmetrics.<name>), found {value!r}")
        return value


# What the model servers' own /metrics call their success counters, as the openmetrics
# check forwards them (its `metrics:` must select them).
DEFAULT_REQUESTS: tuple[RequestMetric, ...] = (
    # MLServer, Triton, TorchServe, vLLM
    RequestMetric(metric="mlwarden.openmetrics.model_infer_request_success", model_label="model"),
    RequestMetric(metric="mlwarden.openmetrics.nv_inference_request_success", model_label="model"),
    RequestMetric(metric="mlwarden.openmetrics.ts_inference_requests", model_label="model_name"),
    RequestMetric(metric="mlwarden.openmetrics.vllm_request_success", model_label="model_name"),
)


class CpuTier(_Model):
    """The CPU serving tier, for "the CPU tier would do" savings."""

    price_per_hour: float = Field(
        ..., ge=0, description="Price of one CPU replica-hour; one replica replaces one GPU."
    )


class RightsizingConfig(_Model):
    """Thresholds of the right-sizing rules (docs/cost.md explains each rule)."""

    min_coverage: Duration = Field(
        86400.0, gt=0, description="GPU readings a model needs in the period before any rule speaks."
    )
    cpu_utilization_p95: float = Field(
        0.10, ge=0, le=1, description="`cpu-tier`: p95 GPU utilisation at or below this ..."
    )
    cpu_memory_gib: float = Field(
        4.0, gt=0, description="... and p95 GPU memory at or below this many GiB."
    )
    smaller_gpu_utilization_p95: float = Field(
        0.50, ge=0, le=1,
        description="`smaller-gpu`: p95 utilisation at or below this, and a cheaper priced card "
        "holds the p95 memory with headroom.",
    )
    memory_headroom: float = Field(
        0.25, ge=0, description="Memory kept free on the proposed card (0.25: 25 % above p95)."
    )
    busy_utilization_p95: float = Field(
        0.90, ge=0, le=1, description="`near-capacity`: p95 utilisation at or above this."
    )


class DigestConfig(_Model):
    """The weekly digest: the report's top lines and its chart, sent to a Slack receiver."""

    receiver: str = Field(
        "slack",
        description="A Slack bot receiver of `alerting:` (`slack`, a named receiver, or "
        "`slack:#channel`); `console` prints it.",
    )
    schedule: str = Field("0 9 * * mon", description="When to send, as a crontab line.")
    timezone: str = Field("UTC", description="IANA zone of `schedule`.")
    period: Duration = Field(7 * 86400.0, gt=0, description="What the digest covers.")
    top: int = Field(5, ge=1, le=20, description="Models and pipelines listed.")
    catch_up: Duration = Field(
        6 * 3600.0, ge=0,
        description="A digest due while the agent was down is still sent if it is at most this late.",
    )

    @field_validator("schedule")
    @classmethod
    def _crontab(cls, value: str) -> str:
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(value)
        except ValueError as exc:
            raise ValueError(f"expected a crontab line like '0 9 * * mon', found {value!r} ({exc})") from None
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name like 'Europe/Berlin')") from None
        return value


class CostConfig(_Model):
    """GPU cost per model and per pipeline run (docs/cost.md)."""

    currency: str = Field("USD", min_length=1, max_length=8, description="Currency of the prices.")
    prices: tuple[PriceEntry, ...] = Field(
        (), description="Price per GPU-hour by GPU model and node; the first match wins. "
        "No default prices: an unmatched GPU's cost is unknown.",
    )
    cpu_tier: CpuTier | None = Field(None, description="The CPU tier's price, for savings.")
    models: tuple[ModelRule, ...] = Field(
        (), description="Which GPU workloads serve which model (besides pods learnt from "
        "samples that carry both `model` and `pod` tags).",
    )
    requests: tuple[RequestMetric, ...] = Field(
        (), description="Counters of successful predictions besides the built-in ones (MLServer "
        "`model_infer_request_success`, Triton `nv_inference_request_success`, TorchServe "
        "`ts_inference_requests`, vLLM `vllm:request_success`, as the openmetrics check forwards them).",
    )
    max_gap: Duration = Field(
        300.0, gt=0,
        description="Two readings of a GPU further apart than this: the time between is not charged.",
    )
    window: Duration = Field(
        3600.0, gt=0, description="Trailing window of the live cost per 1,000 predictions."
    )
    rightsizing: RightsizingConfig = Field(default_factory=RightsizingConfig)
    digest: DigestConfig | None = Field(None, description="A scheduled digest to Slack.")


@dataclass(frozen=True)
class DigestTarget:
    """Where the digest goes, resolved from the ``alerting:`` receivers."""

    kind: Literal["slack", "console"]
    receiver: str
    channel: str = ""
    token: str = ""
    base_url: str = "https://slack.com/api/"
    timeout: float = 10.0


def digest_target(alerting: AlertingConfig, receiver: str) -> DigestTarget:
    """The Slack bot receiver (or console) named ``receiver``; ValueError saying what exists."""
    slack = alerting.slack
    if receiver == "console":
        return DigestTarget("console", receiver)
    base = dict(base_url=slack.base_url, timeout=float(slack.timeout)) if slack else {}
    bot = slack.token.get_secret_value() if slack and slack.token else None
    if receiver == "slack" or receiver.startswith("slack:"):
        if bot is None:
            raise ValueError(f"{receiver!r} needs alerting.slack.token (a bot token: the digest "
                             "uploads its chart, which a webhook cannot)")
        assert slack is not None
        channel = receiver.split(":", 1)[1] if ":" in receiver else slack.default_channel
        return DigestTarget("slack", receiver, channel, bot, **base)  # type: ignore[arg-type]
    for r in alerting.receivers:
        if r.name != receiver:
            continue
        if r.type == "console":
            return DigestTarget("console", receiver)
        token = r.token.get_secret_value() if r.token else bot
        if r.type != "slack" or token is None:
            raise ValueError(f"{receiver!r} is a {r.type} receiver"
                             + (" without a bot token" if r.type == "slack" else "")
                             + "; the digest needs a Slack bot receiver (it uploads a chart) or console")
        channel = r.channel or (slack.default_channel if slack else "#ml-alerts")
        return DigestTarget("slack", receiver, channel, token, **base)  # type: ignore[arg-type]
    known = ", ".join(["console", *(["slack"] if bot else []), *(r.name for r in alerting.receivers)])
    raise ValueError(f"{receiver!r} is not a receiver in alerting: (have: {known})")
