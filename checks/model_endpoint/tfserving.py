"""TensorFlow Serving's REST model status: 200 with each version's state in the body.

States are START, LOADING, AVAILABLE, UNLOADING and END; a version is ready only when
AVAILABLE. Without a configured version, the newest AVAILABLE one is what TF Serving
serves, so it is the one reported.
"""

from __future__ import annotations

from urllib.parse import quote

from checks.model_endpoint.config import ModelEndpointConfig
from checks.model_endpoint.observation import Observation
from checks.model_endpoint.probe import HttpProbe

__all__ = ["inference_path", "observe"]


def _model_path(cfg: ModelEndpointConfig) -> str:
    path = f"/v1/models/{quote(cfg.model or '', safe='')}"
    return path + (f"/versions/{quote(cfg.version, safe='')}" if cfg.version else "")


def inference_path(cfg: ModelEndpointConfig) -> str:
    return _model_path(cfg) + ":predict"


def _version_key(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (-1, version)


async def observe(probe: HttpProbe, cfg: ModelEndpointConfig) -> Observation:
    answer = await probe.request("GET", cfg.url.rstrip("/") + _model_path(cfg))
    if answer.status == 404:
        data = answer.json() if answer.body else {}
        problem = data.get("error") if isinstance(data, dict) else None
        return Observation(answer, ready=False, state="NOT FOUND",
                           problem=problem or "the server does not know this model")
    if answer.status != 200:
        raise answer.http_failure()
    data = answer.json()
    statuses = data.get("model_version_status") if isinstance(data, dict) else None
    if not isinstance(statuses, list) or not statuses:
        raise answer.malformed("answered without a `model_version_status` list")
    versions: dict[str, str] = {}
    errors: dict[str, str] = {}
    for item in statuses:
        if not isinstance(item, dict) or "version" not in item or "state" not in item:
            raise answer.malformed("answered a version status without `version` and `state`")
        versions[str(item["version"])] = str(item["state"])
        status = item.get("status") or {}
        if isinstance(status, dict) and status.get("error_message"):
            errors[str(item["version"])] = str(status["error_message"])
    if cfg.version:
        chosen = cfg.version if cfg.version in versions else next(iter(versions))
    else:
        available = [v for v, s in versions.items() if s == "AVAILABLE"]
        chosen = max(available or versions, key=_version_key)
    state = versions[chosen]
    return Observation(answer, ready=state == "AVAILABLE", state=state, version=chosen,
                       versions=versions, problem=errors.get(chosen))
