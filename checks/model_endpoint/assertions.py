"""Expectations on JSON answers (``outputs[0].name equals predict``), checked in words."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from checks.model_endpoint.config import JsonAssertion

__all__ = ["failed_assertions", "lookup"]

_STEP = re.compile(r"([^.\[\]]+)|\[(-?\d+)\]")
_MISSING = object()


def lookup(data: Any, path: str) -> Any:
    """The value at a dotted path with ``[i]`` indexes, or a sentinel when absent."""
    value = data
    for match in _STEP.finditer(path):
        key, index = match.groups()
        if key is not None and isinstance(value, dict) and key in value:
            value = value[key]
        elif isinstance(value, list) and _fits(key if index is None else index, value):
            value = value[int(key if index is None else index)]
        else:
            return _MISSING
    return value


def _fits(index: str | None, items: list) -> bool:
    if index is None or not index.lstrip("-").isdigit():
        return False
    return -len(items) <= int(index) < len(items)


def failed_assertions(data: Any, assertions: Iterable[JsonAssertion]) -> list[str]:
    """One line per unmet expectation (empty when all hold)."""
    problems = []
    for a in assertions:
        value = lookup(data, a.path)
        if not a.exists:
            if value is not _MISSING:
                problems.append(f"{a.path} should be absent but is {value!r}")
        elif value is _MISSING:
            problems.append(f"{a.path} is missing")
        elif a.equals is not None and value != a.equals:
            problems.append(f"{a.path} is {value!r}, expected {a.equals!r}")
    return problems
