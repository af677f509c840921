"""Tag matchers: equals, ``!=x``, ``=~re``, ``!~re`` and globs, on one tag each.

The spelling of a rule's ``where:`` and of the cause graph's alert selectors
(``causes:``), so both read the same way; the rules (``agent/rules/matchers.py``,
:class:`Selector`) and the causes (``agent/causes/``) import it from here, neither from
the other. Routing's label matchers (Alertmanager's ``name=~"re"`` syntax) are another
thing: ``agent/alerting/matchers.py``.

One spelling per value keeps rule files short: ``ranker`` equals, ``"!=dev"`` differs,
``"=~train_.*"`` and ``"!~tmp_.*"`` match a regular expression against the whole value,
and a value holding ``*`` or ``?`` is a shell glob. A tag a series does not carry reads as
the empty string (as in PromQL), so ``{env: "!=dev"}`` also matches series without ``env``.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from typing import Literal

__all__ = ["TagMatcher", "parse_tag_matcher"]

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
