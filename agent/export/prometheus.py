"""Prometheus exposition of the latest values, rendered at scrape time.

The sink keeps a snapshot of each check instance's latest series (counters accumulated),
so a poll costs a dict update and a scrape grows with the number of series, never with
history. Rendering writes the text format (0.0.4) directly: each series' line prefix
(``name{label="value"}``) is built once, when the series first appears, and cached, so a
scrape only formats values — cheaper than building metric families and escaping labels
on every scrape as ``prometheus_client.generate_latest`` does (see benchmarks/exporters.py).
Scrapes and pushes render in a worker thread (:meth:`PrometheusExporter.render_async`): at
10k series a render takes tens of milliseconds, which on the event loop would delay checks.
HELP, TYPE and names come from the catalog through :func:`agent.catalog.prometheus_name`.

A family's series may carry different tag keys; a tag a series lacks is simply absent,
which Prometheus reads the same as an empty label.
"""

from __future__ import annotations

import asyncio
import math
import re
import threading
import time
from typing import Any

from agent.catalog import Catalog, load_catalog, prometheus_name
from agent.export.health import ExporterHealth
from agent.samples import CheckResult, Kind, Sample, SeriesKey

__all__ = ["PrometheusExporter", "label_name", "sample_family_name", "CONTENT_TYPE"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LABEL_BAD = re.compile(r"[^a-zA-Z0-9_]")


def label_name(tag: str) -> str:
    """A tag key as a valid Prometheus label name (``__`` prefixes are reserved)."""
    name = _LABEL_BAD.sub("_", tag)
    if not name or name[0].isdigit():
        name = "_" + name
    if name.startswith("__"):
        name = name.lstrip("_") or "_"
        name = "_" + name if name[0].isdigit() else name
    return name


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _value(v: float) -> str:
    v = float(v)  # samples from outside the check firewall may carry ints
    if v == math.inf:
        return "+Inf"
    if v == -math.inf:
        return "-Inf"
    if v != v:
        return "NaN"
    if v.is_integer() and abs(v) < 1e15:
        return f"{int(v)}.0"
    return repr(v)


class PrometheusExporter:
    """Pipeline sink holding the latest value of every series, and the /metrics renderer."""

    name = "prometheus"

    def __init__(self, catalog: Catalog | None = None) -> None:
        self.catalog = catalog or load_catalog()
        self._lock = threading.Lock()  # the values: taken by consume() on the loop, briefly by render()
        self._render_lock = threading.Lock()  # the line caches: renders run in worker threads
        self._gauges: dict[str, dict[SeriesKey, float]] = {}
        self._counters: dict[SeriesKey, float] = {}
        # (metric, is_counter) -> (family name, header text); SeriesKey -> line prefix
        self._families: dict[tuple[str, bool], tuple[str, str]] = {}
        self._prefixes: dict[tuple[SeriesKey, bool], str] = {}
        self.health = ExporterHealth("prometheus")
        self.health.state = "ok"
        self.scrapes = 0
        self.last_render_seconds: float | None = None

    # -- component -------------------------------------------------------------------
    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def status(self) -> dict[str, Any]:
        return {"endpoint": "/metrics", "series": self.series_count, "scrapes": self.scrapes,
                "last_render_seconds": self.last_render_seconds, **self.health.as_dict()}

    # -- sink ------------------------------------------------------------------------
    def consume(self, result: CheckResult) -> None:
        gauges: dict[SeriesKey, float] = {}
        counters = self._counters
        with self._lock:
            for sample in result.samples:
                kind = sample.kind
                if kind is Kind.GAUGE:
                    gauges[sample.key] = sample.value
                elif kind is Kind.COUNT:
                    key = sample.key
                    counters[key] = counters.get(key, 0.0) + sample.value
                else:
                    counters[sample.key] = sample.value
            # a run replaces its instance's gauges: series it no longer reports disappear
            self._gauges[result.check] = gauges

    def forget(self, check: str) -> None:
        """Drop an instance's series (it was removed by a reload)."""
        with self._lock:
            self._gauges.pop(check, None)
            for key in [k for k in self._counters if ("check", check) in k[1]]:
                del self._counters[key]
        with self._render_lock:
            for pkey in [k for k in self._prefixes if ("check", check) in k[0][1]]:
                del self._prefixes[pkey]

    def snapshot(self) -> tuple[list[tuple[SeriesKey, float]], list[tuple[SeriesKey, float]]]:
        with self._lock:
            gauges = [item for per in self._gauges.values() for item in per.items()]
            counters = list(self._counters.items())
        return gauges, counters

    @property
    def series_count(self) -> int:
        with self._lock:
            return sum(len(v) for v in self._gauges.values()) + len(self._counters)

    # -- rendering -------------------------------------------------------------------
    def _family(self, metric: str, counter: bool) -> tuple[str, str]:
        fam = self._families.get((metric, counter))
        if fam is None:
            spec = self.catalog.get(metric)
            kind = Kind.COUNT if counter else Kind.GAUGE
            name = prometheus_name(metric, kind, spec.unit if spec else "")
            doc = spec.description if spec else f"{metric} (not declared in the metric catalog)"
            ptype = "counter" if counter else "gauge"
            header = f"# HELP {name} {_help(doc)}\n# TYPE {name} {ptype}\n"
            fam = (name, header)
            self._families[(metric, counter)] = fam
        return fam

    def _prefix(self, key: SeriesKey, counter: bool) -> str:
        name = self._family(key[0], counter)[0]
        labels = ",".join(f'{label_name(k)}="{_escape(v)}"' for k, v in key[1] if v != "")
        prefix = f"{name}{{{labels}}} " if labels else f"{name} "
        self._prefixes[(key, counter)] = prefix
        return prefix

    async def render_async(self) -> bytes:
        """:meth:`render` off the event loop."""
        return await asyncio.to_thread(self.render)

    def render(self) -> bytes:
        """The whole exposition, from the latest values; safe to call from any thread.

        Under the sink's lock it only takes references: an instance's gauge dict is replaced
        by each run, never changed, and the counters are copied. Formatting happens outside
        it, so a slow render never holds up ``consume``.
        """
        started = time.perf_counter()
        groups: dict[tuple[str, bool], list[str]] = {}
        prefixes = self._prefixes
        with self._lock:
            gauges = list(self._gauges.values())
            counters = list(self._counters.items())
        with self._render_lock:
            for counter, items in ((False, [i for per in gauges for i in per.items()]), (True, counters)):
                for key, value in items:
                    prefix = prefixes.get((key, counter)) or self._prefix(key, counter)
                    fkey = (key[0], counter)
                    lines = groups.get(fkey)
                    if lines is None:
                        lines = groups[fkey] = [self._family(key[0], counter)[1]]
                    lines.append(prefix + _value(value) + "\n")
        body = "".join(["".join(lines) for lines in groups.values()]).encode()
        self.scrapes += 1
        self.last_render_seconds = round(time.perf_counter() - started, 6)
        self.health.success(0)
        return body


def sample_family_name(sample: Sample) -> str:
    """The Prometheus name a sample is exposed under (tests and docs)."""
    spec = load_catalog().get(sample.metric)
    return prometheus_name(sample.metric, sample.kind, spec.unit if spec else "")
