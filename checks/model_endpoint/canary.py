"""The canary inference: POST a sample request and judge the answer's shape."""

from __future__ import annotations

from checks.model_endpoint.assertions import failed_assertions
from checks.model_endpoint.config import CanaryConfig
from checks.model_endpoint.probe import Answer, HttpProbe

__all__ = ["run_canary"]


async def run_canary(probe: HttpProbe, url: str,
                     canary: CanaryConfig) -> tuple[Answer, dict | list]:
    """The answer and its JSON; a ProbeFailure when it failed or had the wrong shape."""
    answer = await probe.request("POST", url, json_body=canary.request)
    if not 200 <= answer.status < 300:
        raise answer.http_failure()
    data = answer.json()
    problems = failed_assertions(data, canary.expect)
    if problems:
        raise answer.malformed("answered, but " + "; ".join(problems))
    return answer, data
