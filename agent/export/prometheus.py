"""Prometheus exposition of the latest values, rendered at scrape time.

The sink keeps what each series last said (:mod:`agent.export.latest`: which series
stay, for how long, how counters start), so a poll costs a few dict updates and a scrape
grows with the number of series, never with history. Rendering writes the exposition
directly: each series' line prefix (``name{label="value"}``) is built once, when the
series first appears, and cached, and so is the text of each instance's gauges and
counters until their values change (a histogram's is made at each render from its last
state), so a scrape formats only what changed and joins the rest — cheaper than building
metric families and escaping labels on every scrape as ``prometheus_client.generate_latest``
does (see benchmarks/exporters.py). Both formats (:mod:`agent.export.exposition`) share
the prefixes; only family headers differ. Scrapes and pushes render on the event loop a
slice of ~2 ms at a time (:meth:`PrometheusExporter.render_async`): at 70k series a render
is ~35 ms of work, which in one piece would delay checks, and in a worker thread waited
for the GIL whenever the loop was busy.

HELP, TYPE, UNIT and names come from the catalog through :func:`agent.catalog.prometheus_name`.
``distribution`` samples become classic histograms (``_bucket``/``_sum``/``_count``) whose
buckets are set per check type (``exporters.prometheus.histogram_buckets``).

A family's series may carry different tag keys; a tag a series lacks is simply absent,
which Prometheus reads the same as an empty label. Tag keys that would collide with what
a scrape sets (``instance``, ``job``) are exported as ``exported_instance`` / ``exported_job``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from itertools import accumulate
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from agent.catalog import UNITS, Catalog, load_catalog, prometheus_name
from agent.export.exposition import (
    OPENMETRICS,
    TEXT,
    GzipStream,
    compress_chunks,
    escape_label,
    family_header,
    format_value,
    label_name,
)
from agent.export.health import ExporterHealth
from agent.export.latest import LatestValues
from agent.samples import CheckResult, Kind, Sample, SeriesKey

__all__ = ["CONTENT_TYPE", "DEFAULT_BUCKETS", "PrometheusExporter", "label_name",
           "sample_family_name"]

CONTENT_TYPE = TEXT
# seconds: 5 ms to 30 s covers health probes and most inference calls
DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_GAUGE, _COUNTER, _HISTOGRAM = 0, 1, 2
_PTYPE = ("gauge", "counter", "histogram")
_KIND = (Kind.GAUGE, Kind.COUNT, Kind.DISTRIBUTION)
SLICE = 1000  # samples of a large report taken before the loop may run other tasks
# texts joined into one chunk at a render: ~100 KiB of text (a gauge or counter line is
# ~150-200 bytes with an instance's usual tags, a histogram's 13 buckets ~2.3 KiB)
JOIN = 500
HIST_JOIN = 40
RENDER_SLICE = 0.002  # seconds of a render's work on the loop before other tasks run


class PrometheusExporter:
    """Pipeline sink holding the latest value of every series, and the /metrics renderer."""

    name = "prometheus"

    def __init__(self, catalog: Catalog | None = None,
                 buckets: Mapping[str, Sequence[float]] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.catalog = catalog or load_catalog()
        self._buckets = {k: tuple(float(b) for b in v) for k, v in (buckets or {}).items()}
        self.latest = LatestValues(self.catalog, self.buckets_for, clock)
        self._render_lock = threading.Lock()  # the caches below: render() may run in any thread
        # (metric, kind code) -> (sample name, type, help, unit); header per format
        self._families: dict[tuple[str, int], tuple[str, str, str, str]] = {}
        self._headers: dict[tuple[str, int, bool], str] = {}
        # line prefixes per series: gauges, counters; histograms (buckets..., sum, count)
        self._prefixes: tuple[dict[SeriesKey, str], dict[SeriesKey, str]] = ({}, {})
        # per kind code and metric, in order of appearance: the exposition's text per gauge
        # group (an instance's series of the metric: keyed by the check's name, or by
        # (check, series) for a per-event series) or counter series; a histogram's last
        # state (hist, counts, sum, count), formatted at each render (see _hist_lines)
        self._texts: tuple[dict[str, dict[Any, Any]], ...] = ({}, {}, {})
        self._bucket_tails: dict[tuple[float, ...], str] = {}  # histogram bounds -> their lines' tails
        self.health = ExporterHealth("prometheus")
        self.health.state = "ok"
        self.scrapes = 0
        self.last_render_seconds: float | None = None

    def buckets_for(self, check_type: str) -> tuple[float, ...]:
        """Histogram upper bounds for a check type's distributions."""
        return self._buckets.get(check_type) or self._buckets.get("default") or DEFAULT_BUCKETS

    # -- component -------------------------------------------------------------------
    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def status(self) -> dict[str, Any]:
        return {"endpoint": "/metrics", "series": self.series_count, "scrapes": self.scrapes,
                "last_render_seconds": self.last_render_seconds,
                "samples_of_the_wrong_kind": self.latest.wrong_kind, **self.health.as_dict()}

    # -- sink ------------------------------------------------------------------------
    def consume(self, result: CheckResult) -> None:
        """Keep the report's values and format its lines (on the loop, as it arrives)."""
        latest = self.latest
        latest.consume(result)
        with self._render_lock:  # drained and applied in one piece, as a render's take is:
            self._apply(latest.written())  # snapshots are applied in the order they were drained

    async def consume_in_slices(self, result: CheckResult) -> None:
        """:meth:`consume` for a large report (the pipeline's choice), ``SLICE`` samples
        at a time with the loop free between them: the self-check's per-instance gauges
        at 5,000 instances (10,000 series) held the loop ~40 ms in one piece."""
        latest = self.latest
        for _ in latest.consume_in_slices(result, SLICE):
            await asyncio.sleep(0)
        # (the pipeline awaits this: no other report of this check comes before the end)
        written = latest.written()
        formatted: dict[Any, str] = {}  # large gauge groups' lines, a slice at a time
        for gkey, values in written[0].items():
            if values.__class__ is dict and len(values) > SLICE:  # type: ignore[arg-type]
                items, parts = list(values.items()), []
                for start in range(0, len(items), SLICE):
                    with self._render_lock:
                        parts.append(self._gauge_lines(items[start:start + SLICE]))
                    await asyncio.sleep(0)
                formatted[gkey] = "".join(parts)
        with self._render_lock:
            self._apply(written, formatted)

    def forget(self, check: str) -> None:
        """Drop an instance's series (it was removed by a reload)."""
        self.latest.forget(check)
        tag = ("check", check)
        with self._render_lock:  # (its texts go at the next render: the store says they are gone)
            for cache in self._prefixes:
                for key in [k for k in cache if tag in k[1]]:
                    del cache[key]

    @property
    def series_count(self) -> int:
        return self.latest.series_count

    # -- rendering -------------------------------------------------------------------
    def _family(self, metric: str, code: int) -> tuple[str, str, str, str]:
        fam = self._families.get((metric, code))
        if fam is None:
            spec = self.catalog.get(metric)
            unit = spec.unit if spec else ""
            name = prometheus_name(metric, _KIND[code], unit)
            doc = spec.description if spec else f"{metric} (not declared in the metric catalog)"
            fam = (name, _PTYPE[code], doc, UNITS.get(unit, ""))
            self._families[(metric, code)] = fam
        return fam

    def _header(self, metric: str, code: int, openmetrics: bool) -> str:
        head = self._headers.get((metric, code, openmetrics))
        if head is None:
            name, ptype, doc, unit = self._family(metric, code)
            head = family_header(name, ptype, doc, unit, openmetrics)
            self._headers[(metric, code, openmetrics)] = head
        return head

    @staticmethod
    def _labels(tags: Sequence[tuple[str, str]], histogram: bool = False) -> list[str]:
        out, seen = [], set()
        for key, value in tags:
            if value == "":
                continue
            name = label_name(key)
            if histogram and name == "le":
                name = "exported_le"
            if name in seen:  # two tags that map to one label name: the first wins
                continue
            seen.add(name)
            out.append(f'{name}="{escape_label(value)}"')
        return out

    def _prefix(self, key: SeriesKey, code: int, keep: bool = True) -> str:
        name = self._family(key[0], code)[0]
        labels = ",".join(self._labels(key[1]))
        prefix = f"{name}{{{labels}}} " if labels else f"{name} "
        if keep:
            self._prefixes[code][key] = prefix
        return prefix

    def _hist_template(self, key: SeriesKey, bounds: tuple[float, ...]) -> tuple[str, str]:
        """A histogram's lines in parts: its labels, and the bucket lines' tails.

        Only the labels are the series' own; the tails (``le`` and a ``%d`` for the
        cumulative count, NUL where the next line's head goes) are shared by every
        histogram with those bounds, and the heads are made at each render (~0.3 us): a
        whole %-template per series kept its labels once per bucket (~2 KiB per check
        instance), the three heads ~0.6 KiB. A label value never reaches the tails, so a
        NUL in one cannot be mistaken for a head.
        """
        tails = self._bucket_tails.get(bounds)
        if tails is None:
            tails = self._bucket_tails[bounds] = "\0".join(
                [format_value(b) + '"} %d.0\n' for b in (*bounds, float("inf"))])
        return ",".join(self._labels(key[1], histogram=True)), tails

    async def render_async(self, openmetrics: bool = False, gzip: bool = False) -> bytes:
        """:meth:`render` (and gzip) on the event loop, ``RENDER_SLICE`` seconds at a time.

        Not in a worker thread: CPython hands the GIL back to a thread that waits for it only
        when the thread holding it waits or after a switch interval (5 ms) without a switch,
        and the loop lets go of it and takes it back at every poll, so a render thread got
        almost nothing while the loop was busy (a burst of due checks, the self-check's
        10,000 series at 5,000 instances): the same render took 45 ms or 200-300 ms at a
        scrape by when the scrape fell. On the loop it takes its turns with the checks' work:
        the checks wait at most a slice, the scrape for the work in between.
        """
        started = time.perf_counter()
        chunks = self._chunks(openmetrics)
        stream: GzipStream | None = GzipStream() if gzip else None
        plain: list[bytes] = []
        feed = stream.feed if stream is not None else plain.append
        clock = time.perf_counter
        until = clock() + RENDER_SLICE
        for chunk in chunks:
            feed(chunk)
            if clock() > until:
                await asyncio.sleep(0)
                until = clock() + RENDER_SLICE
        body = stream.finish() if stream is not None else b"".join(plain)
        self._rendered(started)
        return body

    def _encoded(self, openmetrics: bool, gzip: bool) -> bytes:
        """:meth:`render_async` in one piece (benchmarks, threads)."""
        started = time.perf_counter()
        chunks = self._chunks(openmetrics)
        body = compress_chunks(chunks) if gzip else b"".join(chunks)
        self._rendered(started)
        return body

    def render(self, openmetrics: bool = False) -> bytes:
        """The whole exposition (text 0.0.4, or OpenMetrics 1.0); safe from any thread.

        The text of every gauge and counter series is kept between renders, per family
        and in the order the series appeared: a gauge group's lines (one instance's series
        of one metric), a counter's line. Each report's lines are formatted as it arrives
        (:meth:`consume`, a check's few lines at a time on the loop), so a scrape formats
        only what the store changed by itself (first increments, stale series), joins the
        rest and encodes it: formatting 70k series at a scrape held the GIL for ~100 ms in
        one piece, which delayed due checks. Histograms are the exception: each run changes
        them and their text is the largest (the labels once per bucket), so a render makes
        it from each one's last state, outside the lock, in chunks (~2 us a histogram).
        """
        started = time.perf_counter()
        body = b"".join(self._chunks(openmetrics))
        self._rendered(started)
        return body

    def _rendered(self, started: float) -> None:
        self.scrapes += 1
        self.last_render_seconds = round(time.perf_counter() - started, 6)
        self.health.success(0)

    def _chunks(self, openmetrics: bool) -> Iterator[bytes]:
        """The exposition as encoded chunks, made as they are read (see :meth:`_join`).

        What the render shows is taken now, under the lock; joining (and formatting the
        histograms) happens outside it, so ``consume`` never waits for it. Nothing encoded
        is kept from one render to the next: a family's bytes kept while it stayed the same
        held ~0.65 KiB a check instance in the running agent and saved ~5 ms a scrape at
        5,000 instances.
        """
        parts: list[Any] = []
        with self._render_lock:
            self._apply(self.latest.take())
            for code, fams in enumerate(self._texts):
                for metric, fam in fams.items():
                    if fam:
                        parts.append(self._header(metric, code, openmetrics))
                        parts.append(_States(self._family(metric, code)[0], fam.values())
                                     if code == _HISTOGRAM else list(fam.values()))
            self._trim_caches()
        if openmetrics:
            parts.append("# EOF\n")
        return self._join(parts)

    @staticmethod
    def _join(parts: list[Any]) -> Iterator[bytes]:
        """Each family's header and lines joined and encoded in chunks of ~100 KiB, outside
        the lock (reports may arrive meanwhile: their lines are in the next render).

        Chunks stay below the daemon's mmap threshold (256 KiB, :mod:`agent.allocator`):
        larger ones were mapped and unmapped each time, and their page faults made a render
        at 5,000 checks ~1.7x slower than the same render in a process with glibc's defaults.
        No single call holds the GIL for long either (a family of 5,000 histograms is 12 MB).
        """
        head = ""
        for part in parts:
            if part.__class__ is str:  # a family's header: joined with its first lines
                head += part
            elif part.__class__ is _States:
                name = part.name
                for j in range(0, len(part), HIST_JOIN):
                    yield (head + "".join([_hist_lines(name, state)
                                           for state in part[j:j + HIST_JOIN]])).encode()
                    head = ""
            else:
                for j in range(0, len(part), JOIN):
                    yield (head + "".join(part[j:j + JOIN])).encode()
                    head = ""
        if head:
            yield head.encode()

    def _gauge_lines(self, items: Sequence[tuple[SeriesKey, float]]) -> str:
        prefixes, fmt = self._prefixes[_GAUGE], format_value
        return "".join([(prefixes.get(key) or self._prefix(key, _GAUGE)) + fmt(value) + "\n"
                        for key, value in items])

    def _apply(self, snapshot: Any, formatted: Mapping[Any, str] | None = None) -> None:
        """Format what changed into the kept texts (``formatted``: groups' lines already
        formatted); called with the render lock held."""
        gauges, counters, hists = snapshot
        fmt = format_value
        texts = self._texts
        fams = texts[_GAUGE]
        for gkey, values in gauges.items():  # one instance's series of one metric
            check, group = gkey
            if group.__class__ is str:  # a metric's family holds one text a check
                metric, fkey = group, check
            else:  # a per-event series: one text each
                metric, fkey = group[0], gkey  # type: ignore[index]
            fam = fams.get(metric)
            if fam is None:
                fam = fams[metric] = {}
            if values is None:
                fam.pop(fkey, None)
            elif values.__class__ is tuple:  # one series: (key, value, moved), see latest._Group
                key, value, moved = values
                old = None if moved else fam.get(fkey)
                if old is None:
                    prefix = self._prefix(key, _GAUGE, False)
                else:  # the same series as its last text's: that text's prefix
                    prefix = old[:old.rindex(" ") + 1]  # (a value has no space)
                fam[fkey] = prefix + fmt(value) + "\n"
            else:
                text = formatted.get(gkey) if formatted else None
                fam[fkey] = text if text is not None else self._gauge_lines(values.items())
        prefixes, fams = self._prefixes[_COUNTER], texts[_COUNTER]
        for key, value in counters.items():
            fam = fams.get(key[0])
            if fam is None:
                fam = fams[key[0]] = {}
            if value is None:
                fam.pop(key, None)
            else:
                fam[key] = (prefixes.get(key) or self._prefix(key, _COUNTER)) + fmt(value) + "\n"
        fams = texts[_HISTOGRAM]
        for key, state in hists.items():
            fam = fams.get(key[0])
            if fam is None:
                fam = fams[key[0]] = {}
            if state is None:
                fam.pop(key, None)
                continue
            hist = state[0]
            if hist.template is None:  # set before a render can read it (render lock held)
                hist.template = self._hist_template(key, hist.bounds)
            # the state, not its text: a histogram changes every run, so its text (~2.3 KiB,
            # the labels once per bucket) is made when a scrape needs it, from a state
            # whose counts were copied under the store's lock and are never changed
            fam[key] = state

    def _trim_caches(self) -> None:
        """Series that ended leave their line prefixes behind; rebuild a cache that has
        grown far past the live series (pods come and go on a GPU node for months)."""
        counters = sum(len(f) for f in self._texts[_COUNTER].values())
        for cache, live in ((self._prefixes[0], self.latest.gauge_series), (self._prefixes[1], counters)):
            if len(cache) > 2 * live + 10_000:
                cache.clear()
        for code, fams in enumerate(self._texts):
            for metric in [m for m, fam in fams.items() if not fam]:
                del fams[metric]

    @staticmethod
    def content_type(openmetrics: bool) -> str:
        return OPENMETRICS if openmetrics else TEXT


class _States(list):  # type: ignore[type-arg]
    """A histogram family's states in a render's parts (lists of texts are the others)."""

    __slots__ = ("name",)

    def __init__(self, name: str, states: Any) -> None:
        super().__init__(states)
        self.name = name  # the family's sample name


def _hist_lines(name: str, state: tuple[Any, list[int], float, int]) -> str:
    """A histogram's lines from its state and template (see ``_hist_template``): one ``%``
    and one ``str.replace``, ~2.5 us."""
    hist, counts, total, count = state
    labels, tails = hist.template
    if labels:
        bucket, tail = f'{name}_bucket{{{labels},le="', f"{{{labels}}} "
    else:
        bucket, tail = f'{name}_bucket{{le="', " "
    return (bucket + (tails % (*accumulate(counts),)).replace("\0", bucket)
            + f"{name}_sum{tail}{format_value(total)}\n{name}_count{tail}{count}.0\n")


def sample_family_name(sample: Sample) -> str:
    """The Prometheus name a sample is exposed under (tests and docs)."""
    spec = load_catalog().get(sample.metric)
    return prometheus_name(sample.metric, sample.kind, spec.unit if spec else "")
