"""Rules applied to series: ingest samples, evaluate the affected groups, report changes.

This module is pure bookkeeping: it does no I/O and never reads a clock (``now`` is
always passed in), so the daemon, ``mlwarden rules test`` and the tests drive the same
code. The component in :mod:`agent.rules.engine` adds the clock, persistence, the timer
and the sinks.

The hot path is built for many series: a sample costs a dict lookup for its metric's
rules, an array append, and per rule a cached selector verdict; a group whose condition
does not hold and that has no alert yet costs one reduce and one comparison, and creates
nothing. Alerts exist only while they are pending, firing, flapping or recently resolved.
"""

from __future__ import annotations

import logging
import math
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from agent.alerting.model import Alert, AlertState, fingerprint
from agent.catalog import Catalog, load_catalog
from agent.rules.aggregations import AGGREGATORS, combine
from agent.rules.config import RuleConfig, RulesEngineConfig
from agent.rules.lifecycle import AlertRecord, Timing, step, vanish
from agent.rules.matchers import Selector
from agent.rules.templates import render_annotations
from agent.rules.window import SeriesBuffer
from agent.samples import Kind, Sample, SeriesKey, Tags

__all__ = ["Change", "CompiledRule", "RuleEvaluator"]

log = logging.getLogger(__name__)

_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
    "==": operator.eq, "!=": operator.ne,
}
_ACTIVE = (AlertState.PENDING, AlertState.FIRING)
_KEEP_MIN = 9  # samples always kept per series, so a series' own interval can be measured


@dataclass(frozen=True, slots=True)
class Change:
    """One public state change of one alert."""

    record: AlertRecord
    rule: CompiledRule | None  # None: the rule was removed and its alert closed on restore
    previous: AlertState
    state: AlertState
    at: float

    def alert(self) -> Alert:
        """The shared value type handed to sinks (a snapshot; the record moves on)."""
        rec = self.record
        cfg = self.rule.cfg if self.rule is not None else None
        threshold = None if cfg is None else (cfg.absent if cfg.is_absent else cfg.threshold)
        return Alert(
            rule=rec.rule, labels=dict(rec.labels), state=self.state, severity=rec.severity,
            annotations=dict(rec.annotations), value=rec.value, threshold=threshold,
            active_since=rec.active_since, fired_at=rec.fired_at, resolved_at=rec.resolved_at,
            last_eval=rec.last_eval, flap_count=rec.flap_count,
        )


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
        self.window = float(cfg.window)
        self.from_store = self.window > settings.memory_window
        self.is_absent = cfg.is_absent
        self.compare = _COMPARE[cfg.op] if cfg.op else operator.ge
        self.threshold = cfg.threshold if cfg.threshold is not None else 0.0
        self.recover = cfg.recover
        self.timing = Timing(cfg.for_, cfg.keep_firing_for, settings.flap_threshold,
                             settings.flap_window, settings.flap_settle)
        self.extra = {**cfg.labels, "severity": cfg.severity}
        self.cache: dict[Tags, Tags | None] = {}
        self.groups: dict[Tags, list[Tags]] = {}
        self.alerts: dict[Tags, AlertRecord] = {}
        self.last_seen: dict[Tags, float] = {}
        self.synthetic: set[Tags] = set()
        self.intervals: dict[Tags, float] = {}  # absent_intervals: each group's own interval

    def group_of(self, tags: Tags) -> Tags | None:
        """The group a series belongs to, or None when the selector rejects it (cached)."""
        try:
            return self.cache[tags]
        except KeyError:
            pass
        group: Tags | None = None
        if self.selector.matches(tags):
            if self.cfg.group_by is None:
                group = tags
            else:
                values = dict(tags)
                group = tuple(sorted((k, values[k]) for k in self.cfg.group_by if k in values))
        self.cache[tags] = group
        return group

    def labels(self, group: Tags) -> dict[str, str]:
        labels = dict(group)
        labels.update(self.extra)
        return labels

    def new_record(self, group: Tags) -> AlertRecord:
        labels = self.labels(group)
        return AlertRecord(fingerprint(self.name, labels), self.name, labels, self.cfg.severity,
                           group=group)


