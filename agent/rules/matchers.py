"""Tag matchers of a rule's ``where:``: equals, ``!=x``, ``=~re``, ``!~re`` and globs.

One spelling per value keeps rule files short: ``ranker`` equals, ``"!=dev"`` differs,
``"=~train_.*"`` and ``"!~tmp_.*"`` match a regular expression against the whole value,
and a value holding ``*`` or ``?`` is a shell glob. A tag a series does not carry reads as
the empty string (as in PromQL), so ``{env: "!=dev"}`` also matches series without ``env``.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from agent.samples import Tags

__all__ = ["TagMatcher", "Selector", "parse_tag_matcher"]

Op = Literal["=", "!=", "=~", "!~", "glob"]


@dataclass(frozen=True, slots=True)
class TagMatcher:
    """One condition on one tag."""

    name: str
    op: Op
    value: str
    pattern: re.Pattern[str] | None = None

    def matches(self, tag_value: str) -> bool:
        if self.op == "=":
            return tag_value == self.value
        if self.op == "!=":
            return tag_value != self.value
        assert self.pattern is not None
        hit = self.pattern.fullmatch(tag_value) is not None
        return not hit if self.op == "!~" else hit

    def __str__(self) -> str:
        if self.op == "glob":
            return f"{self.name}={self.value}"
        shown = self.op if self.op != "=" else "="
        return f"{self.name}{shown}{self.value!r}"


def parse_tag_matcher(name: str, spec: str) -> TagMatcher:
    """A matcher from its ``where:`` spelling; ValueError naming the bad regex."""
    if spec.startswith("!="):
        return TagMatcher(name, "!=", spec[2:])
    for prefix, op in (("=~", "=~"), ("!~", "!~")):
        if spec.startswith(prefix):
            text = spec[2:]
            try:
                return TagMatcher(name, op, text, re.compile(text))  # type: ignore[arg-type]
            except re.error as exc:
                raise ValueError(f"invalid regular expression {text!r}: {exc}") from None
    if "*" in spec or "?" in spec:
        return TagMatcher(name, "glob", spec, re.compile(fnmatch.translate(spec)))
    return TagMatcher(name, "=", spec)


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


# The old names, until agent/causes/ (edited elsewhere) imports TagMatcher/parse_tag_matcher:
# routing's label matcher (agent.alerting.matchers.LabelMatcher) had the same ones.
Matcher = TagMatcher
parse_matcher = parse_tag_matcher
