"""Rules applied to series: ingest samples, evaluate the affected groups, report changes.

This module is pure bookkeeping: it does no I/O and never reads a clock (``now`` is
always passed in), so the daemon, ``mlwarden rules test`` and the tests drive the same
code. The component in :mod:`agent.rules.engine` adds the clock, persistence, the timer
and the sinks.

The hot path is built for many series: a sample costs a dict lookup for its metric's
rules, an array append, a comparison with the quiet band its groups share, and per rule a
cached selector verdict; a group that has no alert and whose window holds no sample
outside its rule's quiet band (:mod:`agent.rules.bounds`) costs one comparison; another
group whose condition does not hold and that has no alert costs one reduce and one
comparison. Neither creates anything. Alerts exist only while they are pending, firing,
flapping or recently resolved.
"""

from __future__ import annotations

import heapq
import logging
import math
import operator
from bisect import bisect_right
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from agent.alert import Alert, AlertEvent, AlertState, alert_labels, fingerprint, shown_state
from agent.catalog import Catalog, load_catalog
from agent.rules.aggregations import AGGREGATORS, combine
from agent.rules.bounds import quiet_band
from agent.rules.config import RuleConfig, RulesEngineConfig
from agent.rules.incremental import INCREMENTAL
from agent.rules.lifecycle import AlertRecord, Timing, step, vanish
from agent.rules.matchers import Selector
from agent.rules.templates import render_annotations
from agent.rules.window import NO_FACTS, SeriesBuffer
from agent.samples import Kind, Sample, SeriesKey, Tags

__all__ = ["Change", "CompiledRule", "RuleEvaluator"]

log = logging.getLogger(__name__)

_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
    "==": operator.eq, "!=": operator.ne,
}
_ACTIVE = (AlertState.PENDING, AlertState.FIRING)
_FIRING = AlertState.FIRING
_KEEP_MIN = 9  # samples always kept per series, so a series' own interval can be measured
_SERIES_SHOWN = 10  # member series an alert names (for its chart)
_EXPIRE_SLACK = 60.0  # seconds past the horizon a sample may still be held (see _expire)
_INF = math.inf
_NEG_INF = -math.inf  # one object: SeriesGroup and SeriesBuffer hold it until a sample comes
_EARLY = 2.0 ** -40  # expiry files a buffer a second and this share of its due time early


@dataclass(frozen=True, slots=True)
class Change:
    """One public state change of one alert."""

    record: AlertRecord
    rule: CompiledRule | None  # None: the rule was removed and its alert closed on restore
    previous: AlertState
    state: AlertState
    at: float

    def alert(self) -> Alert:
        """The value handed to sinks, routed and sent (a snapshot; the record moves on):
        routing labels, the state a notification says, a resolution's end."""
        rec = self.record
        cfg = self.rule.cfg if self.rule is not None else None
        threshold = None if cfg is None else (cfg.absent if cfg.is_absent else cfg.threshold)
        series: list[dict[str, str]] = []
        if self.rule is not None:  # the alert's own series, so a chart can draw exactly them
            group = self.rule.groups.get(rec.group)
            series = [dict(buf.tags) for buf in (group.members if group else ())[:_SERIES_SHOWN]]
        state = shown_state(self.state)
        return Alert(
            fingerprint=rec.fingerprint, rule=rec.rule,
            labels=alert_labels(rec.rule, rec.labels, rec.severity), state=state,
            severity=rec.severity, annotations=dict(rec.annotations), value=rec.value,
            threshold=threshold, active_since=rec.active_since, fired_at=rec.fired_at,
            resolved_at=(rec.resolved_at or self.at) if state == "resolved" else None,
            metric=cfg.metric if cfg is not None else None, series=series,
        )

    def event(self) -> AlertEvent:
        """The change as its sinks hear it."""
        return AlertEvent(self.alert(), self.previous, self.at, self.state, self.record.flap_count)


class _Bucket(list):
    """The buffers whose expiry is due in one second, and that second as one int object
    (each buffer's ``due`` is it, not an int of its own: 32 bytes a series)."""

    __slots__ = ("second",)

    def __init__(self, second: int) -> None:
        super().__init__()
        self.second = second


