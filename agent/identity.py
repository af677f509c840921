"""Who is reporting: what a component's factory needs to know of the agent besides its own section.

Factories (``build_exporters``, the cost digest, ...) take their config section plus this,
not the whole ``AgentConfig``: a component then depends on its own settings and on a name
and tags, so it can be built (and tested) without the config module's model graph, and
the config module stays the one that knows every section.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["Identity"]


@dataclass(frozen=True)
class Identity:
    """The agent's name and the tags it adds to every sample (``agent.hostname``/``agent.tags``).

    ``report_interval`` is the pace of the agent's own reports (``agent.self_check_interval``):
    components that put their health into the pipeline on a timer use it.
    """

    hostname: str
    tags: Mapping[str, str] = field(default_factory=dict)
    report_interval: float = 15.0
