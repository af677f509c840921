"""The page's silence form, read the way `mlwarden silence add` reads its arguments.

Matchers are one per line in the CLI's syntax (``alertname=GpuIdle``, ``node!=gpu-3``,
``node=~"gpu-.*"``); the duration is a config duration (``2h``, ``30m``). A bad field
gives a sentence next to that field and the form comes back filled in as it was sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from agent.alerting.matchers import LabelMatcher, parse_label_matcher
from agent.durations import parse_duration

__all__ = ["SilenceForm", "parse_silence_form"]

MAX_SILENCE = 30 * 86400.0  # a longer mute is a config change, not a silence
MAX_TEXT = 1000


@dataclass
class SilenceForm:
    """The form as sent (to fill it in again) and, once valid, what it asks for."""

    matchers_text: str = ""
    duration_text: str = "2h"
    comment: str = ""
    author: str = ""
    matchers: list[LabelMatcher] = field(default_factory=list)
    seconds: float = 0.0
    errors: dict[str, str] = field(default_factory=dict)  # field name -> what is wrong

    @property
    def valid(self) -> bool:
        return not self.errors


def parse_silence_form(data: Mapping[str, str]) -> SilenceForm:
    form = SilenceForm(
        matchers_text=str(data.get("matchers", ""))[:MAX_TEXT * 4],
        duration_text=str(data.get("duration", "")).strip()[:50],
        comment=str(data.get("comment", "")).strip()[:MAX_TEXT],
        author=str(data.get("author", "")).strip()[:100],
    )
    lines = [line.strip() for line in form.matchers_text.splitlines() if line.strip()]
    if not lines:
        form.errors["matchers"] = "Give at least one matcher, e.g. alertname=GpuIdle."
    for line in lines:
        try:
            form.matchers.append(parse_label_matcher(line))
        except ValueError as exc:
            form.errors["matchers"] = str(exc)
            break
    try:
        form.seconds = parse_duration(form.duration_text)
        if not 0 < form.seconds <= MAX_SILENCE:
            form.errors["duration"] = "A silence lasts more than 0s and at most 30d."
    except ValueError as exc:
        form.errors["duration"] = str(exc)
    if not form.author:
        form.errors["author"] = "Say who silences (shown next to the silence)."
    return form
