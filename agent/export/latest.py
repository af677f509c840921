"""The latest value of every exported series, and how long each one stays exposed.

A scrape sees what the checks last said, not what happened to be in the last run, so
this store decides three things per series:

- **Series identity.** Per-event facts (a run id, a try number, a log link) are dropped
  through :meth:`Catalog.series_tags`: a counter then adds up across runs, and a new
  run is never a new series.
- **How long a gauge stays.** A check instance's run that reports a metric reports all
  of its live series: the ones it no longer reports have ended (a run finished, a GPU or
  a pod went away) and go at once. A metric the run did not report at all (a canary every
  few runs, a freshness gauge on a poll that could not read it) keeps its values until
  they are stale: twice the producer's ``interval`` (``CheckResult.interval``), or its
  run's duration when that is longer. Metrics whose facts name an event (a run id: a
  run's duration) are reported once per event, so each of their series stays on its own:
  twice the time between its last two events, at least an hour. Facts that only describe
  a value (the ``reason`` an endpoint is down) leave the metric an ordinary gauge.
- **How cumulative series start.** Prometheus' ``rate()``/``increase()`` cannot see a
  counter's first increment if the series is born at 1, so a new counter (or histogram)
  series is first shown at zero: its first increments wait for the next snapshot (scrape
  or push). After an agent restart every series starts again from zero, which
  ``rate()`` reads as a counter reset and counts correctly.

Running totals from a source (``monotonic_count``: a GPU's ECC errors since the driver
loaded) are exposed as they are: their first value is not something that happened now.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterator
from typing import Optional, Union

from agent.catalog import Catalog
from agent.samples import CheckResult, Kind, Sample, SeriesKey

__all__ = ["DEFAULT_INTERVAL", "EVENT_HOLD", "Histogram", "LatestValues", "Snapshot"]

EVENT_HOLD = 3600.0  # the least a per-event gauge (a run's duration) stays exposed
# facts that name an event: a metric carrying one is reported once per event
EVENT_IDENTITY = frozenset({"run_id", "try_number", "map_index", "log_url"})
DEFAULT_INTERVAL = 60.0  # a producer that does not say how often it reports


class Histogram:
    """Classic Prometheus histogram state: per-bucket counts (upper bounds), sum, count."""

    __slots__ = ("bounds", "counts", "sum", "count", "template")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.template: tuple | None = None  # the renderer's: its labels, bucket tails (prometheus.py)
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # le: value <= bound
        self.sum += value
        self.count += 1

    def merge(self, other: Histogram) -> None:
        for i, n in enumerate(other.counts):
            self.counts[i] += n
        self.sum += other.sum
        self.count += other.count

    def cumulative(self) -> tuple[tuple[int, ...], float, int]:
        total, out = 0, []
        for n in self.counts:
            total += n
            out.append(total)
        return tuple(out), self.sum, self.count


class _Group:
    """One instance's series of one gauge metric (or one series of a per-event metric).

    Most groups hold one series: that one is kept in ``key`` and ``value`` (``values``
    None), not in a one-entry dict (~200 bytes) nor a pair (~60), 7 groups an
    endpoint check. A report that changes the values replaces them; every reader holds
    the store's lock (renders get copies through ``_drain``). ``moved``: whether the
    one series' key is not the one of the report before (the renderer keeps the line
    prefix of its last text otherwise).
    """

    __slots__ = ("updated", "hold", "key", "value", "values", "moved")

    def __init__(self, updated: float, hold: float, values: dict[SeriesKey, float]) -> None:
        self.updated = updated
        self.hold = hold
        self.key: SeriesKey | None = None
        self.value = 0.0
        self.values: dict[SeriesKey, float] | None = None
        self.replace(values)

    def replace(self, values: dict[SeriesKey, float]) -> None:
        if len(values) == 1:
            ((key, self.value),) = values.items()
            old = self.key
            self.moved = old is None or (old[1] is not key[1] and old != key)
            self.key, self.values = key, None
        else:
            self.key, self.values, self.moved = None, values, True

    def __len__(self) -> int:
        values = self.values
        return 1 if values is None else len(values)

    def series(self) -> dict[SeriesKey, float] | tuple[SeriesKey, float, bool]:
        """The group's series and values: its dict, or (key, value, moved) for one series."""
        values = self.values
        return (self.key, self.value, self.moved) if values is None else values  # type: ignore[return-value]

    def same(self, new: dict[SeriesKey, float]) -> bool:
        """Whether ``new`` holds the same series and values, hashing no series key."""
        if self.values is None:
            if len(new) != 1:
                return False
            ((key, value),) = new.items()
            return self.value == value and self.key == key  # (the same tag tuples: by identity)
        return self.values == new


