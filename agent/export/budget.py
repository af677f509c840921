"""What Datadog will bill, counted before sending, and a budget that keeps it bounded.

Datadog bills custom metrics: each distinct metric name x tag set reported in an hour
(a distribution counts 5: count, sum, min, max and avg are kept for every tag set). Its own
cardinality controls act after ingestion, so a check that suddenly reports a tag per pod or
per model version is billed before anyone sees it. This module counts the distinct series
sent in the last (rolling) hour, per metric, and with ``custom_metrics_budget`` set keeps
the count under it:

1. A new series that would go over the budget first makes the exporter drop one of the
   ``cardinality_tags`` from the biggest contributor that carries one (the tag with the
   most values there). Its series merge (gauges: the last value wins; counts add up, as
   the Datadog Agent aggregates them), which frees room at once.
2. When no droppable tag is left, new series are held back: not sent, counted as
   ``mlwarden.exporter.dropped{reason:over_budget}``. Series already admitted go on.

Each decision is logged once, kept in :attr:`CustomMetricsBudget.decisions` for /status
and exported as ``mlwarden.exporter.custom_metrics.limited`` (which the agent's rule pack
alerts on). A tag drop stands until the agent restarts or reloads; held-back series get in
once series unseen for an hour have left the count. Nothing is dropped silently.

Series are keyed by their normalised Datadog tags, exactly what is sent. The hot path
(:meth:`admit` of a known series) is two dict operations.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from agent.samples import Kind, Sample, Tags, make_tags

__all__ = ["Admission", "CustomMetricsBudget", "DISTRIBUTION_WEIGHT", "WINDOW"]

log = logging.getLogger(__name__)

WINDOW = 3600.0  # Datadog counts distinct series per hour
DISTRIBUTION_WEIGHT = 5
_SWEEP_EVERY = 60.0
Series = tuple[str, tuple[str, ...]]  # (metric, normalised "key:value" tags)


class Admission:
    """Verdicts of :meth:`CustomMetricsBudget.admit`."""

    SEND = 0
    HOLD = 1
    RESHAPE = 2  # a tag was just dropped from this metric: shape the sample again


@dataclass
class _Metric:
    weight: int
    series: dict[tuple[str, ...], float] = field(default_factory=dict)  # tags -> last seen
    held: int = 0  # points held back since start
    held_series_at: float | None = None  # last time a series of it was held back


class CustomMetricsBudget:
    """Counts distinct custom metrics per rolling hour and enforces an optional budget."""

    def __init__(self, budget: int | None = None, droppable: Sequence[str] = (),
                 weight: Callable[[str], int] = lambda metric: 1,
                 on_held: Callable[[int], None] = lambda n: None) -> None:
        self.budget = budget
        self.droppable = tuple(droppable)
        self._weight = weight
        self._on_held = on_held
        self._metrics: dict[str, _Metric] = {}
        self._last: dict[Series, float] = {}  # every counted series -> last seen
        self.total = 0  # weighted distinct series in the window
        self.dropped_tags: dict[str, tuple[str, ...]] = {}  # metric -> tag keys removed
        self.decisions: list[dict[str, Any]] = []
        self.version = 0  # bumped on each tag drop: shaped tags cached by callers go stale
        self._swept = 0.0

    # -- the hot path --------------------------------------------------------------------
    def admit(self, key: Series, now: float) -> int:
        """Whether a point of ``key`` may be sent now (an :class:`Admission` value)."""
        last = self._last
        if key in last:
            last[key] = now
            return Admission.SEND
        return self._new(key, now)

    # -- new series ----------------------------------------------------------------------
    def _new(self, key: Series, now: float) -> int:
        if now - self._swept >= _SWEEP_EVERY:
            self.expire(now)
        metric, tags = key
        entry = self._metrics.get(metric)
        if entry is None:
            entry = self._metrics[metric] = _Metric(self._weight(metric))
        if self.budget is None or self.total + entry.weight <= self.budget:
            entry.series[tags] = now
            self._last[key] = now
            self.total += entry.weight
            return Admission.SEND
        if self._drop_a_tag(now):
            return Admission.RESHAPE
        entry.held += 1
        self._on_held(1)
        if entry.held_series_at is None:
            self._decide(now, metric, "hold_back", series=len(entry.series),
                         message=f"holding back new series of {metric}: {self.total} of "
                         f"{self.budget} custom metrics used and no cardinality_tags left to "
                         "drop (existing series go on; raise custom_metrics_budget or name "
                         "more cardinality_tags)")
        entry.held_series_at = now
        return Admission.HOLD

    def _drop_a_tag(self, now: float) -> bool:
        """Drop one droppable tag from the biggest contributor that has one; False if none."""
        if not self.droppable:
            return False
        ranked = sorted(self._metrics.items(), key=lambda kv: -kv[1].weight * len(kv[1].series))
        for metric, entry in ranked:
            values: dict[str, set[str]] = {}
            for tags in entry.series:
                for tag in tags:
                    name, _, value = tag.partition(":")
                    if name in self.droppable:
                        values.setdefault(name, set()).add(value)
            if not values:
                continue
            order = {t: i for i, t in enumerate(self.droppable)}
            name = max(values, key=lambda n: (len(values[n]), -order[n]))
            before = len(entry.series)
            self._collapse(metric, entry, name)
            self.dropped_tags[metric] = (*self.dropped_tags.get(metric, ()), name)
            self.version += 1
            self._decide(now, metric, "drop_tag", tag=name, series_before=before,
                         series_after=len(entry.series),
                         message=f"custom metrics over budget ({self.budget}): dropping tag "
                         f"`{name}` from {metric}, its biggest contributor with a "
                         f"cardinality_tag ({before} series -> {len(entry.series)})")
            return True
        return False

    def _collapse(self, metric: str, entry: _Metric, name: str) -> None:
        prefix, bare = name + ":", name
        merged: dict[tuple[str, ...], float] = {}
        for tags, seen in entry.series.items():
            del self._last[(metric, tags)]
            kept = tuple(t for t in tags if not (t == bare or t.startswith(prefix)))
            merged[kept] = max(seen, merged.get(kept, seen))
        self.total -= entry.weight * (len(entry.series) - len(merged))
        entry.series = merged
        for tags, seen in merged.items():
            self._last[(metric, tags)] = seen

    def _decide(self, now: float, metric: str, action: str, message: str, **detail: Any) -> None:
        log.warning("datadog: %s", message)
        self.decisions.append({"at": now, "metric": metric, "action": action, **detail})

    def expire(self, now: float) -> None:
        """Forget series unseen for an hour (they no longer count)."""
        self._swept = now
        cutoff = now - WINDOW
        for metric, entry in list(self._metrics.items()):
            old = [t for t, seen in entry.series.items() if seen < cutoff]
            for tags in old:
                del entry.series[tags]
                del self._last[(metric, tags)]
            self.total -= entry.weight * len(old)
            if not entry.series and not entry.held and metric not in self.dropped_tags:
                del self._metrics[metric]

    # -- reporting -----------------------------------------------------------------------
    def count(self, metric: str) -> int:
        entry = self._metrics.get(metric)
        return entry.weight * len(entry.series) if entry else 0

    def top(self, n: int = 10) -> list[tuple[str, int]]:
        counts = [(m, e.weight * len(e.series)) for m, e in self._metrics.items() if e.series]
        return sorted(counts, key=lambda mc: (-mc[1], mc[0]))[:n]

    def limited(self, now: float) -> dict[str, int]:
        """Metrics under each decision now: tags dropped, or series held back this hour."""
        held = sum(1 for e in self._metrics.values()
                   if e.held_series_at is not None and now - e.held_series_at < WINDOW)
        return {"drop_tags": len(self.dropped_tags), "hold_back": held}

    def samples(self, base: Tags, now: float, top: int = 10) -> list[Sample]:
        """The count, the budget, the top contributors and the decisions in force, as
        catalog metrics (exported with the exporters' health)."""
        self.expire(now)
        out = [Sample("mlwarden.exporter.custom_metrics", float(self.total), base, now)]
        if self.budget is not None:
            out.append(Sample("mlwarden.exporter.custom_metrics.budget", float(self.budget), base, now))
        for metric, count in self.top(top):
            out.append(Sample("mlwarden.exporter.custom_metrics.by_metric", float(count),
                              make_tags(base, {"metric": metric}), now, Kind.GAUGE))
        for decision, metrics in self.limited(now).items():
            out.append(Sample("mlwarden.exporter.custom_metrics.limited", float(metrics),
                              make_tags(base, {"decision": decision}), now))
        return out

    def status(self, now: float, top: int = 10) -> dict[str, Any]:
        self.expire(now)
        return {
            "window_seconds": WINDOW,
            "count": self.total,
            "budget": self.budget,
            "cardinality_tags": list(self.droppable),
            "top": [{"metric": m, "count": c} for m, c in self.top(top)],
            "tags_dropped": {m: list(t) for m, t in sorted(self.dropped_tags.items())},
            "held_back_points": {m: e.held for m, e in sorted(self._metrics.items()) if e.held},
            "limited": self.limited(now),
            "decisions": list(self.decisions),
        }
