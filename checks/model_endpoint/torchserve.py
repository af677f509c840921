"""TorchServe: the inference API's ``/ping`` and the management API's model description.

``/ping`` answers 200 ``{"status": "Healthy"}`` or 500 ``{"status": "Unhealthy"}``. The
management API (its own port, 8081 by default, and its own key under token
authorisation) describes each loaded version with its workers and their status; a model
is ready when one of its workers is READY.
"""

from __future__ import annotations

import asyncio
from urllib.parse import quote

from yarl import URL

from checks.model_endpoint.config import ModelEndpointConfig
from checks.model_endpoint.observation import Observation
from checks.model_endpoint.probe import Answer, HttpProbe, ProbeFailure

__all__ = ["inference_path", "observe", "management_url"]


def management_url(cfg: ModelEndpointConfig) -> str:
    if cfg.management_url:
        return cfg.management_url.rstrip("/")
    return str(URL(cfg.url).with_port(8081).with_path("")).rstrip("/")


def inference_path(cfg: ModelEndpointConfig) -> str:
    path = f"/predictions/{quote(cfg.model or '', safe='')}"
    return path + (f"/{quote(cfg.version, safe='')}" if cfg.version else "")


async def observe(probe: HttpProbe, cfg: ModelEndpointConfig) -> Observation:
    model = quote(cfg.model or "", safe="")
    describe = f"{management_url(cfg)}/models/{model}"
    if cfg.version:
        describe += f"/{quote(cfg.version, safe='')}"
    headers = ({"Authorization": f"Bearer {cfg.management_token.get_secret_value()}"}
               if cfg.management_token else None)
    ping, desc = await asyncio.gather(
        probe.request("GET", f"{cfg.url.rstrip('/')}/ping"),
        probe.request("GET", describe, headers=headers),
    )
    for answer, which, option in ((ping, "inference", "bearer_token"),
                                  (desc, "management", "management_token")):
        if _key_refused(answer):
            raise answer.http_failure(
                f"the {which} API refused the key: set `{option}` to the {which} key from "
                "TorchServe's key_file.json")
    if ping.status not in (200, 500):
        raise ping.http_failure()
    health = ping.json()
    health_word = health.get("status") if isinstance(health, dict) else None
    if not isinstance(health_word, str):
        raise ping.malformed("answered without a `status` field")
    if desc.status == 404:
        return Observation(ping, ready=False, state="NOT FOUND", up=True,
                           problem="the management API does not know this model")
    if desc.status != 200:
        raise desc.http_failure()
    entries = desc.json()
    if not isinstance(entries, list) or not entries or not isinstance(entries[0], dict):
        raise desc.malformed("answered a model description that is not a list of versions")
    entry = entries[0]
    workers = entry.get("workers")
    if not isinstance(workers, list):
        raise desc.malformed("answered a model description without `workers`")
    statuses = [str(w.get("status", "UNKNOWN")) for w in workers if isinstance(w, dict)]
    ready_workers = statuses.count("READY")
    version = str(entry.get("modelVersion")) if entry.get("modelVersion") is not None else None
    versions = {str(e.get("modelVersion")): ("READY" if any(
        isinstance(w, dict) and w.get("status") == "READY" for w in e.get("workers") or [])
        else "NOT READY") for e in entries if isinstance(e, dict)}
    if ping.status != 200:
        state, ready = health_word.upper(), False
    elif ready_workers:
        state, ready = "READY", True
    else:
        state, ready = (", ".join(sorted(set(statuses))) or "NO WORKERS"), False
    return Observation(ping, ready=ready, state=state, version=version,
                       platform=entry.get("runtime") or entry.get("engine") or None,
                       versions=versions, workers=len(statuses), workers_ready=ready_workers)


def _key_refused(answer: Answer) -> bool:
    """TorchServe's token check answers 400 (older builds 401) with an InvalidKeyException."""
    if answer.status not in (400, 401):
        return False
    try:
        data = answer.json()
    except ProbeFailure:
        return answer.status == 401
    return isinstance(data, dict) and data.get("type") == "InvalidKeyException"
