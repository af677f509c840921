"""Intake payloads built from check results, for the Datadog API exporter.

``consume()`` runs on the event loop and only appends to an in-memory :class:`Batch`;
the exporter moves the batch to its outbox every ``flush_interval`` and delivers it lane by
lane, one request per lane per flush in normal operation:

- ``series`` (``POST /api/v2/series``): gauges, counts and monotonic totals as counts,
  with their unit and the agent's host;
- ``distributions`` (``POST /api/v1/distribution_points``): every observation of a
  distribution series in the flush, grouped per second, so Datadog computes percentiles
  over all of them (across agents too);
- ``checks`` (``POST /api/v1/check_run``): every service check of the flush in one list;
- ``events`` (``POST /api/v1/events``): one request per event (rare: failures);
- ``metadata`` (``PUT /api/v1/metrics/<name>``, with ``send_metadata``): once per metric.

Series go through the same :class:`~agent.export.datadog_shape.Shaper` and budget as in
DogStatsD mode, so both modes send the same series with the same tags.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent.catalog import Catalog
from agent.export.budget import Admission, CustomMetricsBudget
from agent.export.counters import MonotonicDeltas
from agent.export.datadog_metadata import dd_unit, metadata_body, metadata_dedup_key
from agent.export.datadog_shape import Shaper
from agent.export.events import SOURCE, DatadogEvent, EventDetector
from agent.export.tags import instance_tags, service_check_name
from agent.samples import AGENT_CHECK_TYPE, EXPORTERS_CHECK, CheckResult, Kind

__all__ = ["Batch", "PayloadBuilder"]

# v2 series intake types
_TYPE = {Kind.GAUGE: 3, Kind.COUNT: 1, Kind.MONOTONIC_COUNT: 1}


@dataclass
class Batch:
    """What one flush sends (see the module docstring for the lanes)."""

    series: list[dict[str, Any]] = field(default_factory=list)
    distributions: list[dict[str, Any]] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (dedup key, body)
    metadata: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (dedup key, item)

    def __bool__(self) -> bool:
        return bool(self.series or self.distributions or self.checks or self.events or self.metadata)

    def prepend(self, older: Batch) -> None:
        """Put an older batch (one the outbox did not take) in front of this one."""
        self.series[:0] = older.series
        self.distributions[:0] = older.distributions
        self.checks[:0] = older.checks
        self.events[:0] = older.events
        self.metadata[:0] = older.metadata


class PayloadBuilder:
    """Turns check results into a :class:`Batch` of intake payloads."""

    def __init__(self, *, hostname: str, destination: str, catalog: Catalog, shaper: Shaper,
                 budget: CustomMetricsBudget, service_checks: bool, send_metadata: bool,
                 on_full: Callable[[int], None] = lambda n: None, full_at: int = 5000) -> None:
        self.hostname = hostname
        self.destination = destination
        self.catalog = catalog
        self.shaper = shaper
        self.budget = budget
        self.service_checks = service_checks
        self.send_metadata = send_metadata
        self.events = EventDetector(catalog)
        self._deltas = MonotonicDeltas()
        self._host = [{"name": hostname, "type": "host"}]
        self._units: dict[str, str | None] = {}
        self._described: set[str] = set()
        self._on_full = on_full  # told when the series batch reaches a request's worth
        self._full_at = full_at
        self._batch = Batch()
        self._index: dict[tuple[Any, int], dict[str, Any]] = {}  # this batch's count series
        # distribution series of this flush: (metric, tags) -> {second: [values]}
        self._dist: dict[tuple[str, tuple[str, ...]], dict[int, list[float]]] = {}

    def consume(self, result: CheckResult) -> None:
        if self.shaper.stale:
            self.shaper.clear()
        batch, admit, shape = self._batch, self.budget.admit, self.shaper.shape
        for sample in result.samples:
            value = sample.value
            if sample.kind is Kind.MONOTONIC_COUNT:
                delta = self._deltas.delta(sample.key, value)
                if delta is None:
                    continue
                value = delta
            shaped = shape(sample.metric, sample.tags)
            verdict = admit(shaped.key, result.started)
            while verdict == Admission.RESHAPE:  # the budget dropped a tag: shape again
                self.shaper.clear()
                shaped = shape(sample.metric, sample.tags)
                verdict = admit(shaped.key, result.started)
            if verdict == Admission.HOLD:
                continue
            # the nearest second, not the one before: a run due on the second that starts a
            # hair early (684.9996) keeps its own second instead of sharing the previous one
            second = round(sample.timestamp or result.started)
            if self.send_metadata and sample.metric not in self._described:
                self._describe(sample.metric)
            if sample.kind is Kind.DISTRIBUTION:
                points = self._dist.setdefault(shaped.key, {})
                points.setdefault(second, []).append(float(value))
                continue
            # the intake keeps the last point of a series in a second: counts of one series
            # and second add up here (several runs in a second, or series merged by the
            # budget), as the DogStatsD Agent sums them; gauges go as they are (last wins)
            mtype = _TYPE[sample.kind]
            if mtype == 1:
                same = self._index.get((shaped.key, second))
                if same is not None:
                    same["points"][0]["value"] += float(value)
                    continue
            series: dict[str, Any] = {
                "metric": sample.metric,
                "type": mtype,
                "points": [{"timestamp": second, "value": float(value)}],
                "tags": shaped.tags,
                "resources": self._host,
            }
            unit = self._unit(sample.metric)
            if unit:
                series["unit"] = unit
            batch.series.append(series)
            if mtype == 1:
                self._index[(shaped.key, second)] = series
        for event in self.events.events(result):
            batch.events.append(("ddevent:" + event.identity, self._event(event)))
        if self.service_checks and \
                (result.check_type, result.check) != (AGENT_CHECK_TYPE, EXPORTERS_CHECK):
            check: dict[str, Any] = {
                "check": service_check_name(result.check_type),
                "host_name": self.hostname,
                "status": int(result.status),
                "timestamp": round(result.started),
                "tags": self.shaper.plain(instance_tags(result)),
            }
            if result.message:
                check["message"] = result.message[:4000]
            batch.checks.append(check)
        if len(batch.series) >= self._full_at:
            self._on_full(len(batch.series))

    def take(self) -> Batch:
        """The batch so far (on the loop, where ``consume`` appends to it)."""
        batch, self._batch = self._batch, Batch()
        self._index = {}
        for (metric, tags), points in self._dist.items():
            batch.distributions.append({
                "metric": metric, "host": self.hostname, "tags": list(tags), "type": "distribution",
                "points": [[second, values] for second, values in sorted(points.items())]})
        self._dist = {}
        return batch

    def restore(self, older: Batch) -> Batch:
        """Put back in front a batch the outbox did not take; returns the memory batch."""
        self._batch.prepend(older)
        return self._batch

    def forget(self, check: str) -> None:
        self._deltas.forget(check)
        self.events.forget(check)

    def _unit(self, metric: str) -> str | None:
        if metric not in self._units:
            spec = self.catalog.get(metric)
            self._units[metric] = dd_unit(spec.unit) if spec else None
        return self._units[metric]

    def _describe(self, metric: str) -> None:
        self._described.add(metric)
        spec = self.catalog.get(metric)
        if spec is None:  # forwarded or third-party metrics: nothing declared to say
            return
        body = metadata_body(spec)
        self._batch.metadata.append((metadata_dedup_key(self.destination, metric, body),
                                     {"metric": metric, "body": body}))

    def _event(self, event: DatadogEvent) -> dict[str, Any]:
        return {
            "title": event.title, "text": event.text, "alert_type": event.alert_type,
            "aggregation_key": event.aggregation_key, "date_happened": event.timestamp,
            "priority": event.priority, "source_type_name": SOURCE, "host": self.hostname,
            "tags": self.shaper.plain(event.tags),
        }
