"""Values that flow between the agent's stages: samples, statuses and check results.

One sample type flows everywhere (checks -> pipeline -> store, exporters, rules). Tags are
kept as a sorted tuple of ``(key, value)`` pairs so a sample's series key is hashable and
canonical without copying dicts on the hot path.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

__all__ = [
    "AGENT_CHECK_TYPE",
    "EXPORTERS_CHECK",
    "CheckResult",
    "Kind",
    "Sample",
    "SeriesKey",
    "Status",
    "Tags",
    "make_tags",
]

Tags = tuple[tuple[str, str], ...]
SeriesKey = tuple[str, Tags]

# The check_type of every report the agent makes about itself (its store, leader election,
# config reloads, alerting, exporters): the self-check's type, with ``check`` naming the
# component, so Datadog gets one service check (mlwarden.agent.status) tagged by component.
AGENT_CHECK_TYPE = "agent"
# The exporters' own report: not sent to Datadog as a service check (it would say through
# Datadog whether Datadog can be reached); its samples are.
EXPORTERS_CHECK = "exporters"


class Kind(str, enum.Enum):
    """How a sample's value is to be read.

    ``gauge`` is a reading at a moment; ``count`` is how many things happened since the
    previous sample of the series (a delta); ``monotonic_count`` is a running total that
    only grows until its source restarts (exporters turn it into a delta or a Prometheus
    counter); ``distribution`` is one observation (a latency) that exporters aggregate
    into histogram buckets or send as a Datadog distribution; the store and the rules read
    it like a gauge.
    """

    GAUGE = "gauge"
    COUNT = "count"
    MONOTONIC_COUNT = "monotonic_count"
    DISTRIBUTION = "distribution"


class Status(enum.IntEnum):
    """A check instance's verdict, with Datadog's service-check numbers.

    CRITICAL means the target answered badly or is down; UNKNOWN means the agent could not
    find out (its own timeout, DNS, a crash in the check, a bad config) — users route these
    differently, so they are never folded together.
    """

    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3


def make_tags(*parts: Mapping[str, object] | Iterable[tuple[str, object]] | None) -> Tags:
    """Merge tag mappings (later ones win) into the canonical sorted tuple."""
    merged: dict[str, str] = {}
    for part in parts:
        if not part:
            continue
        items = part.items() if isinstance(part, Mapping) else part
        for key, value in items:
            merged[str(key)] = "" if value is None else str(value)
    return tuple(sorted(merged.items()))


@dataclass(frozen=True, slots=True)
class Sample:
    """One observation of one series."""

    metric: str
    value: float
    tags: Tags = ()
    timestamp: float = 0.0
    kind: Kind = Kind.GAUGE

    @property
    def key(self) -> SeriesKey:
        return (self.metric, self.tags)

    def tag(self, name: str, default: str | None = None) -> str | None:
        for key, value in self.tags:
            if key == name:
                return value
        return default

    @property
    def tag_dict(self) -> dict[str, str]:
        return dict(self.tags)


@dataclass(slots=True)
class CheckResult:
    """What one run of one check instance produced: samples plus a verdict.

    ``error`` names what went wrong when the check raised or timed out (already scrubbed
    of secrets); ``warnings`` are non-fatal problems worth showing in /status.
    ``interval`` is how often the producer reports (its longest cadence, e.g. a canary's),
    0 when unknown: exporters that keep the latest values hold them about twice that long.
    """

    check: str
    check_type: str
    status: Status
    message: str = ""
    samples: list[Sample] = field(default_factory=list)
    started: float = field(default_factory=time.time)
    duration: float = 0.0
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    interval: float = 0.0
