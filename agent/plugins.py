"""Finds check types through the ``mlwarden.checks`` entry-point group.

Built-in checks register there the same way a third-party package does, so adding a
check type never touches the agent's code.

A type's module is imported when something asks for that type (:func:`get_check_type`:
a configured instance, the `mlwarden check` command), not when the agent starts: each
check type's module costs the daemon its imports for good (the GPU check's DCGM parser,
the Airflow client), and a sidecar watching one model server uses one type. Names and
metadata files are known without importing (:func:`check_type_names`,
:func:`metadata_path`); :func:`check_types` imports them all (docs, tests).
"""

from __future__ import annotations

import importlib.util
import logging
from functools import lru_cache
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

from agent.check import AgentCheck
from agent.errors import UnknownCheckError

__all__ = ["check_type_names", "check_types", "get_check_type", "metadata_path", "GROUP"]

GROUP = "mlwarden.checks"
log = logging.getLogger(__name__)
_extra: dict[str, type[AgentCheck]] = {}
_loaded: dict[str, type[AgentCheck]] = {}  # entry points imported so far, by name
_broken: set[str] = set()  # entry points that failed to import (logged once each)


@lru_cache(maxsize=1)
def _entry_points() -> dict[str, EntryPoint]:
    # by name; where two distributions register one name, the last wins (as before)
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def _load(name: str) -> type[AgentCheck] | None:
    """The entry point's class, imported once; None (logged once) where it is broken."""
    cls = _loaded.get(name)
    if cls is not None or name in _broken:
        return cls
    ep = _entry_points().get(name)
    if ep is None:
        return None
    try:
        found = ep.load()
    except Exception as exc:  # noqa: BLE001 - one broken plugin must not stop the agent
        log.error("check plugin %r (%s) failed to load: %s", ep.name, ep.value, exc)
        _broken.add(name)
        return None
    if not (isinstance(found, type) and issubclass(found, AgentCheck)):
        log.error("check plugin %r (%s) is not an AgentCheck subclass", ep.name, ep.value)
        _broken.add(name)
        return None
    if not found.type_name:
        found.type_name = ep.name
    _loaded[name] = found
    return found


def check_type_names() -> list[str]:
    """Every installed check type's name, sorted, without importing any of them.

    A plugin that failed to import is left out once it has been tried.
    """
    return sorted({*(n for n in _entry_points() if n not in _broken), *_extra})


def check_types() -> dict[str, type[AgentCheck]]:
    """Every installed check type by name (imports each type's module)."""
    found = {name: cls for name in _entry_points() if (cls := _load(name)) is not None}
    return {**found, **_extra}


def get_check_type(name: str) -> type[AgentCheck]:
    """The check type ``name``, importing its module (only) on first use.

    Raises:
        UnknownCheckError: no installed plugin provides ``name`` (or its plugin is broken:
            the reason is logged).
    """
    cls = _extra.get(name) or _load(name)
    if cls is None:
        raise UnknownCheckError(name, check_type_names())
    return cls


def metadata_path(name: str) -> Path | None:
    """Where check type ``name``'s metadata.csv is, without importing it when not yet imported.

    An imported type answers itself (:meth:`AgentCheck.metadata_path`); otherwise it is the
    file beside the module its entry point names (the check folder, as every type is laid
    out), found without running that module.
    """
    cls = _extra.get(name) or _loaded.get(name)
    if cls is not None:
        return cls.metadata_path()
    ep = _entry_points().get(name)
    if ep is None or name in _broken:
        return None
    try:
        spec = importlib.util.find_spec(ep.module)
    except (ImportError, ValueError) as exc:
        log.error("check plugin %r (%s) cannot be found: %s", ep.name, ep.value, exc)
        return None
    if spec is None or not spec.origin or not spec.has_location:
        return None
    return Path(spec.origin).with_name("metadata.csv")


def register_check_type(name: str, cls: type[AgentCheck]) -> None:
    """Register a check type in-process (tests, embedding); entry points are the normal way."""
    if not cls.type_name:
        cls.type_name = name
    _extra[name] = cls
