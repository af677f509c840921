"""Label matchers (``=``, ``!=``, ``=~``, ``!~``), shared by routes, silences and inhibition.

Regexes are fully anchored, as in Alertmanager, so ``node=~gpu-1`` does not match ``gpu-10``.
A label that is absent reads as the empty string.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["Matcher", "parse_matcher", "matches_all", "alert_labels"]

_OPS = ("=~", "!~", "!=", "=")


@dataclass(frozen=True)
class Matcher:
    name: str
    op: str
    value: str
    _regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.op not in _OPS:
            raise ValueError(f"unknown matcher operator {self.op!r} (use =, !=, =~ or !~)")
        if self.op in ("=~", "!~"):
            try:
                object.__setattr__(self, "_regex", re.compile(f"(?:{self.value})\\Z"))
            except re.error as exc:
                raise ValueError(
                    f"{self.name}{self.op}{self.value!r}: invalid regex ({exc})"
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


def parse_matcher(text: str) -> Matcher:
    """``alert=GpuIdle``, ``node!=gpu-3``, ``node=~gpu-.*``; ValueError saying the expected form."""
    for op in _OPS:
        name, sep, value = text.partition(op)
        if sep and name.strip() and ("=" not in name and "!" not in name and "~" not in name):
            return Matcher(name.strip(), op, value.strip().strip('"'))
    raise ValueError(
        f"expected a matcher like alert=GpuIdle, node!=gpu-3 or node=~'gpu-.*', found {text!r}"
    )


def matches_all(matchers: list[Matcher] | tuple[Matcher, ...], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)


def alert_labels(rule: str, labels: Mapping[str, str], severity: str) -> dict[str, str]:
    """The label set an alert is routed, silenced and sent on.

    The rule name appears as ``alertname`` (what Alertmanager and its users expect) and as
    ``alert`` (what mlwarden's config and CLI say); ``severity`` is a label too.
    """
    out = dict(labels)
    out.setdefault("alertname", rule)
    out.setdefault("alert", rule)
    out.setdefault("severity", severity)
    return out
