"""The ``model_endpoint`` check: a small dispatcher over one module per protocol family.

Each protocol module turns its server's answers into an :class:`Observation` (ready or
not, in the server's own words); this module reports it the same way for all of them.
"""

from __future__ import annotations

from types import ModuleType

from yarl import URL

from agent.check import AgentCheck
from agent.errors import ConfigError
from agent.samples import Status
from checks.model_endpoint import generic, kserve_v1, mlflow, tfserving, torchserve, v2
from checks.model_endpoint.canary import run_canary
from checks.model_endpoint.config import ModelEndpointConfig
from checks.model_endpoint.observation import Observation
from checks.model_endpoint.probe import HttpProbe, ProbeFailure

__all__ = ["ModelEndpointCheck"]

PROTOCOLS: dict[str, ModuleType] = {
    "v2": v2, "torchserve": torchserve, "tfserving": tfserving, "kserve-v1": kserve_v1,
    "mlflow": mlflow, "http": generic,
}


class ModelEndpointCheck(AgentCheck):
    type_name = "model_endpoint"
    key_metric = "mlwarden.endpoint.latency"
    Config = ModelEndpointConfig
    config: ModelEndpointConfig

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        cfg = self.config
        self._protocol = PROTOCOLS[cfg.protocol]
        self._probe: HttpProbe | None = None
        self._canary_due = 0.0
        self._served_version: str | None = None
        endpoint = str(URL(cfg.url).with_query(None).with_fragment(None))
        self._tags = {"model": cfg.model or "", "endpoint": endpoint, "protocol": cfg.protocol}
        self._label = f"model {cfg.model}" if cfg.model else f"endpoint {endpoint}"

    @property
    def report_interval(self) -> float:
        """The canary reports on its own, slower cadence: its values are held that long."""
        base = super().report_interval
        canary = self.config.canary
        return max(base, float(canary.interval)) if canary is not None else base

    async def check(self) -> None:
        try:
            probe = self._get_probe()
        except ConfigError as exc:
            self.service_check(Status.UNKNOWN, f"{self._label}: bad config: {exc}")
            return
        try:
            obs = await self._protocol.observe(probe, self.config)
        except ProbeFailure as failure:
            self._failed(failure, "health")
            return
        self._observed(obs)
        if self.config.canary is not None and obs.ready and self.now >= self._canary_due:
            self._canary_due = self.now + self.config.canary.interval
            await self._canary(probe)

    def _get_probe(self) -> HttpProbe:
        if self._probe is None:  # built on the first run so a bad CA file is retried
            self._probe = HttpProbe(self.context, self.config, self.config.probe_deadline)
        return self._probe

    def _observed(self, obs: Observation) -> None:
        tags = self._tags
        answer = obs.answer
        self.gauge("endpoint.up", 1 if obs.up else 0, tags)
        self.gauge("endpoint.ready", 1 if obs.ready else 0, tags)
        self.gauge("endpoint.http_status", answer.status, tags)
        self._timing(answer.latency, answer.connect, answer.ttfb)
        version = obs.version or self._served_version
        self.gauge("endpoint.model.info", 1, {**tags, "version": version or "",
                                               "platform": obs.platform or "",
                                               "server": obs.server or ""})
        if obs.versions:
            ready = sum(1 for s in obs.versions.values() if s in ("READY", "AVAILABLE"))
            self.gauge("endpoint.versions_ready", ready, tags)
        if obs.workers is not None:
            self.gauge("endpoint.workers", obs.workers, tags)
            self.gauge("endpoint.workers.ready", obs.workers_ready or 0, tags)
        what = f"{self._label} {version}" if version else self._label
        detail = f"{obs.state}: {obs.problem}" if obs.problem else obs.state
        extra = ", ".join(x for x in (obs.server, f"{answer.latency * 1000:.0f} ms") if x)
        self.service_check(Status.OK if obs.ready else Status.CRITICAL,
                           f"{what}: {detail} ({extra})")

    def _timing(self, latency: float, connect: float | None, ttfb: float | None) -> None:
        tags = self._tags
        # one observation per probe: percentiles are computed where probes of every agent
        # and every window meet (Prometheus histograms, Datadog distributions)
        self.distribution("endpoint.latency", latency, tags)
        if connect is not None:
            self.gauge("endpoint.latency.connect", connect, tags)
        if ttfb is not None:
            self.gauge("endpoint.latency.ttfb", ttfb, tags)

    def _failed(self, failure: ProbeFailure, probe: str) -> None:
        tags = self._tags
        self.count("endpoint.errors", 1, {**tags, "error_kind": failure.kind.value, "probe": probe})
        if probe == "health":
            self.gauge("endpoint.up", 0, tags)
            self.gauge("endpoint.ready", 0, tags)
            if failure.http_status is not None:
                self.gauge("endpoint.http_status", failure.http_status, tags)
        label = self._label if probe == "health" else f"canary inference for {self._label}"
        self.service_check(failure.status, f"{label}: {failure.kind.value}: {failure}")

    async def _canary(self, probe: HttpProbe) -> None:
        cfg = self.config
        assert cfg.canary is not None
        path = cfg.canary.path or self._protocol.inference_path(cfg)
        # `http` probes a full URL, so its canary path is from the host; the others
        # append to the base URL (which may carry a gateway prefix)
        url = (str(URL(cfg.url).with_path(path, encoded=True)) if cfg.protocol == "http"
               else cfg.url.rstrip("/") + path)
        try:
            answer, data = await run_canary(probe, url, cfg.canary)
        except ProbeFailure as failure:
            self.gauge("endpoint.canary.success", 0, self._tags)
            self._failed(failure, "canary")
            return
        self.gauge("endpoint.canary.success", 1, self._tags)
        self.distribution("endpoint.canary.latency", answer.latency, self._tags)
        if isinstance(data, dict) and isinstance(data.get("model_version"), str):
            self._served_version = data["model_version"]
