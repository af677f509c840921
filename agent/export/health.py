"""Exporter health as data: every exporter keeps one :class:`ExporterHealth`.

Health is shown in /status (``status()``) and exported like any other metric through
:class:`HealthSource`, which puts a synthetic result into the pipeline on a timer, so a
Datadog outage is visible in Prometheus and a Prometheus push failure in Datadog. An
exporter with a ``self_samples(tags, now)`` method adds its own (the Datadog exporters'
custom-metrics count and budget decisions).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from agent.samples import (
    AGENT_CHECK_TYPE,
    EXPORTERS_CHECK,
    CheckResult,
    Kind,
    Sample,
    Status,
    Tags,
    make_tags,
)
from agent.tasks import cancel_and_wait

__all__ = ["ExporterHealth", "HealthSource", "HasHealth"]

log = logging.getLogger(__name__)


class ExporterHealth:
    """Counters and timestamps one exporter updates; thread-safe (senders run on threads)."""

    def __init__(self, exporter: str) -> None:
        self.exporter = exporter
        self._lock = threading.Lock()
        self.last_success: float | None = None
        self.last_failure: float | None = None
        self.last_error: str | None = None
        self.failures = 0
        self.sent = 0
        self.dropped: dict[str, int] = {}
        self.queue_length = 0
        self.state = "starting"
        self._reported_failures = 0
        self._reported_sent = 0
        self._reported_dropped: dict[str, int] = {}

    def success(self, points: int, now: float | None = None) -> None:
        with self._lock:
            self.last_success = time.time() if now is None else now
            self.sent += points
            self.state = "ok"

    def failure(self, error: str, now: float | None = None, state: str = "failing") -> None:
        with self._lock:
            self.failures += 1
            self.last_failure = time.time() if now is None else now
            self.last_error = error
            self.state = state

    def drop(self, reason: str, points: int) -> None:
        if points <= 0:
            return
        with self._lock:
            self.dropped[reason] = self.dropped.get(reason, 0) + points

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "state": self.state,
                "last_success": self.last_success,
                "last_failure": self.last_failure,
                "last_error": self.last_error,
                "failures": self.failures,
                "sent_points": self.sent,
                "dropped_points": dict(self.dropped),
                "queue_length": self.queue_length,
            }

    def samples(self, base: Tags, now: float) -> list[Sample]:
        """Gauges of the current state plus counts of what happened since the last call."""
        tags = make_tags(base, {"exporter": self.exporter})
        with self._lock:
            out = [
                Sample("mlwarden.exporter.up", 0.0 if self.state in ("failing", "rejected") else 1.0,
                       tags, now),
                Sample("mlwarden.exporter.queue.length", float(self.queue_length), tags, now),
                Sample("mlwarden.exporter.failures", float(self.failures - self._reported_failures),
                       tags, now, Kind.COUNT),
                Sample("mlwarden.exporter.sent", float(self.sent - self._reported_sent),
                       tags, now, Kind.COUNT),
            ]
            if self.last_success is not None:
                out.append(Sample("mlwarden.exporter.last_success", self.last_success, tags, now))
            for reason, total in self.dropped.items():
                delta = total - self._reported_dropped.get(reason, 0)
                out.append(Sample("mlwarden.exporter.dropped", float(delta),
                                  make_tags(tags, {"reason": reason}), now, Kind.COUNT))
            self._reported_failures = self.failures
            self._reported_sent = self.sent
            self._reported_dropped = dict(self.dropped)
        return out


class HasHealth(Protocol):
    health: ExporterHealth


class HealthSource:
    """Feeds the exporters' health into the pipeline every ``interval`` seconds."""

    name = "exporter-health"

    def __init__(self, exporters: Sequence[HasHealth], submit: Callable[[CheckResult], None],
                 interval: float, base_tags: Tags = ()) -> None:
        self.exporters = list(exporters)
        self.submit = submit
        self.interval = interval
        self.base_tags = make_tags(base_tags, {"check": EXPORTERS_CHECK})
        self._task: asyncio.Task[None] | None = None

    def result(self, now: float | None = None) -> CheckResult:
        now = time.time() if now is None else now
        samples: list[Sample] = []
        worst = Status.OK
        problems = []
        for exp in self.exporters:
            samples.extend(exp.health.samples(self.base_tags, now))
            extra = getattr(exp, "self_samples", None)  # e.g. Datadog's custom-metrics count
            if extra is not None:
                samples.extend(extra(make_tags(self.base_tags, {"exporter": exp.health.exporter}), now))
            if exp.health.state in ("failing", "rejected"):
                worst = Status.CRITICAL
                problems.append(f"{exp.health.exporter}: {exp.health.last_error}")
        return CheckResult(check=EXPORTERS_CHECK, check_type=AGENT_CHECK_TYPE, status=worst,
                           message="; ".join(problems), samples=samples, started=now,
                           interval=self.interval)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=self.name)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                self.submit(self.result())
            except Exception:  # noqa: BLE001 - health reporting must never stop
                log.exception("could not report exporter health")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    def status(self) -> dict[str, Any]:
        return {"interval_seconds": self.interval, "exporters": [e.health.exporter for e in self.exporters]}