class SeriesGroup:
    """The series of one rule that make one alert (one series unless ``group_by``).

    The hot path walks object references (series -> its groups -> their buffers) instead
    of hashing tag tuples, and an alert's labels and fingerprint are built once per group.
    """

    __slots__ = ("rule", "key", "members", "alert", "last_seen", "interval", "_record",
                 "hot", "lo", "hi")

    def __init__(self, rule: CompiledRule, key: Tags) -> None:
        self.rule = rule
        self.key = key
        self.members: list[SeriesBuffer] = []
        self.alert: AlertRecord | None = None
        self.last_seen = _NEG_INF  # absent rules: the newest sample of any member
        self.interval: float | None = None  # absent_intervals: the members' own interval
        self._record: tuple[dict[str, str], str] | None = None
        # the rule's quiet band (agent.rules.bounds) and the time of the members' newest
        # sample outside it; +inf: no band, the group is evaluated with every sample
        band = rule.band
        self.lo, self.hi = band if band is not None else (_NEG_INF, _INF)
        self.hot = _NEG_INF if band is not None else _INF

    def new_record(self) -> AlertRecord:
        if self._record is None:
            labels = self.rule.labels(self.key)
            self._record = (labels, fingerprint(self.rule.name, labels))
        labels, fp = self._record
        return AlertRecord(fp, self.rule.name, dict(labels), self.rule.cfg.severity, group=self.key)


class CompiledRule:
    """A rule ready for the hot path, with its groups and live alerts."""

    def __init__(self, cfg: RuleConfig, index: int, catalog: Catalog,
                 settings: RulesEngineConfig) -> None:
        self.cfg = cfg
        self.index = index
        self.name = cfg.alert
        self.metric = cfg.metric
        self.selector = Selector(cfg.where)
        self.reduce = AGGREGATORS[cfg.aggregate]
        spec = catalog.get(cfg.metric)
        self.delta = spec is not None and spec.kind is Kind.COUNT
        # a gauge's facts a template may name, "n/a" until a sample says otherwise
        self.declared_facts = ({f: "n/a" for f in spec.facts}
                               if spec is not None and not self.delta
                               and spec.kind is not Kind.MONOTONIC_COUNT else {})
        self.window = float(cfg.window)
        self.memo_key = (cfg.aggregate, self.window)
        self.sliding = INCREMENTAL.get(cfg.aggregate)  # a window state carried forward, or None
        self.shared = True  # another rule of the metric reduces the same way (set by the evaluator)
        self.from_store = self.window > settings.memory_window
        self.is_absent = cfg.is_absent
        self.cut = -_INF  # the window's start at an evaluation time not after the next one
        # samples inside the band cannot make the condition hold (None: no such band)
        self.band = (None if self.is_absent or self.from_store or self.window <= 0
                     else quiet_band(cfg.aggregate, cfg.op, cfg.threshold))
        self.compare = _COMPARE[cfg.op] if cfg.op else operator.ge
        self.threshold = cfg.threshold if cfg.threshold is not None else 0.0
        self.recover = cfg.recover
        self.timing = Timing(cfg.for_, cfg.keep_firing_for, settings.flap_threshold,
                             settings.flap_window, settings.flap_settle)
        self.extra = {**cfg.labels, "severity": cfg.severity}
        self.groups: dict[Tags, SeriesGroup] = {}
        self.live: dict[SeriesGroup, None] = {}  # groups that hold an alert
        self.synthetic: set[SeriesGroup] = set()  # absent: the "nothing matched at all" group

    def group_key(self, tags: Tags) -> Tags | None:
        """The group key of a series, or None when the selector rejects it."""
        if not self.selector.matches(tags):
            return None
        if self.cfg.group_by is None:
            return tags
        values = dict(tags)
        return tuple(sorted((k, values[k]) for k in self.cfg.group_by if k in values))

    def group(self, key: Tags) -> SeriesGroup:
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = SeriesGroup(self, key)
        return group

    def labels(self, key: Tags) -> dict[str, str]:
        labels = dict(key)
        labels.update(self.extra)
        return labels


