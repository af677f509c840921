"""Driving the rule evaluator with series written as tables."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from agent.rules.config import RuleConfig, RulesEngineConfig
from agent.rules.evaluator import RuleEvaluator
from agent.samples import Sample, make_tags

GAUGE = "mlwarden.check.duration"        # a gauge in the agent's own catalog
STATUS = "mlwarden.check.status"         # a gauge
COUNT = "mlwarden.check.runs"            # a count (deltas)
MONO = "mlwarden.agent.cpu.time"         # a monotonic_count (running total)
TAGS = make_tags({"check": "ranker", "check_type": "model_endpoint"})


def rule(**fields: Any) -> RuleConfig:
    base: dict[str, Any] = {"alert": "TestAlert", "metric": GAUGE}
    base.update(fields)
    return RuleConfig.model_validate(base)


def drive(rules: Sequence[RuleConfig] | RuleConfig, points: Iterable[tuple[float, float | None]],
          *, tags=TAGS, metric: str | None = None, settings: RulesEngineConfig | None = None,
          evaluator: RuleEvaluator | None = None) -> list[tuple[float, str, str]]:
    """Feed ``(t, value)`` samples (``None``: no sample, only a timer tick at t).

    Returns every public transition as ``(t, from, to)``.
    """
    rules = [rules] if isinstance(rules, RuleConfig) else list(rules)
    ev = evaluator or RuleEvaluator(rules, settings or RulesEngineConfig(), started=0.0)
    out: list[tuple[float, str, str]] = []
    for t, value in points:
        if value is None:
            ev.tick(t)
        else:
            name = metric or rules[0].metric
            ev.evaluate(ev.ingest([Sample(name, value, tags, t)]), t)
        changes, _ = ev.drain()
        out.extend((c.at, c.previous.value, c.state.value) for c in changes)
    return out


def states(transitions: list[tuple[float, str, str]]) -> list[str]:
    return [f"{a}->{b}" for _, a, b in transitions]
