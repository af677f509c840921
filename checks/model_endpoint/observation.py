"""What one probe of a model endpoint found, whatever the protocol."""

from __future__ import annotations

from dataclasses import dataclass, field

from checks.model_endpoint.probe import Answer

__all__ = ["Observation"]


@dataclass(slots=True)
class Observation:
    """``state`` is the server's own word for the model's state (READY, LOADING, ...).

    ``answer`` is the request whose latency and status stand for the endpoint (the
    readiness request); ``problem`` says in words why the model is not ready.
    """

    answer: Answer
    ready: bool
    state: str
    up: bool = True
    version: str | None = None
    platform: str | None = None
    server: str | None = None
    versions: dict[str, str] = field(default_factory=dict)
    workers: int | None = None
    workers_ready: int | None = None
    problem: str | None = None