class RuleEvaluator:
    """Every rule's groups, buffers and alerts; see the module docstring."""

    def __init__(self, rules: Sequence[RuleConfig], settings: RulesEngineConfig | None = None,
                 *, started: float, catalog: Catalog | None = None) -> None:
        self.settings = settings or RulesEngineConfig()
        catalog = catalog or load_catalog()
        self.catalog = catalog
        # metrics whose facts describe the latest value (a gauge's reason), not the series:
        # their series are known by their tags without facts, and the facts go to the text
        self.described = frozenset(spec.name for spec in catalog if spec.facts
                                   and spec.kind not in (Kind.COUNT, Kind.MONOTONIC_COUNT))
        self.started = started
        self.rules = [CompiledRule(cfg, i, catalog, self.settings) for i, cfg in enumerate(rules)]
        self.by_metric: dict[str, list[CompiledRule]] = {}
        self.horizon: dict[str, float] = {}
        for rule in self.rules:
            if rule.from_store:
                continue
            self.by_metric.setdefault(rule.metric, []).append(rule)
            self.horizon[rule.metric] = max(self.horizon.get(rule.metric, 0.0), rule.window)
        # the per-series memo pays only where two rules of a metric reduce the same way
        for rules_of in self.by_metric.values():
            keys = [r.memo_key for r in rules_of]
            for rule in rules_of:
                rule.shared = keys.count(rule.memo_key) > 1
        self.buffers: dict[SeriesKey, SeriesBuffer] = {}
        # expiry visits only the buffers it may act on: by the second they become due, and
        # those whose samples moved in a way that may make them due sooner (see _expire)
        self._due: dict[int, _Bucket] = {}
        self._due_at: list[int] = []  # the keys of _due, a heap
        self._recheck: dict[SeriesKey, SeriesBuffer] = {}
        self._created = 0
        self._cuts_upto = -_INF  # every rule's cut is from an evaluation at or before this
        self._changes: list[Change] = []
        self._dirty: dict[str, AlertRecord] = {}
        self.truncated: set[SeriesKey] = set()

    # -- input ------------------------------------------------------------------------
    def ingest(self, samples: Iterable[Sample]) -> dict[SeriesGroup, None]:
        """Remember the samples rules read; returns the groups they affect, in the order of
        the samples (so replays print transitions in a stable order)."""
        affected: dict[SeriesGroup, None] = {}
        by_metric = self.by_metric
        buffers = self.buffers
        described = self.described
        recheck = self._recheck
        for sample in samples:
            metric = sample.metric
            if metric not in by_metric:
                continue
            value = sample.value
            if value != value:  # NaN is a missing sample, never a value to compare
                continue
            tags = sample.tags
            desc = metric in described
            if desc:
                ident = self.catalog.series_tags(metric, tags)
                key = (metric, ident)
            else:
                key = (metric, tags)
            buf = buffers.get(key)
            if buf is None:
                buf = self._new_series(key)
            ts = sample.timestamp
            if desc and ts >= buf.last_seen:
                buf.facts = {k: v for k, v in tags if (k, v) not in ident} or NO_FACTS
            times = buf.times
            n = len(times) - buf.start  # held before this sample
            if n > 0 and ts > times[-1] and n < buf.max_points:
                # SeriesBuffer.append's common case inlined: in order, within the cap
                times.append(ts)
                buf.values.append(value)
                if ts > buf.last_seen:
                    buf.last_seen = ts
                if n == _KEEP_MIN:
                    recheck[key] = buf  # past _KEEP_MIN now: expiry may be due
            else:
                buf.append(ts, value)
                recheck[key] = buf  # held samples moved: expiry may be due sooner
                if ts != ts:  # windows are no longer in time order: no group is quiet again
                    for group in buf.watch:
                        group.hot = _INF
            if value > buf.hi or value < buf.lo:  # outside every band of the series: look closer
                for group in buf.watch:
                    if (value > group.hi or value < group.lo) and ts > group.hot:
                        group.hot = ts
            for group in buf.absent:  # (mostly none)
                if ts > group.last_seen:
                    group.last_seen = ts
                if group.rule.synthetic:
                    self._drop_synthetic(group.rule, group, ts)
            for group in buf.groups:
                affected[group] = None
        return affected

    def _new_series(self, key: SeriesKey) -> SeriesBuffer:
        metric, tags = key
        buf = self.buffers[key] = SeriesBuffer(self.settings.max_points, tags)
        buf.key = key  # the same tuple as the dict's: expiry's buckets hold the buffer alone
        groups = []
        for rule in self.by_metric[metric]:
            gkey = rule.group_key(tags)
            if gkey is not None:
                group = rule.group(gkey)
                group.members.append(buf)
                groups.append(group)
        buf.groups = tuple(groups)  # fixed from here on (a tuple: 40 bytes less than a list)
        buf.watch = tuple(g for g in buf.groups if g.rule.band is not None)
        if buf.watch:  # a sample inside all of its groups' bands is hot for none of them
            buf.lo, buf.hi = max(g.lo for g in buf.watch), min(g.hi for g in buf.watch)
        buf.absent = tuple(g for g in buf.groups if g.rule.is_absent)
        self._created += 1
        buf.seq = self._created
        return buf

    def prime_spans(self) -> dict[str, float]:
        """How far back to read each metric after a restart: what memory would still hold."""
        return {metric: horizon + self.settings.stale_after for metric, horizon in self.horizon.items()}

    def prime(self, metric: str, data: Mapping[Tags, Sequence[tuple[float, float]]]) -> None:
        """Fill buffers from the store after a restart (no evaluation, no alerts)."""
        samples = [Sample(metric, v, tags, t) for tags, points in data.items() for t, v in points
                   if v is not None and v == v]
        samples.sort(key=lambda s: s.timestamp)
        self.ingest(samples)

    # -- evaluation ---------------------------------------------------------------------
    def evaluate(self, affected: Iterable[SeriesGroup], now: float) -> None:
        """Evaluate each affected group at ``now``; changes accumulate for :meth:`drain`.

        Groups are taken rule by rule so the rule's settings are loaded once; the loop
        inlines the common case (one series, window ending after its newest sample, no
        alert and nothing wrong) and hands everything else to :meth:`_eval_threshold`.
        """
        if not now >= self._cuts_upto:  # the clock went back: earlier cuts may be too late
            for rule in self.rules:
                rule.cut = -_INF
        self._cuts_upto = now
        by_rule: dict[CompiledRule, list[SeriesGroup]] = {}
        for group in affected:
            if group.hot <= group.rule.cut and group.alert is None:
                continue  # quiet already at an earlier evaluation time (see below)
            members = by_rule.get(group.rule)
            if members is None:
                by_rule[group.rule] = [group]
            else:
                members.append(group)
        for rule, groups in by_rule.items():
            if rule.is_absent:
                for group in groups:
                    self._eval_absent(group, now)
                continue
            window, reduce, delta = rule.window, rule.reduce, rule.delta
            compare, threshold, memo_key = rule.compare, rule.threshold, rule.memo_key
            shared, sliding = rule.shared, rule.sliding
            level = rule.recover if rule.recover is not None else threshold  # a firing alert's
            # where the window starts: a group whose newest hot sample is no later is quiet,
            # now and (the clock moving on) at any later evaluation, which checks with this
            # cut before grouping
            cut = rule.cut = now - window if rule.band is not None else -_INF
            for group in groups:
                if group.hot <= cut and group.alert is None:
                    continue  # quiet: its window holds no sample that could make it cross
                members = group.members
                if len(members) != 1:
                    self._eval_threshold(group, now)
                    continue
                buf = members[0]
                times = buf.times
                n = len(times)
                if n <= buf.start or times[n - 1] > now:
                    self._eval_threshold(group, now)
                    continue
                if window <= 0:
                    value: float | None = buf.values[n - 1]
                elif sliding is not None:
                    # one state per series and (aggregate, window), shared by rules that match
                    memo = buf.memo
                    if memo is None:
                        memo = buf.memo = {}
                    state = memo.get(memo_key)
                    if state is None:
                        state = memo[memo_key] = sliding()
                    if shared and state.now == now and state.hi == n and state.epoch in (
                            buf.epoch, -2 - buf.epoch):
                        value = state.value  # another rule asked the same a moment ago
                    else:
                        value = state.update(buf.values,
                                             bisect_right(times, now - window, buf.start),
                                             n, buf.epoch)
                    state.now = now
                elif not shared:
                    value = reduce(times, buf.values, bisect_right(times, now - window, buf.start),
                                   n, window, delta)
                else:
                    # rules sharing an aggregate and window (a warning and a critical level)
                    # reduce a series once per evaluation time
                    memo = buf.memo
                    if memo is None:
                        memo = buf.memo = {}
                    hit = memo.get(memo_key)
                    if hit is not None and hit[0] == now and hit[1] == n:
                        value = hit[2]
                    else:
                        lo = bisect_right(times, now - window, buf.start)
                        value = reduce(times, buf.values, lo, n, window, delta)
                        memo[memo_key] = (now, n, value)
                if value is None or value != value:
                    continue  # no data in the window: nothing to judge
                rec = group.alert
                if rec is None:
                    if not compare(value, threshold):
                        continue  # the common case: nothing wrong and no alert to keep
                elif rec.state is _FIRING and rec.phase is _FIRING and rec.clear_since is None \
                        and compare(value, level):
                    # a firing alert that still holds: what _judge's fast path does, inlined
                    rec.value = value
                    rec.last_eval = now
                    continue
                self._judge(group, value, now)

    def tick(self, now: float) -> None:
        """The timer's work: absent rules, expiry of windows and of silent series, and the
        alerts whose ``for``/``keep_firing_for``/flap timers run without new samples."""
        self._expire(now)
        stale = now - self.started >= self.settings.stale_after
        for rule in self.rules:
            if rule.from_store:
                continue
            if rule.is_absent:
                if not rule.groups and rule.cfg.absent is not None:
                    group = rule.group(tuple(sorted(rule.selector.equalities().items())))
                    group.last_seen = self.started
                    rule.synthetic.add(group)
                for group in list(rule.groups.values()):
                    self._eval_absent(group, now)
            else:
                held: list[SeriesGroup] = []  # alerts with series: evaluated as samples are
                for group in list(rule.live):
                    rec = group.alert
                    if rec is None:
                        continue
                    if group.members:
                        held.append(group)
                        continue
                    if held:  # in the order of rule.live
                        self.evaluate(held, now)
                        held = []
                    if stale:
                        self._vanish(group, now)  # restored, and its series never came back
                    elif not self._forgettable(rec, now):
                        # restored and no sample since: the data has not changed, so neither has
                        # the verdict; only the timers (for, keep_firing_for, flap) move on
                        self._step(group, rec, _last_verdict(rec), rec.value, now)
                if held:
                    self.evaluate(held, now)
            self._forget_settled(rule, now)

    def store_rules(self) -> list[CompiledRule]:
        """Rules whose window is longer than memory holds: the engine reads the store for them."""
        return [r for r in self.rules if r.from_store]

    def evaluate_from_store(self, rule: CompiledRule,
                            data: Mapping[Tags, Sequence[tuple[float, float]]], now: float) -> None:
        """Evaluate a long-window rule over series read from the store."""
        by_group: dict[Tags, list[float]] = {}
        merged: dict[Tags, list[tuple[float, float]]] = {}
        for tags, points in data.items():  # a gauge's fact variants are one series
            ident = (self.catalog.series_tags(rule.metric, tags) if rule.metric in self.described
                     else tags)
            merged.setdefault(ident, []).extend(points)
        for tags, points in merged.items():
            points = sorted(points) if len(data) != len(merged) else points
            gkey = rule.group_key(tags)
            if gkey is None or not points:
                continue
            times = [t for t, v in points if v is not None and v == v]
            values = [v for t, v in points if v is not None and v == v]
            lo = _first_after(times, now - rule.window)
            value = rule.reduce(times, values, lo, len(times), rule.window, rule.delta)
            if value is not None and value == value:
                by_group.setdefault(gkey, []).append(value)
        if now - self.started >= self.settings.stale_after:
            for group in list(rule.live):
                if group.key not in by_group:
                    self._vanish(group, now)
        for gkey, values in by_group.items():
            value = combine(rule.cfg.aggregate, values, rule.cfg.op, rule.threshold)
            self._judge(rule.group(gkey), value, now)
        self._forget_settled(rule, now)

    def drain(self) -> tuple[list[Change], list[AlertRecord]]:
        """The changes since the last drain, and the records whose durable state moved."""
        changes, dirty = self._changes, list(self._dirty.values())
        self._changes, self._dirty = [], {}
        return changes, dirty

    # -- state --------------------------------------------------------------------------
    def restore(self, records: Iterable[AlertRecord], now: float) -> int:
        """Adopt persisted alerts so a restart resumes them where they were."""
        by_name: dict[str, list[CompiledRule]] = {}
        for rule in self.rules:
            by_name.setdefault(rule.name, []).append(rule)
        adopted = 0
        for rec in records:
            key = rec.group
            if self._forgettable(rec, now):
                continue
            rule = next((r for r in by_name.get(rec.rule, ())
                         if fingerprint(r.name, r.labels(key)) == rec.fingerprint), None)
            if rule is None:  # the rule is gone or changed its labels: close the alert
                if rec.state in (AlertState.FIRING, AlertState.PENDING, AlertState.FLAPPING):
                    self._record_vanish(None, rec, now)
                continue
            group = rule.group(key)
            group.alert = rec
            rule.live[group] = None
            if rule.is_absent and rec.value is not None and rec.last_eval is not None:
                group.last_seen = rec.last_eval - rec.value
            adopted += 1
        return adopted

    def resumed(self, now: float) -> list[Change]:
        """The restored alerts that sinks must hear about again after a restart.

        The alert tables are written before the sinks are told, so a kill in between leaves
        a transition that routing never heard of; routing de-duplicates what it already has,
        so telling it again is safe and telling it nothing would lose the notification.
        """
        out = []
        for rule in self.rules:
            for group in rule.live:
                rec = group.alert
                if rec is None or rec.state not in (AlertState.FIRING, AlertState.FLAPPING,
                                                    AlertState.RESOLVED):
                    continue
                previous = AlertState.FIRING if rec.state is AlertState.RESOLVED else rec.state
                out.append(Change(rec, rule, previous, rec.state, now))
        return out

    def alerts(self) -> list[AlertRecord]:
        return [g.alert for rule in self.rules for g in rule.live if g.alert is not None]

    def series_count(self) -> int:
        return len(self.buffers)

    # -- internals ------------------------------------------------------------------------
    def _eval_threshold(self, group: SeriesGroup, now: float) -> None:
        members = group.members
        if not members:
            return
        rule = group.rule
        if len(members) == 1:
            value = _reduce(rule, members[0], now)
        else:
            values = [v for buf in members if (v := _reduce(rule, buf, now)) is not None]
            value = combine(rule.cfg.aggregate, values, rule.cfg.op, rule.threshold) if values else None
        if value is None or value != value:
            return  # no data in the window: nothing to judge, the alert stays as it is
        if group.alert is None and not rule.compare(value, rule.threshold):
            return  # the common case: nothing wrong and no alert to keep
        self._judge(group, value, now)

    def _judge(self, group: SeriesGroup, value: float, now: float) -> None:
        rule = group.rule
        rec = group.alert
        if rec is not None and rec.state is _FIRING and rec.phase is _FIRING \
                and rec.clear_since is None and rule.compare(
                    value, rule.recover if rule.recover is not None else rule.threshold):
            rec.value = value  # firing and still holding: the fast path below, decided early
            rec.last_eval = now
            return
        if rec is not None and self._forgettable(rec, now):
            self._drop(group)
            rec = None
        if rec is None:
            if not rule.compare(value, rule.threshold):
                return
            rec = self._adopt(group)
            holds = True
        else:
            level = rule.threshold
            if rule.recover is not None and rec.phase in _ACTIVE:
                level = rule.recover
            holds = rule.compare(value, level)
            if holds and rec.state is rec.phase and rec.clear_since is None and (
                rec.phase is AlertState.FIRING or (
                    rec.phase is AlertState.PENDING and rec.active_since is not None
                    and now - rec.active_since < rule.timing.for_)
            ):
                rec.value = value  # still holding, nothing due: the fast path of a live alert
                rec.last_eval = now
                return
        self._step(group, rec, holds, value, now)

    def _eval_absent(self, group: SeriesGroup, now: float) -> None:
        rule = group.rule
        if group.last_seen == -math.inf:
            return
        limit = rule.cfg.absent or 0.0
        if rule.cfg.absent_intervals:
            interval = _interval(group)
            if interval is not None:
                group.interval = interval
            else:
                interval = group.interval
            if interval is not None:
                limit = max(limit, rule.cfg.absent_intervals * interval)
            elif not rule.cfg.absent:
                return  # its interval is not known yet: nothing to judge
        silent = max(now - group.last_seen, 0.0)
        holds = silent >= limit
        rec = group.alert
        if rec is not None and self._forgettable(rec, now):
            self._drop(group)
            rec = None
        if rec is None:
            if not holds:
                return
            rec = self._adopt(group)
        self._step(group, rec, holds, silent, now)

    def _adopt(self, group: SeriesGroup) -> AlertRecord:
        rec = group.alert = group.new_record()
        group.rule.live[group] = None
        return rec

    def _drop(self, group: SeriesGroup) -> None:
        group.alert = None
        group.rule.live.pop(group, None)

    def _step(self, group: SeriesGroup, rec: AlertRecord, holds: bool, value: float | None,
              now: float) -> None:
        before = rec.timers()
        change = step(rec, holds, value, now, group.rule.timing)
        self._after(group.rule, rec, before, change, now)

    def _vanish(self, group: SeriesGroup, now: float) -> None:
        rec = group.alert
        if rec is not None:
            self._record_vanish(group.rule, rec, now)
        self._drop(group)
        rule = group.rule
        if not group.members and rule.groups.get(group.key) is group:
            del rule.groups[group.key]
        rule.synthetic.discard(group)

    def _record_vanish(self, rule: CompiledRule | None, rec: AlertRecord, now: float) -> None:
        before = rec.timers()
        timing = rule.timing if rule is not None else Timing()
        change = vanish(rec, now, timing)
        self._after(rule, rec, before, change, now)

    def _after(self, rule: CompiledRule | None, rec: AlertRecord, before: tuple,
               change: tuple[AlertState, AlertState] | None, now: float) -> None:
        if change is not None:
            # a resolution keeps the text the alert fired with: it says what resolved
            closing = change[1] in (AlertState.RESOLVED, AlertState.INACTIVE) and rec.annotations
            if rule is not None and not closing:
                facts = {**rule.declared_facts, **_facts(rule.groups.get(rec.group))}
                rec.annotations = render_annotations(rule.cfg, rec.labels, rec.value, facts)
            self._changes.append(Change(rec, rule, change[0], change[1], now))
        if change is not None or rec.timers() != before:
            self._dirty[rec.fingerprint] = rec

    def _drop_synthetic(self, rule: CompiledRule, group: SeriesGroup, now: float) -> None:
        """A real series arrived: the selector-wide "nothing at all" alert gives way to it."""
        for synthetic in list(rule.synthetic):
            rule.synthetic.discard(synthetic)
            if synthetic is not group:
                self._vanish(synthetic, now)

    def _forgettable(self, rec: AlertRecord, now: float) -> bool:
        """Over, and its flap history aged out: the same as no alert at all.

        Applied when an alert is next touched, at restore and by the timer's cleanup alike,
        so when memory is freed never changes what happens next.
        """
        return rec.state in (AlertState.INACTIVE, AlertState.RESOLVED) and (
            not rec.flips or now - rec.flips[-1] > self.settings.flap_window
        )

    def _forget_settled(self, rule: CompiledRule, now: float) -> None:
        for group in list(rule.live):
            if group.alert is None or self._forgettable(group.alert, now):
                self._drop(group)

    def _expire(self, now: float) -> None:
        """Forget silent series; let go of samples older than every window.

        Windows are found by bisection, so a sample older than the horizon that is still
        held changes no value: it is let go once it is ``_EXPIRE_SLACK`` past the horizon,
        a few rounds at a time instead of one sample per series every round.

        Only the buffers this round may act on are visited: each waits in a per-second
        bucket for the earliest time it can be silent for too long or hold a sample past
        the slack (a second early, never late), and ingest sends to the next round those
        whose samples moved in a way that can bring that time nearer (an append past
        ``_KEEP_MIN``, out of order, a replaced value, the ``max_points`` cap). So every
        round does exactly what a walk over every buffer would, and series leave in the
        order the walk would meet them.
        """
        stale_after = self.settings.stale_after
        # per metric: this round's cuts, and how long after a buffer's newest and oldest
        # samples the checks below can first come out otherwise
        cuts = {metric: (now - horizon - stale_after, now - horizon, now - horizon - _EXPIRE_SLACK,
                         horizon + stale_after, horizon + _EXPIRE_SLACK)
                for metric, horizon in self.horizon.items()}
        default = (now - stale_after, now, now - _EXPIRE_SLACK, stale_after, _EXPIRE_SLACK)
        buffers = self.buffers
        visit = []  # buffers, and the second each was filed under before
        for key, buf in self._recheck.items():
            if buffers.get(key) is buf:
                visit.append((buf, buf.due))
                buf.due = None  # its bucket entry, if any, is stale now (unless filed there again)
        self._recheck = {}
        due, heap = self._due, self._due_at
        while heap and heap[0] <= now:
            second = heapq.heappop(heap)
            for buf in due.pop(second):
                if buf.due == second:  # (a forgotten buffer's is None)
                    buf.due = None
                    visit.append((buf, None))
        silent = []
        floor = math.floor
        for buf, before in visit:
            key = buf.key
            stale, cut, late, to_stale, to_late = cuts.get(key[0], default)
            if buf.last_seen < stale:
                silent.append((buf.seq, key, buf))
                continue
            times = buf.times
            start = buf.start
            if len(times) - start > _KEEP_MIN and times[start] < late:
                buf.expire(cut, _KEEP_MIN)
                start = buf.start
            if buf.dropped and key not in self.truncated:
                self.truncated.add(key)
                log.warning("series %s%s outgrew max_points (%d): its windows hold fewer samples "
                            "than they span", key[0], dict(key[1]), self.settings.max_points)
            # file it under the second from which the checks above may come out otherwise
            at = buf.last_seen + to_stale
            if len(times) - start > _KEEP_MIN:
                first = times[start] + to_late
                if first < at:
                    at = first
            if not -_INF < at < _INF:
                if at != _INF:  # -inf or NaN: look again next round
                    self._recheck[key] = buf
                continue  # +inf: nothing due by time alone; ingest sends it back when samples move
            second = floor(at - 1.0 - abs(at) * _EARLY)  # a second early, whatever the rounding
            bucket = due.get(second)
            if bucket is not None:
                second = bucket.second  # one int object for every buffer filed there
            buf.due = second
            # still in that bucket (not due yet): a series that moves its samples round
            # after round does not pile up entries
            if second == before and second > now:
                continue
            if bucket is None:
                bucket = due[second] = _Bucket(second)
                heapq.heappush(heap, second)
            bucket.append(buf)
        silent.sort(key=lambda item: item[0])  # the order a walk over the buffers meets them
        for _, key, buf in silent:
            del buffers[key]
            self._forget_series(buf, now)

    def _forget_series(self, buf: SeriesBuffer, now: float) -> None:
        for group in buf.groups:
            if buf in group.members:
                group.members.remove(buf)
            if group.members or group.rule.is_absent:
                continue  # silence is exactly what an absent rule watches: keep its group
            if group.alert is not None:
                self._vanish(group, now)
            else:
                group.rule.groups.pop(group.key, None)
        buf.groups = ()
        buf.watch, buf.absent, buf.due = (), (), None
        buf.lo, buf.hi = _NEG_INF, _INF


