"""Any HTTP URL: expected status codes and optional expectations on the JSON body."""

from __future__ import annotations

from checks.model_endpoint.assertions import failed_assertions
from checks.model_endpoint.config import ModelEndpointConfig
from checks.model_endpoint.observation import Observation
from checks.model_endpoint.probe import ErrorKind, HttpProbe, ProbeFailure

__all__ = ["inference_path", "observe"]


def inference_path(cfg: ModelEndpointConfig) -> str:
    assert cfg.canary is not None and cfg.canary.path is not None  # enforced by the config
    return cfg.canary.path


async def observe(probe: HttpProbe, cfg: ModelEndpointConfig) -> Observation:
    answer = await probe.request("GET", cfg.url)
    if answer.status not in cfg.expected_status:
        expected = ", ".join(str(s) for s in cfg.expected_status)
        if answer.status >= 400:
            raise answer.http_failure(f"expected {expected}")
        raise ProbeFailure(ErrorKind.MALFORMED,
                           f"{answer.what} answered HTTP {answer.status}, expected {expected}",
                           answer.status, answer)
    if cfg.expect:
        problems = failed_assertions(answer.json(), cfg.expect)
        if problems:
            raise answer.malformed("answered, but " + "; ".join(problems))
    return Observation(answer, ready=True, state="UP", version=cfg.version)
