"""Alert text from a rule's templates: ``"{model} is down ({value:.0f})"``.

Templates are ``str.format`` strings over the alert's labels plus ``{value}``,
``{threshold}``, ``{for}`` (a duration like ``5m``), ``{alert}``, ``{severity}`` and
``{metric}``, and the facts of the alert's latest sample (``{reason}``, ``{run_id}``,
``{try_number}``, ``{log_url}``: see the catalog's ``facts`` column). A
template must never stop an alert from being sent, so an unknown name renders as
``{name}`` and a value that does not fit its format spec (an absent series has no value)
renders plainly instead of raising.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from typing import Any

from agent.durations import format_duration
from agent.rules.config import RuleConfig

__all__ = ["render", "render_annotations"]

_FIELDS = ("summary", "description", "runbook_url", "dashboard_url")
# a width or precision of 1000 or more (a nested `{value:>{width}}` can take it from a label,
# that is, from the data) would build a string of that size: such a field renders plainly
_HUGE = re.compile(r"\d{4}")


class _Lenient(string.Formatter):
    def get_value(self, key: int | str, args: Any, kwargs: Mapping[str, Any]) -> Any:
        if isinstance(key, str) and key in kwargs:
            return kwargs[key]
        return _Missing(str(key))

    def format_field(self, value: Any, format_spec: str) -> str:
        if isinstance(value, _Missing):
            return "{" + value.name + "}"
        if _HUGE.search(format_spec):
            return "n/a" if value is None else str(value)
        try:
            return super().format_field(value, format_spec)
        except (ValueError, TypeError):
            return "n/a" if value is None else str(value)


class _Missing:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __getattr__(self, attr: str) -> _Missing:
        return _Missing(f"{self.name}.{attr}")

    def __getitem__(self, item: object) -> _Missing:
        return _Missing(f"{self.name}[{item}]")


_FORMATTER = _Lenient()


def render(template: str, context: Mapping[str, Any]) -> str:
    """Render one template; never raises on missing names or unformattable values."""
    if "{" not in template:
        return template
    try:
        return _FORMATTER.vformat(template, (), context)
    except (ValueError, IndexError, KeyError, AttributeError):
        return template


def render_annotations(rule: RuleConfig, labels: Mapping[str, str], value: float | None,
                       facts: Mapping[str, str] | None = None) -> dict[str, str]:
    """The rule's non-empty templates (its `annotations` included) rendered for one alert.

    ``facts`` are what the alert's latest sample says beyond its labels (a model server's
    reason, the run a count is about); a label of the same name wins."""
    context: dict[str, Any] = dict(facts or {})
    context.update(labels)
    context.update(
        value=value,
        threshold=rule.threshold if not rule.is_absent else rule.absent,
        alert=rule.alert,
        severity=rule.severity,
        metric=rule.metric,
    )
    context["for"] = format_duration(rule.for_)
    out = {name: render(text, context) for name in _FIELDS if (text := getattr(rule, name))}
    for name, text in rule.annotations.items():
        out[name] = render(text, context)
    return out
