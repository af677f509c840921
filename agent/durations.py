"""Durations in config: ``250ms``, ``15s``, ``5m``, ``1h30m``, ``7d`` or a number of seconds."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer

__all__ = ["Duration", "format_duration", "parse_duration"]

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_duration(value: object) -> float:
    """Seconds from a duration string or number; ValueError with the expected form."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like '15s', '5m' or '1h30m', found {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().replace(" ", "")
        pos, seconds = 0, 0.0
        for match in _PART.finditer(text):
            if match.start() != pos:
                break
            seconds += float(match.group(1)) * _UNIT[match.group(2)]
            pos = match.end()
        if not text or pos != len(text):
            try:
                seconds = float(text)
            except ValueError:
                raise ValueError(
                    f"expected a duration like '15s', '5m' or '1h30m', found {value!r}"
                ) from None
    else:
        raise ValueError(f"expected a duration like '15s', '5m' or '1h30m', found {value!r}")
    if seconds < 0 or seconds != seconds:
        raise ValueError(f"a duration cannot be negative, found {value!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest config spelling of a duration (``90`` -> ``1m30s``)."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms" if seconds else "0s"
    out, rest = [], float(seconds)
    for unit in ("d", "h", "m", "s"):
        size = _UNIT[unit]
        if rest >= size:
            n = int(rest // size) if unit != "s" else rest
            out.append(f"{n:g}{unit}")
            rest -= n * size
    return "".join(out)


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
]
