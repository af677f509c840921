"""KServe's V1 protocol: ``GET /v1/models/{model}`` is ``{"name", "ready"}``, 503 when not ready."""

from __future__ import annotations

from urllib.parse import quote

from checks.model_endpoint.config import ModelEndpointConfig
from checks.model_endpoint.observation import Observation
from checks.model_endpoint.probe import Answer, HttpProbe

__all__ = ["inference_path", "observe"]


def _model_path(cfg: ModelEndpointConfig) -> str:
    return f"/v1/models/{quote(cfg.model or '', safe='')}"


def inference_path(cfg: ModelEndpointConfig) -> str:
    return _model_path(cfg) + ":predict"


async def observe(probe: HttpProbe, cfg: ModelEndpointConfig) -> Observation:
    answer = await probe.request("GET", cfg.url.rstrip("/") + _model_path(cfg))
    if answer.status == 503:  # KServe says why: {"error": "Model with name sk is not ready."}
        return Observation(answer, ready=False, state="NOT READY", problem=_error(answer))
    if answer.status == 404:
        return Observation(answer, ready=False, state="NOT FOUND",
                           problem=_error(answer) or "the server does not know this model")
    if answer.status != 200:
        raise answer.http_failure()
    data = answer.json()
    if not isinstance(data, dict) or not isinstance(data.get("ready"), bool):
        raise answer.malformed("answered without a boolean `ready` field")
    ready = data["ready"]
    return Observation(answer, ready=ready, state="READY" if ready else "NOT READY",
                       version=cfg.version)


def _error(answer: Answer) -> str | None:
    try:
        data = answer.json()
    except Exception:  # noqa: BLE001 - the status already says what happened
        return None
    error = data.get("error") if isinstance(data, dict) else None
    return str(error) if error else None
