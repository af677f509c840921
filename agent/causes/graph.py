"""The cause graph: kinds of alerts, and which kind explains which, ready to match.

Built once per config from the graph shipped with the agent (``agent/data/causes.yaml``)
and the ``causes:`` section on top of it: a user's kind of a shipped name adds its alerts
and phrases to the shipped ones; a user's edge of a shipped cause and effect replaces the
shipped edge (``enabled: false`` drops it). The result is immutable; reload builds a new one.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import yaml
from pydantic import ValidationError

from agent.causes.config import CausesConfig, Condition, KindConfig, reference_problems
from agent.causes.model import Signal
from agent.tagmatch import TagMatcher, parse_tag_matcher

__all__ = ["CauseGraph", "Edge", "Kind", "Phrase", "builtin_config", "builtin_graph"]

BUILTIN = "causes.yaml"  # in agent/data/
DEFAULT_WINDOW = 600.0


def _matchers(spec: Mapping[str, str]) -> tuple[TagMatcher, ...]:
    return tuple(parse_tag_matcher(k, v) for k, v in sorted(spec.items()))


def _all(matchers: tuple[TagMatcher, ...], signal: Signal) -> bool:
    return all(m.matches(signal.label(m.name)) for m in matchers)


@dataclass(frozen=True, slots=True)
class Phrase:
    text: str
    when: tuple[TagMatcher, ...]
    fields: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Kind:
    """A kind of alert: the alerts it is (any selector matching), and how to say one."""

    name: str
    description: str
    selectors: tuple[tuple[TagMatcher, ...], ...]
    says: tuple[Phrase, ...]

    def matches(self, signal: Signal) -> bool:
        return any(_all(selector, signal) for selector in self.selectors)

    def phrase(self, signal: Signal) -> Phrase | None:
        """The first phrase that fits the signal: its ``when`` matches and it has every label
        the text names (and a summary, for ``{summary}``)."""
        for phrase in self.says:
            if _all(phrase.when, signal) and all(_has(signal, f) for f in phrase.fields):
                return phrase
        return None


def _exact_rule(selector: tuple[TagMatcher, ...]) -> str | None:
    """The rule a selector names with ``alert: Name`` (None: it may match other rules)."""
    for matcher in selector:
        if matcher.name == "alert" and matcher.op == "=":
            return matcher.value
    return None


def _has(signal: Signal, field: str) -> bool:
    if field == "since":
        return True
    return bool(signal.summary if field == "summary" else signal.label(field))


@dataclass(frozen=True, slots=True)
class Edge:
    """Alerts of kind ``cause`` explain alerts of kind ``effect`` that share the ``same``
    labels and start within ``window`` of the cause (or while it fires, ``while_active``)."""

    cause: str
    effect: str
    same: tuple[Condition, ...]
    window: float
    while_active: bool = False


class CauseGraph:
    """Kinds by name and edges in their declared order (the first matching edge gives a
    link its reason)."""

    def __init__(self, kinds: Mapping[str, Kind], edges: Iterable[Edge]) -> None:
        self.kinds = dict(kinds)
        self.edges = tuple(edges)
        # which kinds an alert of a rule can be: most selectors name their rule exactly
        # (``alert: GpuDown``), so an alert is tried only against the kinds that name its
        # rule and those with a selector that does not (a pattern, or no ``alert``)
        self._open: tuple[tuple[str, Kind], ...] = ()
        self._by_rule: dict[str, tuple[tuple[str, Kind], ...]] = {}
        named: dict[str, set[str]] = {}
        for name, kind in self.kinds.items():
            rules = {_exact_rule(selector) for selector in kind.selectors}
            if None in rules:
                self._open += ((name, kind),)
            else:
                named[name] = {r for r in rules if r is not None}
        for rule in set().union(*named.values()):
            self._by_rule[rule] = tuple((n, k) for n, k in self.kinds.items()
                                        if n not in named or rule in named[n])

    @classmethod
    def build(cls, config: CausesConfig | None = None) -> CauseGraph:
        """The graph of a ``causes:`` section (None: the shipped graph alone)."""
        config = config or CausesConfig()
        shipped = builtin_config() if config.builtin else CausesConfig(builtin=False)
        window = config.window or shipped.window or DEFAULT_WINDOW
        specs: dict[str, KindConfig] = dict(shipped.kinds)
        for name, own in config.kinds.items():
            base = specs.get(name)
            specs[name] = own if base is None else KindConfig(
                description=own.description or base.description,
                alerts=base.alerts + own.alerts, says=own.says + base.says)
        kinds = {name: _kind(name, spec) for name, spec in specs.items()}
        mine = {e.pair for e in config.explains}
        chosen = [e for e in shipped.explains if e.pair not in mine] + list(config.explains)
        edges = [Edge(e.cause, e.effect, e.same, float(e.window or window), e.while_active)
                 for e in chosen if e.enabled]
        return cls(kinds, edges)

    def kinds_of(self, signal: Signal) -> tuple[str, ...]:
        """Names of the kinds the signal is (usually one; none for most alerts), in the
        graph's order."""
        candidates = self._by_rule.get(signal.rule, self._open)
        return tuple(name for name, kind in candidates if kind.matches(signal))

    def edges_from(self, causes: Iterable[str]) -> Iterator[Edge]:
        """The edges out of these kinds, in the graph's order."""
        wanted = set(causes)
        return (edge for edge in self.edges if edge.cause in wanted)


def _kind(name: str, spec: KindConfig) -> Kind:
    phrases = tuple(
        Phrase(p.text, _matchers(p.when),
               tuple(f for _, f, _, _ in string.Formatter().parse(p.text) if f))
        for p in spec.says)
    return Kind(name, spec.description, tuple(_matchers(s) for s in spec.alerts), phrases)


@lru_cache(maxsize=1)
def builtin_config() -> CausesConfig:
    """The graph shipped with the agent, validated like a user's ``causes:`` section.

    A problem here is a broken package, not a user error: it raises, and
    tests/causes/test_graph.py keeps the file valid.
    """
    where = f"agent/data/{BUILTIN}"
    text = resources.files("agent").joinpath("data", BUILTIN).read_text(encoding="utf-8")
    try:
        raw = yaml.safe_load(text) or {}
        config = CausesConfig.model_validate(raw, context={"references_checked": True})
    except (yaml.YAMLError, ValidationError) as exc:
        raise RuntimeError(f"{where} is invalid: {exc}") from None
    problems = reference_problems({**raw, "builtin": False}, where=where)
    if problems:
        raise RuntimeError(f"{where} is invalid: {'; '.join(problems)}")
    return config


@lru_cache(maxsize=1)
def builtin_graph() -> CauseGraph:
    return CauseGraph.build(None)
