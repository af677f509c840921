"""Finds check types through the ``mlwarden.checks`` entry-point group.

Built-in checks register there the same way a third-party package does, so adding a
check type never touches the agent's code.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from importlib.metadata import entry_points

from agent.check import AgentCheck
from agent.errors import UnknownCheckError

__all__ = ["check_types", "get_check_type", "GROUP"]

GROUP = "mlwarden.checks"
log = logging.getLogger(__name__)
_extra: dict[str, type[AgentCheck]] = {}


@lru_cache(maxsize=1)
def _entry_point_types() -> dict[str, type[AgentCheck]]:
    found: dict[str, type[AgentCheck]] = {}
    for ep in entry_points(group=GROUP):
        try:
            cls = ep.load()
        except Exception as exc:  # noqa: BLE001 - one broken plugin must not stop the agent
            log.error("check plugin %r (%s) failed to load: %s", ep.name, ep.value, exc)
            continue
        if not (isinstance(cls, type) and issubclass(cls, AgentCheck)):
            log.error("check plugin %r (%s) is not an AgentCheck subclass", ep.name, ep.value)
            continue
        if not cls.type_name:
            cls.type_name = ep.name
        found[ep.name] = cls
    return found


def check_types() -> dict[str, type[AgentCheck]]:
    """Every installed check type by name."""
    return {**_entry_point_types(), **_extra}


def get_check_type(name: str) -> type[AgentCheck]:
    types = check_types()
    try:
        return types[name]
    except KeyError:
        raise UnknownCheckError(name, list(types)) from None


def register_check_type(name: str, cls: type[AgentCheck]) -> None:
    """Register a check type in-process (tests, embedding); entry points are the normal way."""
    if not cls.type_name:
        cls.type_name = name
    _extra[name] = cls
