"""Where linked alerts go: which message carries an effect under its cause, which alerts wait
a moment for a cause that may still come, and which page on their own.

:func:`decide` is the one decision the alert dispatcher asks of the cause graph each round.
It is pure (``now`` is passed in; no I/O, no clock), so every case is a unit test, and it
knows nothing of the dispatcher's types: the dispatcher describes each alert of each of its
groups as a :class:`Member` and applies the :class:`Decision`.

The rules it applies:

- An effect whose root cause fires, live (not silenced or inhibited), in a group of the
  *same receiver* is said in the cause's message, not on its own (``away``); the cause's
  group ``carries`` the explanation. A receiver that never sees the cause pages the effect
  as it always did: a message must not point at a message its readers do not have.
- An effect that already paged on its own stays where it is (its thread goes on); the
  cause's message still lists it, marked as paged (``paged``).
- **Ordering.** An alert of a kind that some cause could explain, and that no firing cause
  explains yet, is *held* for ``hold`` seconds after it fired (``wait_until``): the cause
  is often seen a poll or a ``for:`` later than its effects. A hold no longer than
  ``group_wait`` (the default) costs nothing; after the hold it pages on its own. A cause that
  fires later still lists it (paged), so nothing is hidden and nothing is said twice.
- When the root cause resolves, its group carries the explanation once more with the
  effects still firing (the resolution text says them plainly); once that is said they are
  ordinary alerts of their own groups, which are ``due`` at once.
- Alertmanager receivers group alerts themselves: nothing is moved or held there; the link
  is only reported (``explained``), for annotations and the alert history.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from agent.causes.graph import CauseGraph, builtin_graph
from agent.causes.link import explain, link
from agent.causes.model import Explanation, Link, Signal

__all__ = ["Carried", "Decision", "Member", "decide"]

Slot = tuple[str, str]  # (group key, fingerprint)


@dataclass(frozen=True, slots=True)
class Member:
    """One alert in one dispatcher group.

    ``said`` is what the group last said of it (``firing``: it paged; ``linked``: it went
    under a cause; ``muted``; None: nothing yet). ``moves`` is False for a receiver that
    groups alerts itself (Alertmanager)."""

    group: str
    receiver: str
    signal: Signal
    fired_at: float
    said: str | None = None
    live: bool = True
    moves: bool = True
    was_cause: bool = False  # the group's message said it as a cause before
    hold: float | None = None  # its own hold (its route's group_wait); None: decide's

    @property
    def fingerprint(self) -> str:
        return str(self.signal.key)

    @property
    def firing(self) -> bool:
        return self.signal.until is None


@dataclass(frozen=True, slots=True)
class Carried:
    """An explanation one group's message says: its root cause is in the group; ``links``
    are the effects of the same receiver; ``paged`` are those that already paged alone."""

    explanation: Explanation
    paged: frozenset[str] = frozenset()

    @property
    def effect_keys(self) -> tuple[str, ...]:
        return tuple(str(item.effect.key) for item in self.explanation.links)


@dataclass(frozen=True, slots=True)
class Decision:
    away: frozenset[Slot] = frozenset()
    carries: Mapping[str, tuple[Carried, ...]] = field(default_factory=dict)
    explained: Mapping[Slot, Link] = field(default_factory=dict)
    wait_until: Mapping[str, float] = field(default_factory=dict)
    due: frozenset[str] = frozenset()

    def links(self) -> list[Link]:
        """Every link said or reported this round (once per effect)."""
        seen: dict[object, Link] = {}
        for item in self.explained.values():
            seen.setdefault((item.effect.key, item.cause.key), item)
        return list(seen.values())


def decide(members: Sequence[Member], now: float, graph: CauseGraph | None = None, *,
           hold: float = 0.0) -> Decision:
    """The placement of every member at ``now`` (see the module's rules)."""
    graph = graph or builtin_graph()
    signals: dict[object, Signal] = {}
    for m in members:
        known = signals.get(m.signal.key)
        if known is None or (known.until is None and m.signal.until is not None):
            signals[m.signal.key] = m.signal
    firing = [s for s in signals.values() if s.until is None]
    explanations = explain(link(signals.values(), firing, now, graph), graph)

    by_key: dict[object, list[Member]] = {}
    for m in members:
        by_key.setdefault(m.signal.key, []).append(m)

    away: set[Slot] = set()
    explained: dict[Slot, Link] = {}
    carries: dict[str, list[Carried]] = {}
    linked: set[object] = set()
    for x in explanations:
        for item in x.links:
            linked.add(item.effect.key)
            for m in by_key.get(item.effect.key, ()):
                explained[(m.group, m.fingerprint)] = item
        root_firing = x.cause.until is None
        # a cause that resolved holds its effects until its group said so ("still firing,
        # now on their own"): they page after that message, not before it
        holds = root_firing or any(m.said == "firing" for m in by_key.get(x.cause.key, ()))
        for receiver, home in _homes(by_key.get(x.cause.key, ()), root_firing).items():
            items, paged = [], set()
            for item in x.links:
                mine = [m for m in by_key.get(item.effect.key, ())
                        if m.receiver == receiver and m.moves and m.live]
                if not mine:
                    continue  # it goes elsewhere (it pages there as always) or is silenced
                items.append(item)
                for m in mine:
                    if m.said == "firing":
                        paged.add(m.fingerprint)  # it paged alone: its thread goes on
                    elif m.group != home and holds:
                        away.add((m.group, m.fingerprint))
            if items and (root_firing or any(m.firing for i in items
                                             for m in by_key.get(i.effect.key, ()))):
                carries.setdefault(home, []).append(
                    Carried(Explanation(x.cause, x.kind, tuple(items)), frozenset(paged)))

    for m in members:  # a cause whose effects all ended is still said as one, to the end
        if m.was_cause and m.moves and not any(c.explanation.cause.key == m.signal.key
                                               for c in carries.get(m.group, ())):
            kinds = [k for k in graph.kinds_of(m.signal)
                     if any(e.cause == k for e in graph.edges)]
            carries.setdefault(m.group, []).append(
                Carried(Explanation(m.signal, kinds[0] if kinds else "", ())))

    wait_until: dict[str, float] = {}
    effect_kinds = {edge.effect for edge in graph.edges}
    due: set[str] = set()
    for m in members:
        slot = (m.group, m.fingerprint)
        if not m.firing or not m.moves or slot in away:
            continue
        if m.said == "linked":
            due.add(m.group)  # its cause resolved (or went elsewhere): on its own now
        elif (m.said is None and m.live and m.signal.key not in linked
              and m.fired_at + (hold if m.hold is None else m.hold) > now
              and effect_kinds.intersection(graph.kinds_of(m.signal))):
            until = m.fired_at + (hold if m.hold is None else m.hold)
            wait_until[m.group] = max(wait_until.get(m.group, 0.0), until)
    return Decision(frozenset(away), {k: tuple(v) for k, v in carries.items()}, explained,
                    wait_until, frozenset(due))


def _homes(roots: Iterable[Member], firing: bool) -> dict[str, str]:
    """Per receiver, the group whose message says the root cause: the first (by key) where
    the cause is live; a resolved cause's groups all count (its resolution is always said)."""
    out: dict[str, str] = {}
    for m in sorted(roots, key=lambda m: m.group):
        if m.moves and (m.live or not firing) and m.said != "muted":
            out.setdefault(m.receiver, m.group)
    return out
