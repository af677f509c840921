"""From a sample to the series Datadog gets, shared by the DogStatsD and API exporters.

One place decides what a series is in Datadog, so both modes send the same thing:

1. the metric's per-event facts are removed (:meth:`Catalog.series_tags`): a failed run's
   id and log link go into an event, never into a billed series;
2. unified service tags merge in with one precedence (:mod:`agent.export.unified`);
3. tags are normalised as Datadog does, each key once (:mod:`agent.export.tags`);
4. tags the custom-metrics budget decided to drop are removed (:mod:`agent.export.budget`).

The result is cached per (metric, tags): tag sets repeat every poll. The cache is bounded
(a fact-bearing sample is a new key each time) and is emptied when the budget drops a tag.
A caller that keeps what it needs of each series itself (the DogStatsD exporter's line
cache) turns it off and asks :meth:`Shaper.names`, which makes no key tuple: ~200 bytes a
series, 2 KiB an endpoint check, held twice otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.catalog import Catalog
from agent.export.budget import CustomMetricsBudget, Series
from agent.export.tags import dd_tag
from agent.export.unified import UnifiedTags
from agent.samples import Tags

__all__ = ["Shaped", "Shaper"]

_MAX_CACHE = 100_000


@dataclass(frozen=True, slots=True)
class Shaped:
    key: Series  # (metric, normalised tags): what the budget counts
    tags: tuple[str, ...]  # the tag strings sent: the key's own tuple (one copy a series)


class Shaper:
    """Shapes series and service-check tags for Datadog; see the module docstring."""

    def __init__(self, catalog: Catalog, unified: UnifiedTags, budget: CustomMetricsBudget, *,
                 cache: bool = True) -> None:
        self.catalog = catalog
        self.unified = unified
        self.budget = budget
        self._cache: dict[tuple[str, Tags], Shaped] = {}
        self._caching = cache
        self._plain: dict[Tags, list[str]] = {}
        self._version = budget.version

    @property
    def stale(self) -> bool:
        """True once the budget dropped a tag since the cache was filled (then call clear)."""
        return self._version != self.budget.version

    def clear(self) -> None:
        self._cache.clear()
        self._version = self.budget.version

    def shape(self, metric: str, tags: Tags) -> Shaped:
        key = (metric, tags)
        shaped = self._cache.get(key)
        if shaped is None:
            names = self.names(metric, tags)
            shaped = Shaped((metric, names), names)
            if self._caching:
                if len(self._cache) >= _MAX_CACHE:
                    self._cache.clear()
                self._cache[key] = shaped
        return shaped

    def names(self, metric: str, tags: Tags) -> tuple[str, ...]:
        """The tag strings a series of ``metric`` is sent with, uncached: for a caller that
        keeps them per series itself and wants no (metric, tags) key tuple made for it (the
        DogStatsD exporter shares one tuple among a check's series with equal tags)."""
        names = tuple(normalised(self.unified.apply(self.catalog.series_tags(metric, tags))))
        dropped = self.budget.dropped_tags.get(metric)
        if dropped:
            names = tuple([t for t in names if t.partition(":")[0] not in dropped])
        return names

    def plain(self, tags: Tags, cache: bool = True) -> list[str]:
        """Tags of a service check or an event: unified and normalised (no budget: they are
        not billed as custom metrics). ``cache`` False: for a caller that keeps what it
        makes of them (the DogStatsD exporter's service check lines)."""
        out = self._plain.get(tags)
        if out is None:
            out = normalised(self.unified.apply(tags))
            if not cache:
                return out
            if len(self._plain) >= _MAX_CACHE:
                self._plain.clear()
            self._plain[tags] = out
        return out


# (key, value) -> its tag string: a check's series share their tags' strings (one copy per
# tag, not one per series: ~0.5 KiB an endpoint check; agent_scale.py, "RSS per check")
_TAG_STRINGS: dict[tuple[str, str], str] = {}


def normalised(tags: Tags) -> list[str]:
    """Datadog tag strings, each key once (two raw keys can normalise to one: the first
    in sorted order wins)."""
    out, seen = [], set()
    strings = _TAG_STRINGS
    for pair in tags:
        tag = strings.get(pair)
        if tag is None:
            tag = dd_tag(*pair)
            if len(strings) >= _MAX_CACHE:
                strings.clear()
            strings[pair] = tag
        name = tag.partition(":")[0]
        if name not in seen:
            seen.add(name)
            out.append(tag)
    return out
