"""Tags and names the way Datadog expects them.

Datadog lowercases tags, allows letters, digits, ``_ - : . /``, turns anything else into
``_`` (runs collapsed), requires a leading letter and cuts at 200 characters. Doing it
here (not in Datadog's backend) keeps DogStatsD and API mode identical and keeps our tag
strings from carrying ``|``, ``,`` or ``#``, which would corrupt a DogStatsD datagram.
"""

from __future__ import annotations

import re
from functools import lru_cache

from agent.samples import CheckResult, Tags

__all__ = ["dd_tag", "dd_tags", "instance_tags", "service_check_name"]

_BAD = re.compile(r"[^a-z0-9_\-:./]+")
_RUNS = re.compile(r"__+")
MAX_TAG = 200


@lru_cache(maxsize=65536)
def dd_tag(key: str, value: str) -> str:
    """One ``key:value`` tag, normalised."""
    raw = f"{key}:{value}" if value != "" else key
    tag = _RUNS.sub("_", _BAD.sub("_", raw.lower()))
    tag = tag.lstrip("_-:./0123456789") or "_"
    if not tag[0].isalpha():
        tag = "t" + tag
    return tag[:MAX_TAG].rstrip("_")


@lru_cache(maxsize=65536)
def dd_tags(tags: Tags) -> list[str]:
    """Datadog tag strings of a sample's tag tuple (cached: tag sets repeat every poll)."""
    return [dd_tag(k, v) for k, v in tags]


def service_check_name(check_type: str) -> str:
    """The service check a check instance's status is sent as."""
    return f"mlwarden.{check_type}.status"


def instance_tags(result: CheckResult) -> tuple[tuple[str, str], ...]:
    """Tags of a check instance's service check: the instance's own tags, from any sample."""
    for sample in result.samples:
        if sample.metric == "mlwarden.check.status":
            return tuple((k, v) for k, v in sample.tags if k != "check_type")
    return (("check", result.check),)