class RuleEvaluator:
    """Every rule's groups, buffers and alerts; see the module docstring."""

    def __init__(self, rules: Sequence[RuleConfig], settings: RulesEngineConfig | None = None,
                 *, started: float, catalog: Catalog | None = None) -> None:
        self.settings = settings or RulesEngineConfig()
        catalog = catalog or load_catalog()
        self.started = started
        self.rules = [CompiledRule(cfg, i, catalog, self.settings) for i, cfg in enumerate(rules)]
        self.by_metric: dict[str, list[CompiledRule]] = {}
        self.horizon: dict[str, float] = {}
        for rule in self.rules:
            if rule.from_store:
                continue
            self.by_metric.setdefault(rule.metric, []).append(rule)
            self.horizon[rule.metric] = max(self.horizon.get(rule.metric, 0.0), rule.window)
        self.buffers: dict[SeriesKey, SeriesBuffer] = {}
        self._changes: list[Change] = []
        self._dirty: dict[str, AlertRecord] = {}
        self.truncated: set[SeriesKey] = set()

    # -- input ------------------------------------------------------------------------
    def ingest(self, samples: Iterable[Sample]) -> dict[tuple[CompiledRule, Tags], None]:
        """Remember the samples rules read; returns the (rule, group) pairs they affect, in
        the order of the samples (so replays print transitions in a stable order)."""
        affected: dict[tuple[CompiledRule, Tags], None] = {}
        by_metric = self.by_metric
        buffers = self.buffers
        max_points = self.settings.max_points
        for sample in samples:
            rules = by_metric.get(sample.metric)
            if rules is None:
                continue
            value = sample.value
            if value != value:  # NaN is a missing sample, never a value to compare
                continue
            tags = sample.tags
            key = (sample.metric, tags)
            buf = buffers.get(key)
            if buf is None:
                buf = buffers[key] = SeriesBuffer(max_points)
            ts = sample.timestamp
            buf.append(ts, value)
            for rule in rules:
                group = rule.group_of(tags)
                if group is None:
                    continue
                members = rule.groups.get(group)
                if members is None:
                    rule.groups[group] = [tags]
                elif tags not in members:
                    members.append(tags)
                if rule.is_absent:
                    if ts > rule.last_seen.get(group, -math.inf):
                        rule.last_seen[group] = ts
                    if rule.synthetic:
                        self._drop_synthetic(rule, group, ts)
                affected[(rule, group)] = None
        return affected

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
    def evaluate(self, affected: Iterable[tuple[CompiledRule, Tags]], now: float) -> None:
        """Evaluate each affected group at ``now``; changes accumulate for :meth:`drain`."""
        for rule, group in affected:
            if rule.is_absent:
                self._eval_absent(rule, group, now)
            else:
                self._eval_threshold(rule, group, now)

    def tick(self, now: float) -> None:
        """The timer's work: absent rules, expiry of windows and of silent series, and the
        alerts whose ``for``/``keep_firing_for``/flap timers run without new samples."""
        self._expire(now)
        for rule in self.rules:
            if rule.from_store:
                continue
            if rule.is_absent:
                if not rule.groups and rule.cfg.absent is not None and not rule.last_seen:
                    group = tuple(sorted(rule.selector.equalities().items()))
                    rule.last_seen[group] = self.started
                    rule.synthetic.add(group)
                for group in list(rule.last_seen):
                    self._eval_absent(rule, group, now)
            else:
                for group, rec in list(rule.alerts.items()):
                    if group in rule.groups:
                        self._eval_threshold(rule, group, now)
                    elif now - self.started >= self.settings.stale_after:
                        self._vanish(rule, group, rec, now)  # restored, and its series never came back
                    elif not self._forgettable(rec, now):
                        # restored and no sample since: the data has not changed, so neither has
                        # the verdict; only the timers (for, keep_firing_for, flap) move on
                        self._step(rule, rec, _last_verdict(rec), rec.value, now)
            self._forget_settled(rule, now)

    def store_rules(self) -> list[CompiledRule]:
        """Rules whose window is longer than memory holds: the engine reads the store for them."""
        return [r for r in self.rules if r.from_store]

    def evaluate_from_store(self, rule: CompiledRule,
                            data: Mapping[Tags, Sequence[tuple[float, float]]], now: float) -> None:
        """Evaluate a long-window rule over series read from the store."""
        groups: dict[Tags, list[float]] = {}
        for tags, points in data.items():
            group = rule.group_of(tags)
            if group is None or not points:
                continue
            times = [t for t, v in points if v == v]
            values = [v for t, v in points if v == v]
            lo = _first_after(times, now - rule.window)
            value = rule.reduce(times, values, lo, len(times), rule.window, rule.delta)
            if value is not None and value == value:
                groups.setdefault(group, []).append(value)
        for group, rec in list(rule.alerts.items()):
            if group not in groups and now - self.started >= self.settings.stale_after:
                self._vanish(rule, group, rec, now)
        for group, values in groups.items():
            value = combine(rule.cfg.aggregate, values, rule.cfg.op, rule.threshold)
            self._judge(rule, group, value, now)
        self._forget_settled(rule, now)

    def drain(self) -> tuple[list[Change], list[AlertRecord]]:
        """The changes since the last drain, and the records whose durable state moved."""
        changes, dirty = self._changes, list(self._dirty.values())
        self._changes, self._dirty = [], {}
        return changes, dirty

    # -- state --------------------------------------------------------------------------
    def restore(self, records: Iterable[AlertRecord], now: float) -> int:
        """Adopt persisted alerts (record and its group) so a restart resumes them."""
        by_name: dict[str, list[CompiledRule]] = {}
        for rule in self.rules:
            by_name.setdefault(rule.name, []).append(rule)
        adopted = 0
        for rec in records:
            group = rec.group
            if self._forgettable(rec, now):
                continue
            rule = next((r for r in by_name.get(rec.rule, ())
                         if r.new_record(group).fingerprint == rec.fingerprint), None)
            if rule is None:  # the rule is gone or changed its labels: close the alert
                if rec.state in (AlertState.FIRING, AlertState.PENDING, AlertState.FLAPPING):
                    self._record_vanish(None, rec, now)
                continue
            rule.alerts[group] = rec
            if rule.is_absent and rec.value is not None and rec.last_eval is not None:
                rule.last_seen[group] = rec.last_eval - rec.value
            adopted += 1
        return adopted

    def alerts(self) -> list[AlertRecord]:
        return [rec for rule in self.rules for rec in rule.alerts.values()]

    def series_count(self) -> int:
        return len(self.buffers)

    # -- internals ------------------------------------------------------------------------
    def _eval_threshold(self, rule: CompiledRule, group: Tags, now: float) -> None:
        members = rule.groups.get(group)
        if not members:
            return
        buffers = self.buffers
        metric = rule.metric
        if len(members) == 1:
            value = self._reduce(rule, buffers.get((metric, members[0])), now)
        else:
            values = [v for tags in members
                      if (v := self._reduce(rule, buffers.get((metric, tags)), now)) is not None]
            value = combine(rule.cfg.aggregate, values, rule.cfg.op, rule.threshold) if values else None
        if value is None or value != value:
            return  # no data in the window: nothing to judge, the alert stays as it is
        self._judge(rule, group, value, now)

    def _reduce(self, rule: CompiledRule, buf: SeriesBuffer | None, now: float) -> float | None:
        if buf is None or not len(buf):
            return None
        window = rule.window
        if window <= 0:
            lo, hi = buf.latest(now)
        else:
            lo, hi = buf.bounds(now - window, now)
        return rule.reduce(buf.times, buf.values, lo, hi, window, rule.delta)

    def _judge(self, rule: CompiledRule, group: Tags, value: float, now: float) -> None:
        rec = rule.alerts.get(group)
        if rec is not None and self._forgettable(rec, now):
            del rule.alerts[group]
            rec = None
        if rec is None:
            if not rule.compare(value, rule.threshold):
                return
            rec = rule.alerts[group] = rule.new_record(group)
            holds = True
        else:
            level = rule.threshold
            if rule.recover is not None and rec.phase in _ACTIVE:
                level = rule.recover
            holds = rule.compare(value, level)
        self._step(rule, rec, holds, value, now)

    def _eval_absent(self, rule: CompiledRule, group: Tags, now: float) -> None:
        seen = rule.last_seen.get(group)
        if seen is None:
            return
        limit = rule.cfg.absent or 0.0
        if rule.cfg.absent_intervals:
            interval = self._interval(rule, group)
            if interval is not None:
                rule.intervals[group] = interval
            else:
                interval = rule.intervals.get(group)
            if interval is not None:
                limit = max(limit, rule.cfg.absent_intervals * interval)
            elif not rule.cfg.absent:
                return  # its interval is not known yet: nothing to judge
        silent = max(now - seen, 0.0)
        holds = silent >= limit
        rec = rule.alerts.get(group)
        if rec is not None and self._forgettable(rec, now):
            del rule.alerts[group]
            rec = None
        if rec is None:
            if not holds:
                return
            rec = rule.alerts[group] = rule.new_record(group)
        self._step(rule, rec, holds, silent, now)

    def _interval(self, rule: CompiledRule, group: Tags) -> float | None:
        intervals = [iv for tags in rule.groups.get(group, ())
                     if (buf := self.buffers.get((rule.metric, tags))) is not None
                     and (iv := buf.interval()) is not None]
        return max(intervals) if intervals else None

    def _step(self, rule: CompiledRule, rec: AlertRecord, holds: bool, value: float | None,
              now: float) -> None:
        before = rec.timers()
        change = step(rec, holds, value, now, rule.timing)
        self._after(rule, rec, before, change, now)

    def _vanish(self, rule: CompiledRule, group: Tags, rec: AlertRecord, now: float) -> None:
        self._record_vanish(rule, rec, now)
        rule.alerts.pop(group, None)
        rule.last_seen.pop(group, None)
        rule.intervals.pop(group, None)

    def _record_vanish(self, rule: CompiledRule | None, rec: AlertRecord, now: float) -> None:
        before = rec.timers()
        timing = rule.timing if rule is not None else Timing()
        change = vanish(rec, now, timing)
        self._after(rule, rec, before, change, now)

    def _after(self, rule: CompiledRule | None, rec: AlertRecord, before: tuple,
               change: tuple[AlertState, AlertState] | None, now: float) -> None:
        if change is not None:
            if rule is not None:
                rec.annotations = render_annotations(rule.cfg, rec.labels, rec.value)
            self._changes.append(Change(rec, rule, change[0], change[1], now))
        if change is not None or rec.timers() != before:
            self._dirty[rec.fingerprint] = rec

    def _drop_synthetic(self, rule: CompiledRule, group: Tags, now: float) -> None:
        """A real series arrived: the selector-wide "nothing at all" alert gives way to it."""
        for synthetic in list(rule.synthetic):
            rule.synthetic.discard(synthetic)
            if synthetic == group:
                continue
            rec = rule.alerts.get(synthetic)
            if rec is not None:
                self._vanish(rule, synthetic, rec, now)
            rule.last_seen.pop(synthetic, None)

    def _forgettable(self, rec: AlertRecord, now: float) -> bool:
        """Over, and its flap history aged out: the same as no alert at all.

        Applied when an alert is next touched, at restore and by the timer's cleanup alike,
        so when memory is freed never changes what happens next.
        """
        return rec.state in (AlertState.INACTIVE, AlertState.RESOLVED) and (
            not rec.flips or now - rec.flips[-1] > self.settings.flap_window
        )

    def _forget_settled(self, rule: CompiledRule, now: float) -> None:
        for group, rec in list(rule.alerts.items()):
            if self._forgettable(rec, now):
                del rule.alerts[group]

    def _expire(self, now: float) -> None:
        stale_after = self.settings.stale_after
        for key, buf in list(self.buffers.items()):
            metric, tags = key
            horizon = self.horizon.get(metric, 0.0)
            if buf.last_seen < now - horizon - stale_after:
                del self.buffers[key]
                self._forget_series(metric, tags, now)
                continue
            buf.expire(now - horizon, _KEEP_MIN)
            if buf.dropped and key not in self.truncated:
                self.truncated.add(key)
                log.warning("series %s%s outgrew max_points (%d): its windows hold fewer samples "
                            "than they span", metric, dict(tags), self.settings.max_points)

    def _forget_series(self, metric: str, tags: Tags, now: float) -> None:
        for rule in self.by_metric.get(metric, ()):
            group = rule.cache.pop(tags, None)
            if group is None:
                continue
            members = rule.groups.get(group)
            if members and tags in members:
                members.remove(tags)
            if members:
                continue
            rule.groups.pop(group, None)
            if rule.is_absent:
                continue  # silence is exactly what an absent rule watches: keep its group
            rec = rule.alerts.get(group)
            if rec is not None:
                self._vanish(rule, group, rec, now)


def _last_verdict(rec: AlertRecord) -> bool:
    """Whether the condition held at the alert's last evaluation (its phase says so)."""
    return rec.phase in _ACTIVE and rec.clear_since is None


def _first_after(times: Sequence[float], since: float) -> int:
    from bisect import bisect_right

    return bisect_right(times, since)
