"""The ``causes:`` config: what the user adds to the cause graph shipped with the agent.

The shipped graph (``agent/data/causes.yaml``) is written in this same shape and validated by
these models, so a user's section reads like the file it extends. Example::

    causes:
      window: 15m                       # default window of every edge without its own
      kinds:
        gpu_fault:                      # a shipped kind: these alerts join it
          alerts: [{alert: MyXidRule}]
        batch_scoring_failed:           # a new kind
          alerts: [{alert: BatchScoringErrors}]
          says: ["batch scoring on {node} failing since {since}"]
      explains:
        - {cause: gpu_fault, effect: batch_scoring_failed, same: [node]}

YAML 1.1 reads a key ``on`` as ``true``, so label equalities are written ``same:``.
"""

from __future__ import annotations

import difflib
import re
import string
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from agent.durations import Duration
from agent.tagmatch import parse_tag_matcher

__all__ = ["CausesConfig", "Condition", "EdgeConfig", "KindConfig", "Phrase", "reference_problems",
           "unknown_rule_warnings"]

_KIND = r"^[a-z][a-z0-9_]*$"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _labels(value: Any) -> Any:
    return (value,) if isinstance(value, str) else value


class Condition(_Model):
    """A label equality between a cause and an effect (any label of one equals any of the other).

    Written ``node`` (the same label on both) or ``{cause: [node, pod], effect: hostname,
    host: true}``.
    """

    cause: tuple[str, ...] = Field(min_length=1, description="Labels of the cause.")
    effect: tuple[str, ...] = Field(
        min_length=1, description="Labels of the effect (default: the cause's).")
    host: bool = Field(
        False,
        description="Compare as host names: case-insensitive, `gpu-7` equals `gpu-7.example.com`, "
        "and a value may be a comma-separated list (a failed run's `failed_hosts`).",
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, str):  # `node`: the same label on both
            return {"cause": (value,), "effect": (value,)}
        if isinstance(value, Mapping):
            out = {**value, **{k: _labels(value[k]) for k in ("cause", "effect") if k in value}}
            if "effect" not in out and "cause" in out:
                out["effect"] = out["cause"]
            return out
        return value

    @field_validator("cause", "effect")
    @classmethod
    def _names(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        for name in names:
            if not _NAME.match(name):
                raise ValueError(f"expected label names (letters, digits, _), found {name!r}")
        return names


class Phrase(_Model):
    """How an alert of a kind is said in a linked message.

    The first phrase whose ``when`` matches and whose every ``{label}`` the alert has is used.
    """

    text: str = Field(
        min_length=1,
        description="Template over the alert's labels, `{alert}` (the rule), `{since}` (when "
        "it started, HH:MM) and `{summary}`.",
    )
    when: dict[str, str] = Field(
        default_factory=dict,
        description="Matchers over the labels (`alert` is the rule name), as a rule's `where:`.",
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"text": value} if isinstance(value, str) else value

    @field_validator("text")
    @classmethod
    def _template(cls, text: str) -> str:
        try:
            fields = [(f, spec, conv) for _, f, spec, conv in string.Formatter().parse(text)
                      if f is not None]
        except ValueError as exc:
            raise ValueError(f"invalid template ({exc}); write literal braces as {{{{ and }}}}, "
                             f"found {text!r}") from None
        for name, spec, conv in fields:
            if not _NAME.match(name) or spec or conv:
                shown = name + (f"!{conv}" if conv else "") + (f":{spec}" if spec else "")
                raise ValueError(f"a phrase names labels only, like {{node}}, found "
                                 f"{{{shown}}} in {text!r}")
        return text

    @field_validator("when")
    @classmethod
    def _matchers(cls, value: dict[str, str]) -> dict[str, str]:
        return _check_matchers(value)


def _check_matchers(value: dict[str, str]) -> dict[str, str]:
    for name, spec in value.items():
        try:
            parse_tag_matcher(name, spec)
        except ValueError as exc:
            raise ValueError(f"label {name!r}: {exc}, found {spec!r}") from None
    return value


class KindConfig(_Model):
    """A kind of alert in the cause graph: which alerts it is, and how to say one."""

    description: str = Field("", description="What this kind of alert means.")
    alerts: tuple[dict[str, str], ...] = Field(
        default=(),
        description="Alerts of this kind: matchers over an alert's labels, `alert` being the "
        "rule name (`{alert: GpuDown}`, `{alert: AirflowComponentUnhealthy, component: "
        "metadatabase}`), in the spelling of a rule's `where:`. Any one matching is enough.",
    )
    says: tuple[Phrase, ...] = Field(
        default=(),
        description="How a linked message says an alert of this kind (else: its summary).",
    )

    @field_validator("alerts")
    @classmethod
    def _selectors(cls, value: tuple[dict[str, str], ...]) -> tuple[dict[str, str], ...]:
        for i, selector in enumerate(value):
            if not selector:
                raise ValueError(f"alerts[{i}] would match every alert: name the rule "
                                 "(`alert: GpuDown`) or its labels, found an empty mapping")
            _check_matchers(selector)
        return value


class EdgeConfig(_Model):
    """One edge of the graph: alerts of kind `cause` explain alerts of kind `effect`."""

    cause: str = Field(pattern=_KIND, description="The kind that explains.")
    effect: str = Field(pattern=_KIND, description="The kind it explains.")
    same: tuple[Condition, ...] = Field(
        min_length=1,
        description="Label equalities that must all hold (same node, GPU, host, check): without "
        "one, every cause anywhere would explain every effect.",
    )
    window: Duration | None = Field(
        None, gt=0,
        description="How far apart the two may start (either way: detection delays differ); "
        "default: the graph's `window`.",
    )
    while_active: bool = Field(
        False,
        description="Also explain effects that start while the cause is still firing (a "
        "scheduler that is down delays every run until it is back).",
    )
    enabled: bool = Field(
        True, description="false: drop the shipped edge of this cause and effect.")

    @model_validator(mode="before")
    @classmethod
    def _not_on(cls, value: Any) -> Any:
        if isinstance(value, Mapping) and True in value:  # `on:` as YAML 1.1 reads it
            raise ValueError("YAML reads the key `on` as true: write the label equalities as "
                             "`same:`, found on:")
        return value

    @property
    def pair(self) -> tuple[str, str]:
        return (self.cause, self.effect)


class CausesConfig(_Model):
    """Cause graph: which alerts explain which (docs/alerting.md)."""

    enabled: bool = Field(True, description="false: never link alerts to causes.")
    builtin: bool = Field(
        True, description="Start from the graph shipped with the agent (agent/data/causes.yaml).",
    )
    window: Duration | None = Field(
        None, gt=0,
        description="Window of every edge without its own (the shipped graph's is `10m`).",
    )
    hold: Duration | None = Field(
        None, ge=0,
        description="How long an alert that a cause could explain waits for that cause before "
        "it pages on its own, counted from when it fired. Default: its route's `group_wait` "
        "(which it waits anyway, so holding costs no time). `0s`: never wait; a cause that "
        "comes later still lists it.",
    )
    kinds: dict[str, KindConfig] = Field(
        default_factory=dict,
        description="Kinds to add, or to extend: a shipped kind's `alerts` and `says` grow by "
        "these (your phrases first).",
    )
    explains: tuple[EdgeConfig, ...] = Field(
        default=(),
        description="Edges to add; one naming a shipped cause and effect replaces that edge.",
    )

    @field_validator("kinds")
    @classmethod
    def _kind_names(cls, kinds: dict[str, KindConfig]) -> dict[str, KindConfig]:
        for name in kinds:
            if not re.match(_KIND, name):
                raise ValueError(f"kind names are lower-case letters, digits and _, found {name!r}")
        return kinds

    @model_validator(mode="after")
    def _references(self, info: ValidationInfo) -> CausesConfig:
        if info.context and info.context.get("references_checked"):
            return self  # parse_config reports each one with its path, from the raw file
        problems = reference_problems(self.model_dump(), where="causes")
        if problems:
            raise ValueError("; ".join(problems))
        return self


def reference_problems(raw: Any, where: str = "causes") -> list[str]:
    """Every edge naming a kind that does not exist, and any cycle, each with its key path.

    Reads the raw mapping (what has the wrong shape is validation's to report), so config
    loading can name ``causes.explains[2].cause`` exactly. A cycle is refused because "the
    cause first" would have no first.
    """
    if not isinstance(raw, Mapping):
        return []
    from agent.causes.graph import builtin_config  # the shipped file is validated by this module

    shipped = builtin_config() if raw.get("builtin", True) is not False else None
    kinds = set(shipped.kinds) if shipped else set()
    own = raw.get("kinds") or {}
    if isinstance(own, Mapping):
        kinds |= {k for k in own if isinstance(k, str)}
    problems: list[str] = []
    edges: list[tuple[str, str, bool]] = []
    explains = raw.get("explains") or ()
    for i, edge in enumerate(explains if isinstance(explains, (list, tuple)) else ()):
        if not isinstance(edge, Mapping):
            continue
        ok = True
        for end in ("cause", "effect"):
            name = edge.get(end)
            if isinstance(name, str) and name not in kinds:
                ok = False
                close = difflib.get_close_matches(name, sorted(kinds), n=1, cutoff=0.6)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                problems.append(f"{where}.explains[{i}].{end}: unknown kind{hint}; kinds: "
                                f"{', '.join(sorted(kinds)) or 'none'}; found {name!r}")
        if ok and isinstance(edge.get("cause"), str) and isinstance(edge.get("effect"), str):
            edges.append((edge["cause"], edge["effect"], edge.get("enabled", True) is not False))
    if problems:
        return problems
    replaced = {(c, e) for c, e, _ in edges}
    arrows = [(c, e) for c, e, on in edges if on]
    if shipped:
        arrows += [e.pair for e in shipped.explains if e.enabled and e.pair not in replaced]
    cycle = find_cycle(arrows)
    if cycle:
        problems.append(f"{where}.explains: the graph has a cycle ({' -> '.join(cycle)}): "
                        "a cause cannot be explained by what it explains; drop one of its edges")
    return problems


def find_cycle(arrows: Iterable[tuple[str, str]]) -> list[str]:
    """One cycle of the directed graph as its path (first node repeated at the end), or []."""
    succ: dict[str, list[str]] = {}
    for cause, effect in arrows:
        succ.setdefault(cause, []).append(effect)
    state: dict[str, int] = {}  # 1: on the current path; 2: done

    def visit(node: str, path: list[str]) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in succ.get(node, ()):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt, path)):
                return found
        path.pop()
        state[node] = 2
        return []

    for node in sorted(succ):
        if node not in state and (found := visit(node, [])):
            return found
    return []


def unknown_rule_warnings(causes: CausesConfig, rules: Iterable[str]) -> list[str]:
    """A kind you added that names a rule by its exact name, when no loaded rule has it.

    Legal (the rule may come with the next reload), but most often a typo, which would leave
    the kind without alerts and its edges without effect. Shipped kinds are not checked: they
    name the shipped packs' rules, which a config need not load.
    """
    names = set(rules)
    out = []
    for kind, spec in causes.kinds.items():
        for i, selector in enumerate(spec.alerts):
            wanted = selector.get("alert")
            if wanted is None or parse_tag_matcher("alert", wanted).op != "=" or wanted in names:
                continue
            close = difflib.get_close_matches(wanted, sorted(names), n=1, cutoff=0.8)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            out.append(f"causes.kinds.{kind}.alerts[{i}]: no loaded rule is named {wanted!r}"
                       f"{hint}; this entry matches no alert")
    return out
