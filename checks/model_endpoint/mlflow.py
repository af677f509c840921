"""MLflow's scoring server: ``/ping`` is 200 once the model is loaded, 404 before; ``/version``."""

from __future__ import annotations

import asyncio

from checks.model_endpoint.config import ModelEndpointConfig
from checks.model_endpoint.observation import Observation
from checks.model_endpoint.probe import HttpProbe

__all__ = ["inference_path", "observe"]


def inference_path(cfg: ModelEndpointConfig) -> str:
    return "/invocations"


async def observe(probe: HttpProbe, cfg: ModelEndpointConfig) -> Observation:
    base = cfg.url.rstrip("/")
    ping, version = await asyncio.gather(probe.request("GET", f"{base}/ping"),
                                         probe.request("GET", f"{base}/version"))
    server = f"mlflow {version.text().strip()}" if version.status == 200 and version.body else None
    if ping.status == 404:
        return Observation(ping, ready=False, state="NOT LOADED", server=server,
                           problem="the scoring server has no model loaded")
    if ping.status != 200:
        raise ping.http_failure()
    return Observation(ping, ready=True, state="READY", server=server, version=cfg.version)