_Pending = Union[float, Histogram]
# what changed since the last take, None for what is gone: gauge values per group (an
# instance's series of one metric; (key, value, moved) for a group of one series, see
# _Group), counters, (the histogram, per-bucket counts, sum, count) per histogram
Snapshot = tuple[dict[tuple[str, object],
                      Union[dict[SeriesKey, float], tuple[SeriesKey, float, bool], None]],
                 dict[SeriesKey, Optional[float]],
                 dict[SeriesKey, Optional[tuple[Histogram, list[int], float, int]]]]


class LatestValues:
    """What /metrics serves; ``consume`` runs on the event loop, ``take`` in render threads."""

    def __init__(self, catalog: Catalog, buckets: Callable[[str], tuple[float, ...]],
                 clock: Callable[[], float] = time.time) -> None:
        self.catalog = catalog
        self.buckets = buckets
        self.clock = clock
        self._lock = threading.Lock()
        self._facts = frozenset(s.name for s in catalog if s.facts)
        self._events = frozenset(s.name for s in catalog if EVENT_IDENTITY & set(s.facts))
        # a metric keeps one kind: a sample of another kind would make a second family
        # of the same name, and Prometheus refuses the whole scrape for that
        self._kinds: dict[str, Kind] = {s.name: s.kind for s in catalog}
        # per check, its groups: one dict a check rather than a (check, group) key a group
        self._groups: dict[str, dict[object, _Group]] = {}
        self._counters: dict[SeriesKey, float] = {}
        self._hists: dict[SeriesKey, Histogram] = {}
        self._fresh: dict[SeriesKey, _Pending] = {}  # new series' first increments
        self._due: dict[SeriesKey, _Pending] = {}  # shown at zero once: applied next take
        # what changed since the last take (written, or gone): a render reformats only that
        # (the groups and histograms themselves, None for gone: a take looks nothing up)
        self._dirty_groups: dict[tuple[str, object], _Group | None] = {}
        self._dirty_counters: set[SeriesKey] = set()
        self._dirty_hists: dict[SeriesKey, Histogram | None] = {}
        # per whole second: (reported at, hold, check, groups) of each report whose groups
        # go stale then unless reported again (a later report adds a later entry)
        self._expiry: dict[int, list[tuple[float, float, str, tuple[object, ...]]]] = {}
        # per check: when it last reported gauges, and which groups (see _expire)
        self._last_report: dict[str, tuple[float, tuple[object, ...]]] = {}
        self.gauge_series = 0
        self.wrong_kind = 0

    # -- writing (the pipeline) ----------------------------------------------------
    def consume(self, result: CheckResult) -> None:
        now = self.clock()
        reported: dict[object, dict[SeriesKey, float]] = {}
        samples = result.samples
        with self._lock:
            self._samples(samples, result.check_type, reported)
            self._report(result, now, reported)

    def consume_in_slices(self, result: CheckResult, size: int) -> Iterator[None]:
        """:meth:`consume` for a large report, yielding after every ``size`` samples, so
        the caller can let the loop run between them (the self-check of 5,000 instances
        reports 10,000 series at once). Nothing is visible before the end but counters,
        histograms and the samples' kinds; the gauges are replaced as one report at the end."""
        now = self.clock()
        reported: dict[object, dict[SeriesKey, float]] = {}
        samples = result.samples
        for start in range(0, len(samples), size):
            with self._lock:
                self._samples(samples[start:start + size], result.check_type, reported)
            yield
        with self._lock:
            self._report(result, now, reported)

    def _samples(self, samples: list[Sample], check_type: str,
                 reported: dict[object, dict[SeriesKey, float]]) -> None:
        """Counters and histograms now; gauges into ``reported`` by metric (by series
        for per-event metrics): what this run reports. Called with the lock held."""
        series_tags = self.catalog.series_tags
        kinds, events, facts = self._kinds, self._events, self._facts
        for sample in samples:
            metric, kind = sample.metric, sample.kind
            pinned = kinds.get(metric)
            if pinned is None:
                kinds[metric] = kind
            elif pinned is not kind:
                self.wrong_kind += 1
                continue
            if metric in facts:  # only these have facts to drop
                key = (metric, series_tags(metric, sample.tags))
                group: object = key if metric in events else metric
            else:
                key = (metric, sample.tags)
                group = metric
            if kind is Kind.GAUGE:
                values = reported.get(group)
                if values is None:
                    values = reported[group] = {}
                values[key] = sample.value
            elif kind is Kind.COUNT:
                self._count(key, sample.value)
            elif kind is Kind.MONOTONIC_COUNT:
                self._counters[key] = sample.value
                self._dirty_counters.add(key)
            else:
                self._observe(key, sample.value, check_type)

    def _report(self, result: CheckResult, now: float,
                reported: dict[object, dict[SeriesKey, float]]) -> None:
        """Replace the groups the run reported; called with the lock held."""
        # a run longer than the interval delays the next one (runs never overlap)
        hold = 2.0 * max(result.interval or DEFAULT_INTERVAL, result.duration)
        check = result.check
        dirty = self._dirty_groups
        groups = self._groups.get(check)
        if groups is None:
            if not reported:
                return
            groups = self._groups[check] = {}
        events_seen = None
        for group, values in reported.items():
            old = groups.get(group)
            keep = hold
            if group.__class__ is tuple:  # a per-event series: its own cadence
                keep = max(hold, EVENT_HOLD, 2.0 * (now - old.updated) if old else 0.0)
                events_seen = events_seen or []
                events_seen.append(((group,), keep))
            if old is not None and old.same(values):
                # the same values as last time (a status, a version): the group stays,
                # so a render keeps its text without looking at it
                old.updated, old.hold = now, keep
                continue
            if old is None:
                groups[group] = dirty[(check, group)] = _Group(now, keep, values)
                self.gauge_series += len(values)
            else:  # the group object stays: one object fewer per report to reach the
                # collector's old generation (it lives an interval); its values are replaced
                self.gauge_series += len(values) - len(old)
                old.updated, old.hold = now, keep
                old.replace(values)
                dirty[(check, group)] = old
        if not reported:
            return
        names = tuple(reported)
        last = self._last_report.get(check)
        if last is not None and last[1] == names:
            names = last[1]  # the groups of last time: one tuple for every entry that names them
        # when this report's groups may go stale: looked at then, not on every take
        if events_seen:
            for groups_of, keep in events_seen:
                self._expiry_add(now, keep, check, groups_of)
            if len(events_seen) < len(reported):
                self._expiry_add(now, hold, check,
                                 tuple(g for g in reported if g.__class__ is not tuple))
        else:
            self._expiry_add(now, hold, check, names)
        self._last_report[check] = (now, names)

    def _expiry_add(self, now: float, keep: float, check: str, groups: tuple[object, ...]) -> None:
        second = int(now + keep)
        bucket = self._expiry.get(second)
        if bucket is None:
            bucket = self._expiry[second] = []
        bucket.append((now, keep, check, groups))

    def _count(self, key: SeriesKey, delta: float) -> None:
        fresh, due = self._fresh, self._due
        if key not in self._counters:
            self._counters[key] = 0.0
            fresh[key] = delta
            self._dirty_counters.add(key)
        elif fresh and key in fresh:
            fresh[key] += delta  # type: ignore[operator]
        elif due and key in due:
            due[key] += delta  # type: ignore[operator]
        else:
            self._counters[key] += delta
            self._dirty_counters.add(key)

    def _observe(self, key: SeriesKey, value: float, check_type: str) -> None:
        hist = self._hists.get(key)
        if hist is None:
            bounds = self.buckets(check_type)
            self._hists[key] = self._dirty_hists[key] = Histogram(bounds)
            pending = self._fresh[key] = Histogram(bounds)
        else:
            pending = self._fresh.get(key) or self._due.get(key)  # type: ignore[assignment]
            if pending is None:
                hist.observe(value)
                self._dirty_hists[key] = hist
                return
        pending.observe(value)  # type: ignore[union-attr]

    def forget(self, check: str) -> None:
        """Drop an instance's series (it was removed by a reload)."""
        tag = ("check", check)
        with self._lock:
            self._last_report.pop(check, None)
            for name, group in self._groups.pop(check, {}).items():
                self.gauge_series -= len(group)
                self._dirty_groups[(check, name)] = None
            for key in [k for k in self._counters if tag in k[1]]:
                del self._counters[key]
                self._dirty_counters.add(key)
            for key in [k for k in self._hists if tag in k[1]]:
                del self._hists[key]
                self._dirty_hists[key] = None
            for store in (self._fresh, self._due):
                for key in [k for k in store if tag in k[1]]:
                    del store[key]

    # -- reading (renders) ---------------------------------------------------------
    def written(self) -> Snapshot:
        """What reports changed since the last call or take, for the renderer to format as
        they arrive (on the loop, a check's lines at a time) rather than all at a scrape."""
        with self._lock:
            return self._drain()

    def take(self) -> Snapshot:
        """What changed since the last call; each call is one scrape or push.

        Increments of new series shown at zero by the previous call are applied first,
        so every reader that asks twice sees the series at zero before its first rise.
        The first call returns every series. A series that is gone is returned as None;
        the reader keeps the rest from earlier calls (so there is one reader: the
        exporter's renderer, which also reads :meth:`written` as reports arrive).
        """
        now = self.clock()
        with self._lock:
            for key, pending in self._due.items():
                if pending.__class__ is Histogram:
                    hist = self._hists.get(key)
                    if hist is not None:
                        hist.merge(pending)  # type: ignore[arg-type]
                        self._dirty_hists[key] = hist
                elif key in self._counters:
                    self._counters[key] += pending  # type: ignore[operator]
                    self._dirty_counters.add(key)
            self._due, self._fresh = self._fresh, {}
            self._expire(now, self._groups, self._dirty_groups)
            return self._drain()

    def _drain(self) -> Snapshot:
        """Hand over (and forget) what changed; called with the lock held."""
        dirty_groups, self._dirty_groups = self._dirty_groups, {}
        dirty_counters, self._dirty_counters = self._dirty_counters, set()
        dirty_hists, self._dirty_hists = self._dirty_hists, {}
        # a histogram changes in place (a take merges first increments in a render
        # thread): copied under the lock (a torn copy would show a count that is not
        # its +Inf bucket)
        changed_hists = {k: None if h is None else (h, h.counts[:], h.sum, h.count)
                         for k, h in dirty_hists.items()}
        # a group's dict is replaced by each report that changes it, never changed (see
        # _Group), a one-series group's is made here, and a counter is a float
        gauges = {k: None if g is None else g.series() for k, g in dirty_groups.items()}
        counters = self._counters
        changed_counters = {k: counters.get(k) for k in dirty_counters}
        return gauges, changed_counters, changed_hists

    def _expire(self, now: float, by_check: dict[str, dict[object, _Group]],
                dirty: dict[tuple[str, object], _Group | None]) -> None:
        """Drop the groups not reported again within their hold (twice the interval)."""
        expiry = self._expiry
        for second in [s for s in expiry if s <= now]:
            bucket = expiry.pop(second)
            later = []
            for entry in bucket:
                reported_at, keep, check, names = entry
                if now - reported_at <= keep:
                    later.append(entry)  # due within this second, not yet
                    continue
                last = self._last_report.get(check)
                if last is not None and last[0] > reported_at and last[1] == names:
                    continue  # the check reported these groups again since: nothing to drop
                groups = by_check.get(check)
                if groups is None:
                    continue
                for name in names:
                    group = groups.get(name)
                    # a group reported since has a later entry of its own
                    if group is not None and now - group.updated > group.hold:
                        del groups[name]
                        self.gauge_series -= len(group)
                        dirty[(check, name)] = None
                if not groups:
                    del by_check[check]
            if later:
                expiry[second] = later

    @property
    def series_count(self) -> int:
        with self._lock:  # (gauge_series is kept as groups change: no walk over them)
            return self.gauge_series + len(self._counters) + len(self._hists)
