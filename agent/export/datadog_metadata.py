"""Metric metadata for Datadog, from the catalog: type, unit and description.

Datadog shows a metric's unit on graphs and its description in the metric summary, but
learns neither from submitted points (the v2 series intake takes a unit per point batch,
not a description). ``send_metadata`` sets them through ``PUT /api/v1/metrics/<name>``
(an application key is needed) once per metric: the body's fingerprint is the outbox's
dedup key, so a restart, or another agent sharing the store, does not send it again, and a
release that changes a description or unit sends the new body once.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from agent.catalog import MetricSpec
from agent.samples import Kind

__all__ = ["DD_UNITS", "dd_unit", "metadata_body", "metadata_dedup_key"]

# catalog unit -> Datadog unit name (units Datadog does not know are left unset)
DD_UNITS = {
    "seconds": "second", "bytes": "byte", "ratio": "fraction", "celsius": "degree celsius",
    "watts": "watt", "hertz": "hertz", "joules": "joule", "dollars": "dollar",
    "requests": "request", "errors": "error", "tasks": "task", "files": "file",
    "processes": "process", "events": "event", "samples": "sample",
}
_PER_UNIT = {"dollars_per_hour": ("dollar", "hour")}  # metadata only: a series has one unit
_TYPES = {Kind.GAUGE: "gauge", Kind.COUNT: "count", Kind.MONOTONIC_COUNT: "count",
          Kind.DISTRIBUTION: "distribution"}


def dd_unit(unit: str) -> str | None:
    """Datadog's unit for a catalog unit (None when Datadog has none)."""
    return DD_UNITS.get(unit)


def metadata_body(spec: MetricSpec) -> dict[str, Any]:
    """The ``MetricMetadata`` body Datadog takes for one catalog metric."""
    body: dict[str, Any] = {"type": _TYPES[spec.kind], "description": spec.description}
    unit = dd_unit(spec.unit)
    if unit:
        body["unit"] = unit
    if spec.unit in _PER_UNIT:
        body["unit"], body["per_unit"] = _PER_UNIT[spec.unit]
    return body


def metadata_dedup_key(destination: str, metric: str, body: dict[str, Any]) -> str:
    """Names one body of one metric at one intake (fits the outbox's 200 characters)."""
    digest = hashlib.sha1(json.dumps([destination, metric, body], sort_keys=True).encode())
    return f"ddmeta:{digest.hexdigest()}"
