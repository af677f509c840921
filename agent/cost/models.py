"""Which model a GPU workload serves: the ``cost.models`` rules, then pods learnt from samples.

A sample that carries both a ``model`` and a ``pod`` tag (a model server's request counter
or an endpoint probe from an agent whose ``agent.tags`` name its pod, or an instance tagged
with it) says that pod serves that model: "endpoint labels". Rules come first, so a config
can always override what was learnt. What matches nothing is not a model ("other").
"""

from __future__ import annotations

import fnmatch
from collections import OrderedDict
from collections.abc import Sequence

from agent.cost.config import ModelRule
from agent.cost.usage import Workload

__all__ = ["ModelMatcher"]

MAX_LEARNT = 10_000


class ModelMatcher:
    def __init__(self, rules: Sequence[ModelRule]) -> None:
        self.rules = list(rules)
        self.learnt: OrderedDict[str, str] = OrderedDict()  # pod -> model, most recent last

    def learn(self, pod: str, model: str) -> None:
        if not pod or not model:
            return
        if self.learnt.get(pod) != model:
            self.learnt[pod] = model
        self.learnt.move_to_end(pod)
        while len(self.learnt) > MAX_LEARNT:
            self.learnt.popitem(last=False)

    def model_of_node(self, node: str) -> str | None:
        """A GPU nothing is seen holding serves a model only by a rule that names just its node
        (a node dedicated to one model, outside Kubernetes or without process visibility)."""
        for rule in self.rules:
            if rule.node is not None and not any((rule.pod, rule.namespace, rule.container, rule.process)) \
                    and fnmatch.fnmatchcase(node, rule.node):
                return rule.model
        return None

    def model_of(self, work: Workload, node: str) -> str | None:
        for rule in self.rules:
            if _rule_matches(rule, work, node):
                return rule.model
        return self.learnt.get(work.pod) if work.pod else None


def _rule_matches(rule: ModelRule, work: Workload, node: str) -> bool:
    for pattern, value in ((rule.pod, work.pod), (rule.namespace, work.namespace),
                           (rule.container, work.container), (rule.process, work.process),
                           (rule.node, node)):
        if pattern is not None and not fnmatch.fnmatchcase(value, pattern):
            return False
    return True
