"""Cause before symptoms: which alerts explain which (a GPU that fell off the bus explains the
model served on its node failing and the training task on it failing).

- :mod:`agent.causes.config`: the ``causes:`` section (and the shape of the shipped graph);
- :mod:`agent.causes.graph`: kinds of alerts and the edges between them, ready to match;
- :mod:`agent.causes.link`: :func:`link` pairs causes with effects, :func:`explain` groups
  them under their root cause;
- :mod:`agent.causes.render`: the message with the cause first, and its follow-ups.

All of it is pure (``now`` is passed in). The alert chain builds :class:`Signal` values from
its alerts (:meth:`Signal.from_alert`), and gets back links and texts. See docs/alerting.md
(Causes and their effects).
"""

from agent.causes.config import CausesConfig
from agent.causes.graph import CauseGraph, builtin_graph
from agent.causes.link import explain, link
from agent.causes.model import Explanation, Link, Signal

__all__ = ["CauseGraph", "CausesConfig", "Explanation", "Link", "Signal", "builtin_graph",
           "explain", "link"]
