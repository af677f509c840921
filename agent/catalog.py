"""The metric catalog: every metric the agent can emit, declared once as data.

Each check folder holds a ``metadata.csv`` (the agent's own metrics live in
``agent/metadata.csv``); this module reads them all into one :class:`Catalog`. Checks,
exporters, dashboards and docs agree with it, and tests prove that they do.

Columns: ``metric_name,metric_type,unit,description,check,tags,facts,event``.

- ``tags``: the tag keys the metric's series carry (besides the instance's own); bounded
  sets (a DAG id, a model, a GPU), so every exported series is a stable identity.
- ``facts``: per-event facts (a run id, a try number, a log link, an error text) that
  samples carry through the pipeline so history and alerts can say *which* run failed,
  but that never become part of an exported series: exporters drop them
  (:meth:`Catalog.series_tags`) and counters add up across them. In Prometheus a new
  label value per run would be a series that never rises; in Datadog a billed custom
  metric per run.
- ``event``: Datadog's alert type (``error``, ``warning``, ``info``, ``success``) when a
  sample of the metric is also worth an event (a failed run, an import error, an XID);
  empty otherwise. A ``count`` is an event for each sample above 0; a ``gauge`` is one when
  its series enters its trigger state (non-zero; or the value after ``@``, as in
  ``warning@0`` for a model that stops being ready) and a ``success`` event when it leaves
  it (see ``agent/export/events.py``).

The last two columns are optional in a third-party check's file.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from agent.samples import Kind, Tags

__all__ = ["Catalog", "EVENT_TYPES", "MetricSpec", "UNITS", "load_catalog", "prometheus_name"]

NAMESPACE = "mlwarden"
# Catalog units are base units: values are emitted in them, so exporters never convert.
UNITS = {
    "": "",
    "seconds": "seconds",
    "bytes": "bytes",
    "ratio": "ratio",
    "celsius": "celsius",
    "watts": "watts",
    "hertz": "hertz",
    "joules": "joules",
    "dollars": "dollars",
    "dollars_per_hour": "dollars_per_hour",
    "requests": "",
    "errors": "",
    "runs": "",
    "tasks": "",
    "gpus": "",
    "points": "",
    "notifications": "",
    "alerts": "",
    "files": "",
    "samples": "",
    "events": "",
    "processes": "",
}
EVENT_TYPES = ("", "error", "warning", "info", "success")
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$")
_PROM_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


def prometheus_name(name: str, kind: Kind | str, unit: str = "") -> str:
    """Turn a dotted catalog name into its Prometheus name.

    ``mlwarden.endpoint.latency`` (gauge, seconds) -> ``mlwarden_endpoint_latency_seconds``;
    counters get ``_total``. The one place names are converted; raises ValueError for a name
    Prometheus would refuse.
    """
    suffix = UNITS.get(unit, unit)
    base = name.replace(".", "_").replace("-", "_")
    if suffix and not base.endswith("_" + suffix):
        base = f"{base}_{suffix}"
    if Kind(kind) in (Kind.COUNT, Kind.MONOTONIC_COUNT):
        base = base.removesuffix("_total") + "_total"
    if not _PROM_RE.match(base):
        raise ValueError(f"metric name {name!r} cannot be a Prometheus name ({base!r})")
    return base


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One catalog row."""

    name: str
    kind: Kind
    unit: str
    description: str
    check: str
    tags: tuple[str, ...]
    facts: tuple[str, ...] = ()
    event: str = ""

    @property
    def prometheus(self) -> str:
        return prometheus_name(self.name, self.kind, self.unit)


