"""Named time intervals, written as in Alertmanager's ``time_intervals`` section.

A route's ``mute_time_intervals`` hold its notifications while now falls in any of them;
its ``active_time_intervals`` hold them while now falls in none. Held is not dropped: as
in Alertmanager, nothing is recorded as sent, so what is still firing goes out on the first
flush after the window, and what fired and resolved inside it is never sent.

One interval matches when every field it sets matches (an unset field matches all):

    time_intervals:
      - name: offhours
        time_intervals:
          - weekdays: ['saturday', 'sunday']
          - times: [{start_time: '18:00', end_time: '24:00'}, {start_time: '00:00', end_time: '08:00'}]
            weekdays: ['monday:friday']
            location: Europe/Berlin

Ranges are inclusive (``monday:friday``, ``1:7``, ``-3:-1`` for the last three days of the
month, ``january:march``, ``2026:2027``); ``times`` are [start, end) in minutes.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["TimeInterval", "TimeIntervalSpec", "TimeRange", "in_any"]

_WEEKDAYS = {name.lower(): i for i, name in enumerate(calendar.day_name)}  # monday=0
_MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_name) if name}  # january=1
_HHMM = re.compile(r"^(\d{2}):(\d{2})$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _minutes(text: str) -> int:
    m = _HHMM.match(text)
    if not m or int(m.group(2)) > 59 or int(m.group(1)) * 60 + int(m.group(2)) > 24 * 60:
        raise ValueError(f"expected a time like '09:00' (00:00 to 24:00), found {text!r}")
    return int(m.group(1)) * 60 + int(m.group(2))


def _ranges(items: tuple[str, ...], one: Callable[[str], int], what: str) -> list[tuple[int, int]]:
    out = []
    for item in items:
        lo, sep, hi = str(item).strip().lower().partition(":")
        try:
            a = one(lo)
            b = one(hi) if sep else a
        except ValueError:
            raise ValueError(f"{item!r} is not a {what} or a range of them ({what}:{what})") from None
        if a < 0 < b:  # days: -3:5 would mean different things in different months
            raise ValueError(f"{item!r}: a range that starts counting from the month's end "
                             "must end there too (e.g. -7:-1)")
        if a > b and (a > 0) == (b > 0):
            raise ValueError(f"{item!r}: the range's start comes after its end")
        out.append((a, b))
    return out


def _weekday(text: str) -> int:
    if text not in _WEEKDAYS:
        raise ValueError(text)
    return _WEEKDAYS[text]


def _month(text: str) -> int:
    if text in _MONTHS:
        return _MONTHS[text]
    n = int(text)
    if not 1 <= n <= 12:
        raise ValueError(text)
    return n


def _day(text: str) -> int:
    n = int(text)
    if n == 0 or not -31 <= n <= 31:
        raise ValueError(text)
    return n


def _year(text: str) -> int:
    n = int(text)
    if n < 1:
        raise ValueError(text)
    return n


class TimeRange(_Model):
    """Minutes of the day, [start_time, end_time)."""

    start_time: str = Field(..., description="HH:MM")
    end_time: str = Field(..., description="HH:MM, up to 24:00; after start_time.")

    @model_validator(mode="after")
    def _order(self) -> "TimeRange":
        if _minutes(self.start_time) >= _minutes(self.end_time):
            raise ValueError(f"start_time {self.start_time} must come before end_time "
                             f"{self.end_time} (split an overnight window in two)")
        return self


class TimeIntervalSpec(_Model):
    """One recurring window; every field it sets must match."""

    times: tuple[TimeRange, ...] = Field(default=(), description="Times of day.")
    weekdays: tuple[str, ...] = Field(default=(), description="e.g. `monday:friday`, `sunday`.")
    days_of_month: tuple[str, ...] = Field(
        default=(), description="e.g. `1:7`, `-1` (the last day)."
    )
    months: tuple[str, ...] = Field(default=(), description="e.g. `january:march`, `12`.")
    years: tuple[str, ...] = Field(default=(), description="e.g. `2026:2027`.")
    location: str = Field("UTC", description="IANA zone the fields are read in.")

    @field_validator("weekdays")
    @classmethod
    def _weekdays(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        _ranges(value, _weekday, "weekday")
        return value

    @field_validator("days_of_month")
    @classmethod
    def _days(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        _ranges(value, _day, "day of the month (1 to 31, or -1 for the last)")
        return value

    @field_validator("months")
    @classmethod
    def _months(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        _ranges(value, _month, "month")
        return value

    @field_validator("years")
    @classmethod
    def _years(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        _ranges(value, _year, "year")
        return value

    @field_validator("location")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} "
                             "(use an IANA name like 'Europe/Berlin')") from None
        return value

    def contains(self, now: float) -> bool:
        return _compiled(self)(now)


class TimeInterval(_Model):
    """A named list of windows; it contains a moment when any of its windows does."""

    name: str = Field(..., min_length=1, description="Name that routes refer to.")
    time_intervals: tuple[TimeIntervalSpec, ...] = Field(
        default=(), description="Windows; an empty list never matches."
    )

    def contains(self, now: float) -> bool:
        return any(spec.contains(now) for spec in self.time_intervals)


@lru_cache(maxsize=256)
def _compiled(spec: TimeIntervalSpec):  # type: ignore[no-untyped-def]
    zone = ZoneInfo(spec.location)
    times = [(_minutes(t.start_time), _minutes(t.end_time)) for t in spec.times]
    weekdays = _ranges(spec.weekdays, _weekday, "weekday")
    days = _ranges(spec.days_of_month, _day, "day")
    months = _ranges(spec.months, _month, "month")
    years = _ranges(spec.years, _year, "year")

    def contains(now: float) -> bool:
        t = datetime.fromtimestamp(now, zone)
        if times and not any(a <= t.hour * 60 + t.minute < b for a, b in times):
            return False
        if weekdays and not any(a <= t.weekday() <= b for a, b in weekdays):
            return False
        if days:
            last = calendar.monthrange(t.year, t.month)[1]
            if not any(_day_in(t.day, a, b, last) for a, b in days):
                return False
        if months and not any(a <= t.month <= b for a, b in months):
            return False
        return not years or any(a <= t.year <= b for a, b in years)

    return contains


def _day_in(day: int, a: int, b: int, last: int) -> bool:
    """Negative days count from the month's end (-1 is its last day), as in Alertmanager."""
    lo = a if a > 0 else last + 1 + a
    hi = b if b > 0 else last + 1 + b
    return lo <= day <= hi


def in_any(intervals: tuple[TimeInterval, ...], now: float) -> str | None:
    """The name of the first interval containing ``now``, or None."""
    for interval in intervals:
        if interval.contains(now):
            return interval.name
    return None