def _reduce(rule: CompiledRule, buf: SeriesBuffer, now: float) -> float | None:
    window = rule.window
    if window <= 0:
        times = buf.times
        if len(times) > buf.start and times[-1] <= now:
            return buf.values[-1]
        lo, hi = buf.latest(now)
    else:
        lo, hi = buf.bounds(now - window, now)
        sliding = rule.sliding
        if sliding is not None:  # the timer round re-reads a live alert's window: mostly unmoved
            memo = buf.memo
            if memo is None:
                memo = buf.memo = {}
            state = memo.get(rule.memo_key)
            if state is None:
                state = memo[rule.memo_key] = sliding()
            state.now = now
            return state.update(buf.values, lo, hi, buf.epoch)
    return rule.reduce(buf.times, buf.values, lo, hi, window, rule.delta)


def _facts(group: SeriesGroup | None) -> Mapping[str, str]:
    """The facts of the group's most recently updated series (what its text may say)."""
    if group is None or not group.members:
        return {}
    newest = max(group.members, key=lambda buf: buf.last_seen)
    return newest.facts


def _interval(group: SeriesGroup) -> float | None:
    intervals = [iv for buf in group.members if (iv := buf.interval()) is not None]
    return max(intervals) if intervals else None


def _last_verdict(rec: AlertRecord) -> bool:
    """Whether the condition held at the alert's last evaluation (its phase says so)."""
    return rec.phase in _ACTIVE and rec.clear_since is None


def _first_after(times: Sequence[float], since: float) -> int:
    return bisect_right(times, since)
