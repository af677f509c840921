"""Inhibition: a firing alert that matches a rule's source mutes the alerts matching its target
that share the ``equal`` labels (a NodeDown on gpu-3 mutes gpu-3's endpoint alerts).

As in Alertmanager, an alert never inhibits itself, and only firing alerts inhibit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from agent.alerting.config import InhibitRuleConfig

__all__ = ["Inhibitor", "InhibitRule"]


@dataclass(frozen=True)
class InhibitRule:
    source: tuple[tuple[str, str], ...]
    target: tuple[tuple[str, str], ...]
    equal: tuple[str, ...]

    @classmethod
    def from_config(cls, cfg: InhibitRuleConfig) -> "InhibitRule":
        return cls(
            tuple(sorted(cfg.source_match.items())),
            tuple(sorted(cfg.target_match.items())),
            cfg.equal,
        )

    def describe(self) -> str:
        src = ",".join(f"{k}={v}" for k, v in self.source)
        tgt = ",".join(f"{k}={v}" for k, v in self.target)
        return f"{src} inhibits {tgt}" + (
            f" (equal: {', '.join(self.equal)})" if self.equal else ""
        )


def _has(labels: Mapping[str, str], pairs: tuple[tuple[str, str], ...]) -> bool:
    return all(labels.get(k, "") == v for k, v in pairs)


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
