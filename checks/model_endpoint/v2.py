"""Open Inference Protocol (V2): KServe, Triton, MLServer.

Server liveness and readiness, the model's (version's) readiness and the server's
metadata are asked together; the model's metadata only once it is ready.

Not ready is 400 with an empty body on MLServer and Triton, 503 on KServe's Python
server; an unknown model is 404. KServe's model-ready route also answers 200 with
``{"ready": false}``, so a 200 body is read when it is JSON.
"""

from __future__ import annotations

import asyncio
from urllib.parse import quote

from checks.model_endpoint.config import ModelEndpointConfig
from checks.model_endpoint.observation import Observation
from checks.model_endpoint.probe import Answer, HttpProbe

__all__ = ["inference_path", "observe"]


def _model_path(cfg: ModelEndpointConfig) -> str:
    path = f"/v2/models/{quote(cfg.model or '', safe='')}"
    if cfg.version:
        path += f"/versions/{quote(cfg.version, safe='')}"
    return path


def inference_path(cfg: ModelEndpointConfig) -> str:
    return _model_path(cfg) + "/infer"


async def observe(probe: HttpProbe, cfg: ModelEndpointConfig) -> Observation:
    base = cfg.url.rstrip("/")
    model = _model_path(cfg)
    live, server_ready, ready, server = await asyncio.gather(
        probe.request("GET", f"{base}/v2/health/live"),
        probe.request("GET", f"{base}/v2/health/ready"),
        probe.request("GET", f"{base}{model}/ready"),
        probe.request("GET", f"{base}/v2"),
    )
    server_name = _server_name(server)
    if live.status != 200:
        if live.status >= 500 or live.status == 404:
            raise live.http_failure("the server says it is not live")
        return Observation(ready, ready=False, state="NOT LIVE", server=server_name,
                           problem="the server says it is not live")
    if server_ready.status in (400, 503) and ready.status != 200:
        return Observation(ready, ready=False, state="NOT READY", server=server_name,
                           problem="the server says it is not ready")
    if ready.status in (400, 503):
        return Observation(ready, ready=False, state="NOT READY", server=server_name)
    if ready.status == 404:
        return Observation(ready, ready=False, state="NOT FOUND", server=server_name,
                           problem=_error(ready) or "the server does not know this model")
    if ready.status != 200:
        raise ready.http_failure()
    if ready.body and ready.content_type == "application/json":
        flag = ready.json()
        if isinstance(flag, dict) and flag.get("ready") is False:
            return Observation(ready, ready=False, state="NOT READY", server=server_name)
    meta = await probe.request("GET", f"{base}{model}")
    version, platform = cfg.version, None
    if meta.status == 200:
        data = meta.json()
        if not isinstance(data, dict):
            raise meta.malformed("answered model metadata that is not a JSON object")
        versions = data.get("versions") or []
        if version is None and isinstance(versions, list) and versions:
            version = ",".join(str(v) for v in versions)
        platform = data.get("platform") or None
    return Observation(ready, ready=True, state="READY", version=version, platform=platform,
                       server=server_name)


def _server_name(answer: Answer) -> str | None:
    if answer.status != 200 or not answer.body:
        return None
    try:
        data = answer.json()
    except Exception:  # noqa: BLE001 - server metadata is a nicety, never a failure
        return None
    if isinstance(data, dict) and data.get("name"):
        return f"{data['name']} {data.get('version', '')}".strip()
    return None


def _error(answer: Answer) -> str | None:
    try:
        data = answer.json()
    except Exception:  # noqa: BLE001 - the status already says what happened
        return None
    return data.get("error") if isinstance(data, dict) else None
