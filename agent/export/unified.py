"""Unified service tagging: one precedence between the config file and the environment.

Datadog ties metrics, service checks and events to a service through three tags, ``env``,
``service`` and ``version``, which its own tools read from ``DD_ENV``, ``DD_SERVICE`` and
``DD_VERSION`` (plus host-level tags from ``DD_TAGS``). The Datadog Agent lets the
environment override its file; so does mlwarden, and everything either Datadog exporter
sends carries each tag key at most once:

=====================  =========================================================
tag                    value, first found wins
=====================  =========================================================
env, service, version  ``DD_ENV`` / ``DD_SERVICE`` / ``DD_VERSION``; ``DD_TAGS``; the file
                       (``agent.tags`` or a check's ``tags:``)
another DD_TAGS key    a check's own tag (its ``tags:`` or what it measures); ``DD_TAGS``;
                       ``agent.tags``
anything else          the sample's own tags
=====================  =========================================================

So a starter config with ``env: dev`` and a pod with ``DD_ENV=staging`` send ``env:staging``
once, never both; and ``DD_TAGS=team:ml`` cannot relabel a check's ``model`` or ``node``.
``DATADOG_TAGS`` (read by the DogStatsD client) is honoured below ``DD_TAGS``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

from agent.samples import Tags

__all__ = ["UNIFIED_KEYS", "UnifiedTags", "parse_dd_tags"]

UNIFIED_KEYS = ("env", "service", "version")
_ENV_VARS = (("DD_ENV", "env"), ("DD_SERVICE", "service"), ("DD_VERSION", "version"))


def parse_dd_tags(text: str) -> list[tuple[str, str]]:
    """``DD_TAGS`` as Datadog reads it: ``key:value`` items separated by spaces or commas
    (a bare ``name`` is a tag without a value)."""
    out = []
    for item in text.replace(",", " ").split():
        key, _, value = item.partition(":")
        if key:
            out.append((key, value))
    return out


class UnifiedTags:
    """The environment's tags and how they merge into a sample's tags (see module doc)."""

    def __init__(self, environ: Mapping[str, str] | None = None,
                 file_keys: Iterable[str] = ()) -> None:
        env = os.environ if environ is None else environ
        tags: dict[str, str] = {}
        for var in ("DATADOG_TAGS", "DD_TAGS"):
            tags.update(parse_dd_tags(env.get(var, "")))
        for var, key in _ENV_VARS:
            if env.get(var):
                tags[key] = env[var]
        self.tags: Tags = tuple(sorted(tags.items()))
        # keys the environment takes over even when a sample carries them: the three unified
        # ones always, the others only where the sample's value came from agent.tags
        file = set(file_keys)
        self._override = frozenset(k for k in tags if k in UNIFIED_KEYS or k in file)

    def __bool__(self) -> bool:
        return bool(self.tags)

    def apply(self, tags: Tags) -> Tags:
        """``tags`` with the environment's tags merged in, each key once."""
        if not self.tags:
            return tags
        have = {k for k, _ in tags}
        kept = [t for t in tags if t[0] not in self._override]
        added = [t for t in self.tags if t[0] in self._override or t[0] not in have]
        return tuple(sorted(kept + added))

    def as_dict(self) -> dict[str, str]:
        return dict(self.tags)
