"""Settings of a `gpu` check instance: which source, and how idle GPUs are priced."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from agent.check import InstanceConfig
from agent.durations import Duration

__all__ = ["GpuConfig"]


class GpuConfig(InstanceConfig):
    """One `gpu` check instance: the local node through NVML, or dcgm-exporter endpoints."""

    source: Literal["nvml", "dcgm"] = Field(
        "nvml",
        description="`nvml`: this node's GPUs through nvidia-ml-py; `dcgm`: scrape the "
        "dcgm-exporter endpoints in `urls` (one per GPU node).",
    )
    urls: tuple[str, ...] = Field(
        (), description="dcgm-exporter metrics URLs, e.g. http://gpu-node-1:9400/metrics (dcgm only)."
    )
    node: str | None = Field(
        None,
        description="`node` tag of the local GPUs (nvml; default: $NODE_NAME, else the host name). "
        "DCGM series carry their own `Hostname` label.",
    )
    idle_threshold: float = Field(
        0.05, ge=0, le=1, description="A GPU is idle while its utilisation (0..1) stays below this."
    )
    idle_window: Duration = Field(
        1800.0, gt=0, description="How long a GPU must stay under the threshold to count as idle."
    )
    price_per_gpu_hour: float | None = Field(
        None, ge=0, description="What one GPU-hour costs, for the idle-cost metrics (any currency)."
    )
    prices: dict[str, float] = Field(
        default_factory=dict,
        description="Price per GPU-hour by GPU model name (shell glob, e.g. `*H100*`); the first "
        "match wins, else `price_per_gpu_hour`.",
    )
    processes: bool = Field(
        True, description="Report the processes on each GPU with their memory and container/pod (nvml)."
    )
    proc_root: str = Field(
        "/proc",
        description="Where the host's /proc is mounted, to map GPU processes to containers "
        "(a containerised agent needs hostPID or the host's /proc mounted here).",
    )
    xid_events: bool = Field(
        True, description="Count XID errors from NVML events on a thread of their own (nvml)."
    )
    expected_gpus: int | None = Field(
        None, ge=0,
        description="GPUs each node should have; default: the most seen (remembered across restarts).",
    )
    forget_lost_after: Duration = Field(
        7 * 86400.0, gt=0,
        description="A GPU not seen for this long is forgotten instead of reported lost.",
    )

    @field_validator("urls")
    @classmethod
    def _http_urls(cls, urls: tuple[str, ...]) -> tuple[str, ...]:
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"expected an http(s) URL like http://node:9400/metrics, found {url!r}")
        return urls

    @field_validator("prices")
    @classmethod
    def _non_negative(cls, prices: dict[str, float]) -> dict[str, float]:
        for model, price in prices.items():
            if price < 0:
                raise ValueError(f"price of {model!r} cannot be negative, found {price!r}")
        return prices

    @model_validator(mode="after")
    def _urls_match_source(self) -> GpuConfig:
        if self.source == "dcgm" and not self.urls:
            raise ValueError("source dcgm needs `urls`: the dcgm-exporter endpoints to scrape, found none")
        if self.source == "nvml" and self.urls:
            raise ValueError("`urls` is for source dcgm; source nvml reads the local GPUs, found urls")
        return self
