"""Prometheus exposition of the latest values, built at scrape time.

A sink keeps a snapshot of each check instance's latest series (counters accumulated);
:class:`LatestCollector` turns the snapshot into metric families only when /metrics is
scraped, so the cost of a poll is a dict update and the cost of a scrape grows with the
number of series, not with history. HELP, TYPE and names come from the catalog.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from agent.catalog import Catalog, load_catalog, prometheus_name
from agent.samples import CheckResult, Kind, Sample, SeriesKey

__all__ = ["LatestCollector", "PrometheusExporter", "label_name"]

_LABEL_BAD = re.compile(r"[^a-zA-Z0-9_]")


def label_name(tag: str) -> str:
    """A tag key as a valid Prometheus label name."""
    name = _LABEL_BAD.sub("_", tag)
    if not name or name[0].isdigit():
        name = "_" + name
    return name


class PrometheusExporter:
    """Pipeline sink that holds the latest value of every series for /metrics."""

    name = "prometheus"

    def __init__(self, catalog: Catalog | None = None) -> None:
        self.catalog = catalog or load_catalog()
        self._lock = threading.Lock()
        self._gauges: dict[str, dict[SeriesKey, float]] = {}
        self._counters: dict[SeriesKey, tuple[Kind, float]] = {}
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(LatestCollector(self))

    def consume(self, result: CheckResult) -> None:
        gauges: dict[SeriesKey, float] = {}
        with self._lock:
            for sample in result.samples:
                if sample.kind is Kind.GAUGE:
                    gauges[sample.key] = sample.value
                elif sample.kind is Kind.COUNT:
                    _, total = self._counters.get(sample.key, (Kind.COUNT, 0.0))
                    self._counters[sample.key] = (Kind.COUNT, total + sample.value)
                else:
                    self._counters[sample.key] = (Kind.MONOTONIC_COUNT, sample.value)
            # a run replaces its instance's gauges: series it no longer reports disappear
            self._gauges[result.check] = gauges

    def forget(self, check: str) -> None:
        """Drop an instance's series (it was removed by a reload)."""
        with self._lock:
            self._gauges.pop(check, None)
            for key in [k for k in self._counters if ("check", check) in k[1]]:
                del self._counters[key]

    def snapshot(self) -> tuple[list[tuple[SeriesKey, float]], list[tuple[SeriesKey, float]]]:
        with self._lock:
            gauges = [item for per in self._gauges.values() for item in per.items()]
            counters = [(k, v) for k, (_, v) in self._counters.items()]
        return gauges, counters

    @property
    def series_count(self) -> int:
        with self._lock:
            return sum(len(v) for v in self._gauges.values()) + len(self._counters)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class LatestCollector:
    """Builds fresh metric families from the exporter's snapshot on every scrape."""

    def __init__(self, exporter: PrometheusExporter) -> None:
        self.exporter = exporter
        self._names: dict[tuple[str, Kind], str] = {}

    def _family_name(self, metric: str, kind: Kind) -> tuple[str, str]:
        spec = self.exporter.catalog.get(metric)
        key = (metric, kind)
        name = self._names.get(key)
        if name is None:
            unit = spec.unit if spec else ""
            name = prometheus_name(metric, kind, unit)
            self._names[key] = name
        doc = spec.description if spec else f"{metric} (not declared in the metric catalog)"
        return name, doc

    def collect(self) -> Iterator[Metric]:
        gauges, counters = self.exporter.snapshot()
        yield from self._families(gauges, counter=False)
        yield from self._families(counters, counter=True)

    def _families(self, items: list[tuple[SeriesKey, float]], counter: bool) -> Iterator[Metric]:
        by_metric: dict[str, list[tuple[SeriesKey, float]]] = {}
        for item in items:
            by_metric.setdefault(item[0][0], []).append(item)
        kind = Kind.COUNT if counter else Kind.GAUGE
        for metric, series in by_metric.items():
            name, doc = self._family_name(metric, kind)
            keys = sorted({k for (_, tags), _ in series for k, _ in tags})
            labels = [label_name(k) for k in keys]
            if counter:
                family: Metric = CounterMetricFamily(name.removesuffix("_total"), doc, labels=labels)
            else:
                family = GaugeMetricFamily(name, doc, labels=labels)
            for (_, tags), value in series:
                tag_map = dict(tags)
                family.add_metric([tag_map.get(k, "") for k in keys], value)  # type: ignore[attr-defined]
            yield family


def sample_family_name(sample: Sample) -> str:
    """The Prometheus name a sample is exposed under (tests and docs)."""
    spec = load_catalog().get(sample.metric)
    return prometheus_name(sample.metric, sample.kind, spec.unit if spec else "")
