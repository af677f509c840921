"""Which alerts explain which: :func:`link` pairs causes with effects, :func:`explain` groups
the pairs into one explanation per root cause.

Both are pure: no clock (``now`` is passed), no I/O, no state; the same alerts give the same
links. A cause explains an effect when the graph has an edge from one of the cause's kinds
to one of the effect's, every label equality of the edge holds (``same node gpu-node-7``),
and the effect started within the edge's window of the cause, before or after: which of the
two is *seen* first depends on poll intervals and ``for:`` delays, not on which happened
first. An edge with ``while_active`` also takes effects that start while the cause still
fires (runs stay late while a scheduler is down). Nothing matches on an empty or missing
label, so an alert that does not say where it runs is never linked.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from agent.causes.config import Condition
from agent.causes.graph import CauseGraph, Edge, builtin_graph
from agent.causes.model import Explanation, Link, Signal
from agent.durations import format_duration

__all__ = ["explain", "link", "same_host"]


def link(causes: Iterable[Signal], effects: Iterable[Signal], now: float,
         graph: CauseGraph | None = None) -> list[Link]:
    """Every (cause, effect) pair the graph explains at ``now``, with the reason.

    The two lists may hold the same alerts (pass every active alert as both): an alert never
    explains itself. One link per pair: the first edge (in the graph's order) that matches.
    """
    graph = graph or builtin_graph()
    by_kind: dict[str, list[Signal]] = {}  # effects by kind: a cause reads only its edges'
    for effect in effects:
        if effect.since <= now:
            for kind in graph.kinds_of(effect):
                by_kind.setdefault(kind, []).append(effect)
    # per edge, its effects by the value of its first equality, so a cause reads only the
    # effects that may share it (a fleet's thousand alerts are not each tried on each cause)
    indexes: dict[int, dict[str, list[tuple[int, Signal]]]] = {}
    out: list[Link] = []
    for cause in causes:
        found: dict[object, Link] = {}
        for edge in graph.edges_from(graph.kinds_of(cause)):
            index = indexes.get(id(edge))
            if index is None:
                index = indexes[id(edge)] = _index(edge, by_kind.get(edge.effect, ()))
            first = edge.same[0]
            seen: dict[int, Signal] = {}
            for name in first.cause:
                for value in _keys(cause.label(name), first.host):
                    seen.update(index.get(value, ()))
            for _, effect in sorted(seen.items(), key=lambda pair: pair[0]):
                if effect.key == cause.key or effect.key in found:
                    continue
                reason = _explains(edge, cause, effect, now)
                if reason is not None:
                    found[effect.key] = Link(cause, effect, edge.cause, edge.effect, reason)
        out.extend(found.values())
    return out


def _keys(value: str, host: bool) -> set[str]:
    """What a label value is filed under: itself, or for host names each host's short name
    (two names :func:`same_host` calls the same have the same short name)."""
    if not value:
        return set()
    return {h.split(".", 1)[0] for h in _hosts(value)} if host else {value}


def _index(edge: Edge, effects: Sequence[Signal]) -> dict[str, list[tuple[int, Signal]]]:
    """The effects of an edge's kind by the keys of its first equality, with their order."""
    first = edge.same[0]
    index: dict[str, list[tuple[int, Signal]]] = {}
    for i, effect in enumerate(effects):
        keys: set[str] = set()
        for name in first.effect:
            keys |= _keys(effect.label(name), first.host)
        for key in keys:
            index.setdefault(key, []).append((i, effect))
    return index


def _explains(edge: Edge, cause: Signal, effect: Signal, now: float) -> str | None:
    """Why ``cause`` explains ``effect`` through ``edge``, or None when it does not."""
    gap = effect.since - cause.since
    within = abs(gap) <= edge.window
    if not within and not (edge.while_active and gap > 0
                           and effect.since <= (cause.until or now)):
        return None
    said = []
    for condition in edge.same:
        words = _same(condition, cause, effect)
        if words is None:
            return None
        said.append(words)
    when = f"within {format_duration(edge.window)}" if within else "while it fired"
    return f"{' and '.join(said)} {when}"


def _same(condition: Condition, cause: Signal, effect: Signal) -> str | None:
    """The words of a label equality that holds ("same node gpu-node-7"), else None."""
    for c_name in condition.cause:
        c_value = cause.label(c_name)
        for e_name in condition.effect:
            e_value = effect.label(e_name)
            if not c_value or not e_value:
                continue
            if not (same_host(c_value, e_value) if condition.host else c_value == e_value):
                continue
            if c_name == e_name and c_value == e_value:
                return f"same {c_name} {c_value}"
            joint = "in" if condition.host and "," in e_value else "="
            return f"{c_name} {c_value} {joint} {e_name} {e_value}"
    return None


def same_host(a: str, b: str) -> str | None:
    """The host name ``a`` names that ``b`` also names, else None.

    Host names compare case-insensitively, without a trailing dot, and a short name equals its
    fully qualified form (Airflow records ``socket.getfqdn()``; Kubernetes nodes often have
    short names): ``gpu-7`` and ``GPU-7.example.com.`` are the same host. Either side may be a
    comma-separated list (a failed run's ``failed_hosts``); any common member is enough.
    """
    for x in _hosts(a):
        for y in _hosts(b):
            if x == y or ("." not in x and y.split(".", 1)[0] == x) or (
                    "." not in y and x.split(".", 1)[0] == y):
                return x
    return None


def _hosts(value: str) -> list[str]:
    return [h for h in (p.strip().lower().rstrip(".") for p in value.split(",")) if h]


def explain(links: Sequence[Link], graph: CauseGraph | None = None) -> list[Explanation]:
    """One explanation per root cause: each linked effect under the root of its chain.

    A cause that is itself explained (a model server down because its GPU fell off the bus)
    is not a root; its effects go under its root, joined by the link to their own cause. An
    effect with several causes takes the one whose root started first (then the nearer
    cause, then the fingerprint, so the choice is stable). Roots come in the order they
    started; effects too, those that started together in the graph's order of kinds
    (then by rule). Following causes stops at a signal already on the path, so an alert of two
    kinds that explain each other cannot loop.
    """
    by_effect: dict[object, list[Link]] = {}
    for item in links:
        by_effect.setdefault(item.effect.key, []).append(item)

    def chain(signal: Signal, seen: frozenset[object]) -> tuple[Signal, int]:
        """The root of ``signal`` and how many links away it is."""
        best: tuple[tuple[float, int, str], Signal, int] | None = None
        for item in by_effect.get(signal.key, ()):
            if item.cause.key in seen:
                continue
            root, hops = chain(item.cause, seen | {item.cause.key})
            rank = (root.since, hops, str(item.cause.key))
            if best is None or rank < best[0]:
                best = (rank, root, hops + 1)
        return (signal, 0) if best is None else (best[1], best[2])

    chosen: dict[object, tuple[Signal, Link]] = {}
    for key, candidates in by_effect.items():
        effect = candidates[0].effect
        ranked = []
        for item in candidates:
            root, hops = chain(item.cause, frozenset({key, item.cause.key}))
            ranked.append(((root.since, hops, str(item.cause.key)), root, item))
        _, root, item = min(ranked, key=lambda r: r[0])
        chosen[effect.key] = (root, item)
    roots: dict[object, tuple[Signal, str, list[Link]]] = {}
    for root, item in chosen.values():
        kind = item.cause_kind if item.cause.key == root.key else _root_kind(root, links)
        roots.setdefault(root.key, (root, kind, []))[2].append(item)
    order = {name: i for i, name in enumerate((graph or builtin_graph()).kinds)}
    out = []
    for root, kind, items in roots.values():
        items.sort(key=lambda i: (i.effect.since, order.get(i.effect_kind, len(order)),
                                  i.effect.rule, str(i.effect.key)))
        out.append(Explanation(root, kind, tuple(items)))
    out.sort(key=lambda e: (e.cause.since, str(e.cause.key)))
    return out


def _root_kind(root: Signal, links: Sequence[Link]) -> str:
    return next(i.cause_kind for i in links if i.cause.key == root.key)
