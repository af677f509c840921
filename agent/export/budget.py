"""What Datadog will bill, counted before sending, and a budget that keeps it bounded.

Datadog bills custom metrics: each distinct metric name x tag set reported in an hour
(a distribution counts 5: count, sum, min, max and avg are kept for every tag set). Its own
cardinality controls act after ingestion, so a check that suddenly reports a tag per pod or
per model version is billed before anyone sees it. This module counts the distinct series
sent in the last (rolling) hour, per metric, and with ``custom_metrics_budget`` set keeps
the count under it:

1. A new series that would go over the budget first makes the exporter drop one of the
   ``cardinality_tags`` from the biggest contributor that carries one (the incoming series'
   own metric included; the tag with the most values there). Its series merge (gauges:
   the last value wins; counts add up, as the Datadog Agent aggregates them) and the
   merged series are admitted on the spot, so the room they free cannot be taken by the
   series that forced the drop.
2. When no droppable tag is left, new series are held back: not sent, counted as
   ``mlwarden.exporter.dropped{reason:over_budget}``. Series already admitted go on, with
   one exception that keeps an exploding metric from crowding out the others: a new series
   of a smaller metric takes the place of one series of the biggest contributor, whose
   displaced series is then held back like its other new ones.

A series that stops being sent (merged away by a tag drop, or displaced) was already sent
this hour, so Datadog bills it for that hour: it stays in the reported count (``retired``)
until an hour after it was last sent, but takes no room from the budget. So the series
being sent stay within the budget at every moment, and what Datadog bills for an hour
exceeds it only by the series a decision retired during that hour.

Each decision is logged once, kept in :attr:`CustomMetricsBudget.decisions` for /status
and exported as ``mlwarden.exporter.custom_metrics.limited`` (which the agent's rule pack
alerts on). A tag drop stands until the agent restarts or reloads; held-back series get in
once series unseen for an hour have left the count. Nothing is dropped silently.

Series are keyed by their normalised Datadog tags, exactly what is sent, in their metric's
own dict (no (metric, tags) key tuple a series: a caller that keeps the tags tuple shares it).
The hot path (:meth:`admit` of a known series) is two dict lookups and an attribute store;
callers that cache per series keep its :class:`Ticket` and only stamp it while it is ``live``.
Such a caller may hand in its own per-series object as the ticket (a :class:`Ticket`
subclass: no second object a series) and :meth:`release` it when it stops keeping it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from agent.catalog import Catalog
from agent.samples import Kind, Sample, Tags, make_tags

__all__ = ["Admission", "CustomMetricsBudget", "DISTRIBUTION_WEIGHT", "Ticket", "WINDOW",
           "catalog_weight"]

log = logging.getLogger(__name__)

WINDOW = 3600.0  # Datadog counts distinct series per hour
DISTRIBUTION_WEIGHT = 5
_SWEEP_EVERY = 60.0
Series = tuple[str, tuple[str, ...]]  # (metric, normalised "key:value" tags)


def catalog_weight(catalog: Catalog) -> Callable[[str], int]:
    """Custom metrics one series of a metric bills: 5 for a distribution, else 1."""
    def weight(metric: str) -> int:
        spec = catalog.get(metric)
        return DISTRIBUTION_WEIGHT if spec is not None and spec.kind is Kind.DISTRIBUTION else 1
    return weight


class Admission:
    """Verdicts of :meth:`CustomMetricsBudget.admit`."""

    SEND = 0
    HOLD = 1
    RESHAPE = 2  # a tag was just dropped from this metric: shape the sample again


class Ticket:
    """An admitted series: when it was last sent, and whether it may still be sent
    without asking the budget again (False once a decision retired it, it expired, or its
    caller's object was released for a plain ticket)."""

    __slots__ = ("seen", "live")

    def __init__(self, seen: float) -> None:
        self.seen = seen
        self.live = True


class _Plain(Ticket):
    """A ticket the budget made itself: a caller's own object takes its place (:meth:`admit`)."""

    __slots__ = ()


@dataclass
class _Metric:
    weight: int
    # every series of it being sent -> its ticket (insertion order: the newest last)
    series: dict[tuple[str, ...], Ticket] = field(default_factory=dict)
    # series a decision stopped (merged away by a tag drop, or displaced) -> last sent
    retired: dict[tuple[str, ...], float] = field(default_factory=dict)
    held: int = 0  # points held back since start
    held_series_at: float | None = None  # last time a series of it was held back

    def billed(self) -> int:
        return self.weight * (len(self.series) + len(self.retired))


class CustomMetricsBudget:
    """Counts distinct custom metrics per rolling hour and enforces an optional budget."""

    def __init__(self, budget: int | None = None, droppable: Sequence[str] = (),
                 weight: Callable[[str], int] = lambda metric: 1,
                 on_held: Callable[[int], None] = lambda n: None) -> None:
        self.budget = budget
        self.droppable = tuple(droppable)
        self._weight = weight
        self._on_held = on_held
        self._metrics: dict[str, _Metric] = {}  # its series being sent are in its entry
        self.total = 0  # weighted distinct series being sent (what the budget limits)
        self.retired = 0  # weighted series a decision stopped, still billed this hour
        self.dropped_tags: dict[str, tuple[str, ...]] = {}  # metric -> tag keys removed
        self.decisions: list[dict[str, Any]] = []
        self.version = 0  # bumped on each tag drop: shaped tags cached by callers go stale
        self._swept = 0.0
        self._searched = False  # True: the last search found no droppable tag

    # -- the hot path --------------------------------------------------------------------
    def admit(self, key: Series, now: float, ticket: Ticket | None = None) -> int:
        """Whether a point of ``key`` may be sent now (an :class:`Admission` value).

        ``ticket``: the caller's own object to become the series' ticket if it is admitted
        now, or if its ticket is a plain one (made here, or left by :meth:`release`)."""
        entry = self._metrics.get(key[0])
        if entry is not None:
            held = entry.series.get(key[1])
            if held is not None:
                if ticket is not None and held.__class__ is _Plain:  # the caller's takes over
                    entry.series[key[1]] = ticket
                    ticket.live = True
                    held.live = False  # (its holders ask again)
                    held = ticket
                held.seen = now
                return Admission.SEND
        return self._new(key, now, ticket)

    def ticket(self, key: Series) -> Ticket | None:
        """The ticket of an admitted series (to stamp ``seen`` without a lookup)."""
        entry = self._metrics.get(key[0])
        return entry.series.get(key[1]) if entry is not None else None

    def release(self, key: Series, ticket: Ticket) -> None:
        """The caller no longer keeps ``ticket``, its own object handed to :meth:`admit`: if
        it is still the series' ticket, a plain one takes its place (so it is not held for as
        long as the series is sent); whoever holds it sees it no longer ``live``."""
        entry = self._metrics.get(key[0])
        if entry is not None and entry.series.get(key[1]) is ticket:
            entry.series[key[1]] = _Plain(ticket.seen)  # (an existing key: order kept)
            ticket.live = False

    @staticmethod
    def _retire(entry: _Metric, tags: tuple[str, ...], ticket: Ticket) -> None:
        """A series taken out of ``entry.series`` stops: billed this hour, no longer sent."""
        ticket.live = False
        entry.retired[tags] = ticket.seen

    # -- new series ----------------------------------------------------------------------
    def _new(self, key: Series, now: float, ticket: Ticket | None = None) -> int:
        self.expire(now, due_only=True)
        metric, tags = key
        entry = self._metrics.get(metric)
        if entry is None:
            entry = self._metrics[metric] = _Metric(self._weight(metric))
        if self.budget is None or self.total + entry.weight <= self.budget:
            self._admit(key, entry, now, ticket)
            return Admission.SEND
        if (not self._searched or self._droppable_in(tags)) and self._drop_a_tag(now, key):
            return Admission.RESHAPE
        self._searched = True  # nothing droppable among admitted series until one with a tag
        if self._displace(metric, entry, now):
            self._admit(key, entry, now, ticket)
            return Admission.SEND
        entry.held += 1
        self._on_held(1)
        if entry.held_series_at is None:
            self._decide(now, metric, "hold_back", series=len(entry.series),
                         message=f"holding back new series of {metric}: {self.total} of "
                         f"{self.budget} custom metrics in use and no cardinality_tags left to "
                         "drop (its sent series go on; raise custom_metrics_budget or name "
                         "more cardinality_tags)")
        entry.held_series_at = now
        return Admission.HOLD

    def _admit(self, key: Series, entry: _Metric, now: float, ticket: Ticket | None) -> None:
        tags = key[1]
        if ticket is None:
            ticket = _Plain(now)
        else:
            ticket.seen = now
            ticket.live = True
        entry.series[tags] = ticket  # the caller's tags tuple, not a copy per series
        self.total += entry.weight
        if self._searched and self._droppable_in(tags):
            self._searched = False

    def _droppable_in(self, tags: tuple[str, ...]) -> bool:
        return bool(self.droppable) and any(t.partition(":")[0] in self.droppable for t in tags)

    def _drop_a_tag(self, now: float, incoming: Series) -> bool:
        """Drop one droppable tag from the biggest contributor that has one (counting the
        incoming series with its metric); False if none has."""
        if not self.droppable:
            return False

        def size(metric: str) -> int:
            entry = self._metrics[metric]
            return entry.weight * (len(entry.series) + (metric == incoming[0]))

        order = {t: i for i, t in enumerate(self.droppable)}
        for metric in sorted(self._metrics, key=lambda m: -size(m)):
            series = list(self._metrics[metric].series)
            if metric == incoming[0]:
                series.append(incoming[1])
            values: dict[str, set[str]] = {}
            for tags in series:
                for tag in tags:
                    name, _, value = tag.partition(":")
                    if name in order:
                        values.setdefault(name, set()).add(value)
            if not values:
                continue
            name = max(values, key=lambda n: (len(values[n]), -order[n]))
            entry = self._metrics[metric]
            before = len(entry.series)
            after = self._collapse(metric, entry, name, now)
            self.dropped_tags[metric] = (*self.dropped_tags.get(metric, ()), name)
            self.version += 1
            self._decide(now, metric, "drop_tag", tag=name, series_before=before,
                         series_after=after,
                         message=f"custom metrics over budget ({self.budget}): dropping tag "
                         f"`{name}` from {metric}, the biggest contributor with a "
                         f"cardinality_tag ({before} series sent -> {after})")
            return True
        return False

    def _displace(self, metric: str, entry: _Metric, now: float) -> bool:
        """Make room for a series of ``metric`` by retiring the newest series of the biggest
        contributor, if that one stays at least as big; False when ``metric`` is the biggest."""
        biggest = max(self._metrics, key=lambda m: self._metrics[m].weight * len(self._metrics[m].series))
        top = self._metrics[biggest]
        if biggest == metric:
            return False
        assert self.budget is not None
        need = -(-(self.total + entry.weight - self.budget) // top.weight)  # series to retire
        if need > len(top.series) or \
                top.weight * (len(top.series) - need) < entry.weight * (len(entry.series) + 1):
            return False  # it would become the smaller one: no ping-pong
        for _ in range(need):
            self._retire(top, *top.series.popitem())
        self.total -= top.weight * need
        self.retired += top.weight * need
        if top.held_series_at is None:
            self._decide(now, biggest, "hold_back", series=len(top.series),
                         message=f"custom metrics over budget ({self.budget}): {biggest}, the "
                         "biggest contributor, gives up series to the others and its new "
                         "series are held back (no cardinality_tags left to drop)")
        top.held_series_at = now
        return True

    def _collapse(self, metric: str, entry: _Metric, name: str, now: float) -> int:
        """Retire the series of ``metric`` that carry tag ``name`` and admit what they merge
        into; returns the metric's series count after."""
        prefix = name + ":"

        def has(tags: tuple[str, ...]) -> bool:
            return any(t == name or t.startswith(prefix) for t in tags)

        hit = [tags for tags in entry.series if has(tags)]
        merged = {tuple(t for t in tags if not (t == name or t.startswith(prefix))) for tags in hit}
        for tags in hit:
            self._retire(entry, tags, entry.series.pop(tags))
        self.total -= entry.weight * len(hit)
        self.retired += entry.weight * len(hit)
        # the merged series keep their room: otherwise the series that forced the drop
        # would take it and hold back the metric that just gave it up
        for tags in merged - set(entry.series):
            entry.series[tags] = _Plain(now)
            self.total += entry.weight
        return len(entry.series)

    def _decide(self, now: float, metric: str, action: str, message: str, **detail: Any) -> None:
        log.warning("datadog: %s", message)
        self.decisions.append({"at": now, "metric": metric, "action": action, **detail})

    def expire(self, now: float, due_only: bool = False) -> None:
        """Forget series unseen for an hour (they no longer count); with ``due_only``, only
        if the last sweep is a minute old (a sweep reads every series' ticket: ~5 ms at
        70,000 series, on the loop)."""
        if due_only and now - self._swept < _SWEEP_EVERY:
            return
        self._swept = now
        cutoff = now - WINDOW
        metrics = self._metrics
        for entry in metrics.values():
            series = entry.series
            quiet = [t for t, ticket in series.items() if ticket.seen < cutoff]
            for tags in quiet:
                series.pop(tags).live = False
            self.total -= entry.weight * len(quiet)
        for metric, entry in list(metrics.items()):
            gone = [t for t, seen in entry.retired.items() if seen < cutoff] if entry.retired else ()
            for tags in gone:
                del entry.retired[tags]
            self.retired -= entry.weight * len(gone)
            if not entry.series and not entry.retired and not entry.held \
                    and metric not in self.dropped_tags:
                del self._metrics[metric]

    # -- reporting -----------------------------------------------------------------------
    @property
    def billed(self) -> int:
        """Distinct custom metrics sent in the last hour: what Datadog bills for it."""
        return self.total + self.retired

    def count(self, metric: str) -> int:
        entry = self._metrics.get(metric)
        return entry.billed() if entry else 0

    def top(self, n: int = 10) -> list[tuple[str, int]]:
        counts = [(m, e.billed()) for m, e in self._metrics.items() if e.series or e.retired]
        return sorted(counts, key=lambda mc: (-mc[1], mc[0]))[:n]

    def limited(self, now: float) -> dict[str, int]:
        """Metrics under each decision now: tags dropped, or series held back this hour."""
        held = sum(1 for e in self._metrics.values()
                   if e.held_series_at is not None and now - e.held_series_at < WINDOW)
        return {"drop_tags": len(self.dropped_tags), "hold_back": held}

    def samples(self, base: Tags, now: float, top: int = 10) -> list[Sample]:
        """The count, the budget, the top contributors and the decisions in force, as
        catalog metrics (exported with the exporters' health)."""
        self.expire(now, due_only=True)
        out = [Sample("mlwarden.exporter.custom_metrics", float(self.billed), base, now)]
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
        self.expire(now, due_only=True)
        return {
            "window_seconds": WINDOW,
            "count": self.billed,  # sent in the last hour, retired series included
            "active": self.total,  # being sent now: what the budget limits
            "retired_by_decisions": self.retired,
            "budget": self.budget,
            "cardinality_tags": list(self.droppable),
            "top": [{"metric": m, "count": c} for m, c in self.top(top)],
            "tags_dropped": {m: list(t) for m, t in sorted(self.dropped_tags.items())},
            "held_back_points": {m: e.held for m, e in sorted(self._metrics.items()) if e.held},
            "limited": self.limited(now),
            "decisions": list(self.decisions),
        }
