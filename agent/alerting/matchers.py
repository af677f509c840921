"""Label matchers (``=``, ``!=``, ``=~``, ``!~``), shared by routes, silences and inhibition.

Regexes are fully anchored, as in Alertmanager, so ``node=~gpu-1`` does not match ``gpu-10``.
A label that is absent reads as the empty string.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["LabelMatcher", "parse_label_matcher", "parse_label_matchers", "matches_all"]

_OPS = ("=~", "!~", "!=", "=")
_NAME = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*")


@dataclass(frozen=True)
class LabelMatcher:
    name: str
    op: str
    value: str
    _regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.op not in _OPS:
            raise ValueError(f"unknown matcher operator {self.op!r} (use =, !=, =~ or !~)")
        if self.op in ("=~", "!~"):
            try:  # the user's pattern alone first, so the error's position is in their text
                re.compile(self.value)
            except re.error as exc:
                raise ValueError(
                    f"{self.name}{self.op}{self.value!r}: invalid regex: {exc}"
                ) from None
            try:
                object.__setattr__(self, "_regex", re.compile(f"(?:{self.value})\\Z"))
            except re.error as exc:  # e.g. a global flag (?i) that is valid only at the start
                raise ValueError(
                    f"{self.name}{self.op}{self.value!r}: invalid regex inside a full match: "
                    f"{exc.msg} (write flags scoped, like (?i:gpu-.*))"
                ) from None

    def matches(self, labels: Mapping[str, str]) -> bool:
        got = labels.get(self.name, "")
        if self.op == "=":
            return got == self.value
        if self.op == "!=":
            return got != self.value
        assert self._regex is not None
        hit = self._regex.match(got) is not None
        return hit if self.op == "=~" else not hit

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "op": self.op, "value": self.value}

    def __str__(self) -> str:
        return f"{self.name}{self.op}{self.value}"


def parse_label_matcher(text: str) -> LabelMatcher:
    """``alert=GpuIdle``, ``node!=gpu-3``, ``node=~gpu-.*``; ValueError saying the expected form."""
    for op in _OPS:
        name, sep, value = text.partition(op)
        if sep and name.strip() and ("=" not in name and "!" not in name and "~" not in name):
            return LabelMatcher(name.strip(), op, value.strip().strip('"'))
    raise ValueError(
        f"expected a matcher like alert=GpuIdle, node!=gpu-3 or node=~'gpu-.*', found {text!r}"
    )


def parse_label_matchers(text: str) -> list[LabelMatcher]:
    """Alertmanager's ``matchers:`` syntax: ``severity="critical"``, ``team=~"ml|data"``.

    One string may hold several matchers separated by commas, optionally in braces
    (``{env="prod", team!="ops"}``); a value may be double-quoted (``\\"`` and ``\\\\`` escape)
    or bare (up to the next comma, trimmed). ValueError says what was expected where.
    """
    body = text.strip()
    if body.startswith("{") and body.endswith("}"):
        body = body[1:-1]
    out: list[LabelMatcher] = []
    pos = 0
    while pos < len(body):
        m = _NAME.match(body, pos)
        if not m:
            raise ValueError(f"expected a matcher like severity=\"critical\" or team=~\"ml|data\" "
                             f"at character {pos + 1} of {text!r}")
        name, op, pos = m.group(1), m.group(2), m.end()
        if body.startswith('"', pos):
            value, pos = _quoted(body, pos, text)
        else:
            end = body.find(",", pos)
            end = len(body) if end < 0 else end
            value, pos = body[pos:end].strip(), end
        out.append(LabelMatcher(name, op, value))
        rest = body[pos:].lstrip()
        if rest and not rest.startswith(","):
            raise ValueError(f"expected a comma or the end after {name}{op}{value!r} in {text!r}")
        pos = len(body) - len(rest) + (1 if rest else 0)
        if rest and not body[pos:].strip():
            raise ValueError(f"a trailing comma in {text!r}")
    if not out:
        raise ValueError(f"expected at least one matcher, found {text!r}")
    return out


def _quoted(body: str, pos: int, text: str) -> tuple[str, int]:
    value, i = [], pos + 1
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            value.append(body[i + 1])
            i += 2
            continue
        if ch == '"':
            return "".join(value), i + 1
        value.append(ch)
        i += 1
    raise ValueError(f"a quoted value is not closed in {text!r}")


def matches_all(matchers: list[LabelMatcher] | tuple[LabelMatcher, ...],
                labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)
