"""A rule's ``where:``: a conjunction of tag matchers (:mod:`agent.tagmatch`) over a series.
"""

from __future__ import annotations

from collections.abc import Mapping

from agent.samples import Tags
from agent.tagmatch import parse_tag_matcher

__all__ = ["Selector"]


class Selector:
    """A conjunction of matchers over a series' tags.

    Matching is on the canonical sorted tags tuple; the result per tag set is cached by the
    rules engine, so the cost on the hot path is one dict lookup per series.
    """

    __slots__ = ("matchers",)

    def __init__(self, where: Mapping[str, str]) -> None:
        self.matchers = tuple(parse_tag_matcher(k, v) for k, v in sorted(where.items()))

    def matches(self, tags: Tags) -> bool:
        if not self.matchers:
            return True
        values = dict(tags)
        return all(m.matches(values.get(m.name, "")) for m in self.matchers)

    def equalities(self) -> dict[str, str]:
        """Tags every matching series must carry with this exact value (store filters)."""
        return {m.name: m.value for m in self.matchers if m.op == "=" and m.value != ""}

    def __str__(self) -> str:
        return "{" + ", ".join(str(m) for m in self.matchers) + "}"
