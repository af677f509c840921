"""Scheduler, triggerer, DAG processor and metadatabase health, judged from the body.

Airflow answers the health endpoint with HTTP 200 even when a component is unhealthy, and a
stopped scheduler still reads "healthy" until its heartbeat is older than Airflow's own
threshold (about 30 s): so this reads each component's ``status`` *and* its heartbeat age.
A component whose ``status`` is null does not run on its own (Airflow 2's DAG processor
inside the scheduler) and is not reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agent.samples import Status
from checks.airflow.client import AirflowApiError
from checks.airflow.times import parse_ts

__all__ = ["ComponentHealth", "parse_health", "collect_health", "CRITICAL_COMPONENTS"]

CRITICAL_COMPONENTS = ("metadatabase", "scheduler")


@dataclass(frozen=True)
class ComponentHealth:
    component: str
    status: str
    heartbeat_age: float | None
    healthy: bool


def parse_health(body: Any, now: float, max_age: float) -> list[ComponentHealth]:
    """Components of a health body; raises AirflowApiError when it is not one."""
    if not isinstance(body, dict) or not any(isinstance(v, dict) for v in body.values()):
        raise AirflowApiError(f"the health endpoint answered with something that is not a "
                              f"health report: {str(body)[:120]!r}")
    out = []
    for name, info in sorted(body.items()):
        if not isinstance(info, dict) or info.get("status") is None:
            continue
        status = str(info["status"])
        beat = next((parse_ts(v) for k, v in info.items()
                     if k.startswith("latest_") and k.endswith("heartbeat")), None)
        age = max(0.0, now - beat) if beat is not None else None
        healthy = status == "healthy" and (age is None or age <= max_age)
        out.append(ComponentHealth(name, status, age, healthy))
    return out


async def collect_health(check: Any) -> None:
    """Emit one healthy/heartbeat-age pair per component and set the run's verdict."""
    client = check.client
    path = "/monitor/health" if client.version == "2" else "/health"
    body = await client.get(path, ok=(200, 500, 503))
    components = parse_health(body, check.now, check.config.heartbeat_max_age)
    bad = []
    for comp in components:
        tags = {"component": comp.component}
        check.gauge("airflow.component.healthy", 1 if comp.healthy else 0, tags=tags)
        if comp.heartbeat_age is not None:
            check.gauge("airflow.component.heartbeat_age", comp.heartbeat_age, tags=tags)
        if not comp.healthy:
            age = ("" if comp.heartbeat_age is None
                   else f", last heartbeat {comp.heartbeat_age:.0f}s ago")
            bad.append((comp.component, f"{comp.component} {comp.status}{age}"))
    critical = [text for name, text in bad if name in CRITICAL_COMPONENTS]
    if critical:
        check.service_check(Status.CRITICAL, "Airflow unhealthy: " + "; ".join(t for _, t in bad))
    elif bad:
        check.service_check(Status.WARNING, "Airflow degraded: " + "; ".join(t for _, t in bad))
