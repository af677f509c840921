"""Inhibition: a firing alert that matches a rule's source mutes the alerts matching its target
that share the ``equal`` labels (a NodeDown on gpu-3 mutes gpu-3's endpoint alerts).

As in Alertmanager, an alert never inhibits itself, and only firing alerts inhibit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from agent.alerting.config import InhibitRuleConfig
from agent.alerting.matchers import LabelMatcher, parse_label_matchers

__all__ = ["Inhibitor", "InhibitRule"]


@dataclass(frozen=True)
class InhibitRule:
    source: tuple[LabelMatcher, ...]
    target: tuple[LabelMatcher, ...]
    equal: tuple[str, ...]

    @classmethod
    def from_config(cls, cfg: InhibitRuleConfig) -> "InhibitRule":
        def side(match: Mapping[str, str], matchers: tuple[str, ...]) -> tuple[LabelMatcher, ...]:
            return tuple(LabelMatcher(k, "=", v) for k, v in sorted(match.items())) + tuple(
                m for text in matchers for m in parse_label_matchers(text))

        return cls(side(cfg.source_match, cfg.source_matchers),
                   side(cfg.target_match, cfg.target_matchers), cfg.equal)

    def describe(self) -> str:
        src = ",".join(map(str, self.source))
        tgt = ",".join(map(str, self.target))
        return f"{src} inhibits {tgt}" + (
            f" (equal: {', '.join(self.equal)})" if self.equal else ""
        )


def _has(labels: Mapping[str, str], matchers: tuple[LabelMatcher, ...]) -> bool:
    return all(m.matches(labels) for m in matchers)


class Inhibitor:
    """Decides whether a target alert is muted by any of the currently firing alerts."""

    def __init__(self, rules: Iterable[InhibitRuleConfig]) -> None:
        self.rules = [InhibitRule.from_config(r) for r in rules]

    def muted_by(
        self, labels: Mapping[str, str], firing: Iterable[Mapping[str, str]]
    ) -> tuple[InhibitRule, Mapping[str, str]] | None:
        """The rule and source alert that mute ``labels``, or None."""
        candidates = [r for r in self.rules if _has(labels, r.target)]
        if not candidates:
            return None
        for source in firing:
            if source == labels:
                continue
            for rule in candidates:
                if _has(source, rule.source) and all(
                    source.get(e, "") == labels.get(e, "") for e in rule.equal
                ):
                    return rule, source
        return None