class Catalog:
    """Every declared metric, by name."""

    def __init__(self, specs: Iterable[MetricSpec]) -> None:
        self._specs: dict[str, MetricSpec] = {}
        for spec in specs:
            if spec.name in self._specs:
                raise ValueError(f"metric {spec.name!r} is declared twice in the catalog")
            self._specs[spec.name] = spec
        self._series_tags: dict[tuple[str, Tags], Tags] = {}
        # metrics with facts to drop: only their series are looked up (and cached)
        self._with_facts = frozenset(name for name, spec in self._specs.items() if spec.facts)

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __getitem__(self, name: str) -> MetricSpec:
        return self._specs[name]

    def __iter__(self) -> Iterator[MetricSpec]:
        return iter(sorted(self._specs.values(), key=lambda s: s.name))

    def __len__(self) -> int:
        return len(self._specs)

    def get(self, name: str) -> MetricSpec | None:
        return self._specs.get(name)

    def for_check(self, check: str) -> list[MetricSpec]:
        return [s for s in self if s.check == check]

    def series_tags(self, metric: str, tags: Tags) -> Tags:
        """``tags`` without the metric's per-event facts: what an exported series carries.

        Metrics without facts (almost all) return ``tags`` itself, uncached (a cache entry
        a series cost ~130 bytes, 1.4 KiB an endpoint check). The others are cached per
        (metric, tags): tag sets repeat every poll, so exporters pay a dict lookup.
        """
        if metric not in self._with_facts:
            return tags
        key = (metric, tags)
        cached = self._series_tags.get(key)
        if cached is None:
            spec = self._specs.get(metric)
            facts = spec.facts if spec is not None else ()
            cached = tuple(t for t in tags if t[0] not in facts) if facts else tags
            if len(self._series_tags) >= 100_000:  # bounded: per-run facts are unbounded
                self._series_tags.clear()
            self._series_tags[key] = cached
        return cached


def read_metadata_csv(path: Path) -> list[MetricSpec]:
    """Parse one metadata.csv, failing with the file and line on a bad row."""
    specs = []
    with path.open(newline="", encoding="utf-8") as fh:
        for lineno, row in enumerate(csv.DictReader(fh), start=2):
            where = f"{path}:{lineno}"
            name = (row.get("metric_name") or "").strip()
            if not _NAME_RE.match(name) or not name.startswith(NAMESPACE + "."):
                raise ValueError(f"{where}: metric name {name!r} must look like mlwarden.area.name")
            try:
                kind = Kind((row.get("metric_type") or "").strip())
            except ValueError:
                raise ValueError(f"{where}: metric_type must be one of "
                                 f"{[k.value for k in Kind]}") from None
            unit = (row.get("unit") or "").strip()
            if unit not in UNITS:
                raise ValueError(f"{where}: unit {unit!r} is not one of {sorted(UNITS)}")
            tags = tuple((row.get("tags") or "").split())
            facts = tuple((row.get("facts") or "").split())
            if both := sorted(set(tags) & set(facts)):
                raise ValueError(f"{where}: {both} listed both as tags and as facts")
            event = (row.get("event") or "").strip()
            alert, at, trigger = event.partition("@")
            if alert not in EVENT_TYPES or (at and not alert):
                raise ValueError(f"{where}: event must be empty or one of {list(EVENT_TYPES[1:])}"
                                 " (a gauge may add @<value that triggers it>)")
            if alert and kind not in (Kind.COUNT, Kind.GAUGE):
                raise ValueError(f"{where}: events are for count and gauge metrics, not {kind.value}")
            if at:
                try:
                    float(trigger)
                except ValueError:
                    raise ValueError(f"{where}: event trigger {trigger!r} after @ must be a number") from None
                if kind is not Kind.GAUGE:
                    raise ValueError(f"{where}: only a gauge event has a trigger value (@...)")
            spec = MetricSpec(
                name=name,
                kind=kind,
                unit=unit,
                description=(row.get("description") or "").strip(),
                check=(row.get("check") or "").strip(),
                tags=tags,
                facts=facts,
                event=event,
            )
            spec.prometheus  # validates the converted name too
            specs.append(spec)
    return specs


def metadata_files() -> list[Path]:
    """The agent's own metadata.csv plus one per installed check type.

    Found without importing the check types (:func:`agent.plugins.metadata_path`): the
    catalog is read at start-up, and a type's module is imported only when it is used.
    """
    from agent.plugins import check_type_names, metadata_path

    files = [Path(__file__).with_name("metadata.csv")]
    for name in check_type_names():
        path = metadata_path(name)
        if path is not None and path.exists() and path not in files:
            files.append(path)
    return files


@lru_cache(maxsize=1)
def load_catalog() -> Catalog:
    """The catalog of every installed check plus the agent's own metrics (cached)."""
    specs: list[MetricSpec] = []
    for path in metadata_files():
        specs.extend(read_metadata_csv(path))
    return Catalog(specs)
