"""The ``model_endpoint`` check: a small dispatcher over one module per protocol family.

Each protocol module turns its server's answers into an :class:`Observation` (ready or
not, in the server's own words); this module reports it the same way for all of them.

``endpoint.ready`` is the server's own verdict on the model, so it exists only when the
server answered: a probe that fails reports ``up`` 0 and no readiness (a down server is
down, not "up but not ready"). When ``up`` or ``ready`` is 0 the sample carries the cause in
the server's words as its ``reason`` fact ("Model iris-sklearn not found", "refused: ..."),
which alert texts show; no tag is ever sent empty.
"""

from __future__ import annotations

from types import ModuleType

from yarl import URL

from agent.check import AgentCheck
from agent.errors import ConfigError
from agent.node import is_loopback
from agent.samples import Status
from agent.secrets import scrub
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
        self._tags = _present({"model": cfg.model, "endpoint": endpoint, "protocol": cfg.protocol,
                               "node": self._node(cfg)})
        self._label = f"model {cfg.model}" if cfg.model else f"endpoint {endpoint}"

    def _node(self, cfg: ModelEndpointConfig) -> str | None:
        """The `node` tag: a server probed over loopback runs on the agent's node; one
        elsewhere is labelled by the user (``tags: {node: ...}``), and that label stands."""
        placed = "node" in cfg.tags or "node" in self.context.agent_tags
        if placed or not is_loopback(URL(cfg.url).host):
            return None
        return self.context.node

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
        reason = _reason(obs.problem or f"the server reports {obs.state}")
        self.gauge("endpoint.up", 1 if obs.up else 0, tags if obs.up else {**tags, **reason})
        self.gauge("endpoint.ready", 1 if obs.ready else 0,
                   tags if obs.ready else {**tags, **reason})
        self.gauge("endpoint.http_status", answer.status, tags)
        self._timing(answer.latency, answer.connect, answer.ttfb)
        version = obs.version or self._served_version
        self.gauge("endpoint.model.info", 1, {**tags, **_present(
            {"version": version, "platform": obs.platform, "server": obs.server})})
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
        if probe == "health":  # no answer in its protocol: down, and no readiness to report
            self.gauge("endpoint.up", 0, {**tags, **_reason(f"{failure.kind.value}: {failure}")})
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


def _present(tags: dict[str, str | None]) -> dict[str, str]:
    """Tags that have a value: an empty tag is noise in every backend."""
    return {k: v for k, v in tags.items() if v}


def _reason(text: str) -> dict[str, str]:
    """The ``reason`` fact: the cause in the server's words, one line, bounded, no secrets."""
    line = " ".join(scrub(text).split())
    return {"reason": line if len(line) <= 200 else line[:199] + "…"}
