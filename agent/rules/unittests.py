"""Rule unit tests in the shape of ``promtool test rules``: expected alerts per evaluation time.

A test file names the rules (``rule_files``, ``builtin:`` packs included, and/or inline
``rules``) and a list of tests; each test replays one recorded CSV (the ``rules test
--data`` format) and says which alerts must be active at which times::

    rule_files: [builtin:agent]
    evaluation_interval: 15s
    tests:
      - name: ranker cannot run
        data: samples.csv               # relative to this file
        alert_rule_test:
          - eval_time: 4m               # after the first sample; or an ISO 8601 time
            alertname: CheckCannotRun
            exp_alerts:
              - exp_labels: {check: ranker, check_type: model_endpoint, cause: agent, severity: warning}
                exp_annotations: {summary: "check ranker cannot run (UNKNOWN) for 2m: ..."}
          - eval_time: 10m
            alertname: CheckCannotRun
            exp_alerts: []              # resolved by then

An alert is listed when it is firing (or flapping, which is firing that changes too often)
at ``eval_time``; pending alerts are not, as in promtool. ``exp_labels`` must equal the
alert's labels (its series' tags, the rule's ``labels`` and ``severity``; ``alertname`` is
implied); ``exp_annotations``, when given, must equal its rendered templates. The replay
also evaluates at every ``eval_time``, so a ``for`` that runs out between two samples is
seen at the time it runs out.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from agent.durations import Duration, parse_duration
from agent.errors import ConfigError
from agent.rules.config import RuleConfig, RulesEngineConfig
from agent.rules.files import include_rule_files
from agent.rules.replay import ReplayedTransition, parse_time, read_samples_csv, replay
from agent.yamlconf import format_errors, parse_yaml, substitute

__all__ = ["CaseResult", "RuleTestFile", "is_test_file", "load_test_file", "run_test_file"]

ACTIVE = ("firing", "flapping")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ExpectedAlert(_Model):
    exp_labels: dict[str, str] = Field(default_factory=dict)
    exp_annotations: dict[str, str] | None = None


class AlertCase(_Model):
    eval_time: str = Field(..., description="A duration after the first sample, or an ISO 8601 time.")
    alertname: str
    exp_alerts: tuple[ExpectedAlert, ...] = ()

    @field_validator("eval_time", mode="before")
    @classmethod
    def _time(cls, value: Any) -> str:
        text = str(value)
        try:
            parse_duration(value)
        except ValueError:
            try:
                parse_time(text)
            except ValueError:
                raise ValueError("expected a duration after the first sample (like '4m') or an "
                                 f"ISO 8601 time, found {value!r}") from None
        return text


class RuleTest(_Model):
    name: str = ""
    data: str = Field(..., description="CSV recording, relative to the test file.")
    until: Duration | None = None
    alert_rule_test: tuple[AlertCase, ...] = ()


class RuleTestFile(_Model):
    rule_files: tuple[str, ...] = ()
    rules: tuple[dict[str, Any], ...] = ()
    evaluation_interval: Duration | None = None
    tests: tuple[RuleTest, ...] = Field(..., min_length=1)


@dataclass(frozen=True)
class CaseResult:
    test: str
    alertname: str
    eval_time: str
    at: float
    expected: list[dict[str, Any]]
    got: list[dict[str, Any]]

    @property
    def ok(self) -> bool:
        return _canon(self.expected) == _canon(self.got)

    def diff(self) -> list[str]:
        """A unified diff, expected versus got, one alert per line."""
        import difflib

        exp = [json.dumps(a, sort_keys=True) for a in _canon(self.expected)]
        got = [json.dumps(a, sort_keys=True) for a in _canon(self.got)]
        context = len(exp) + len(got)  # the whole lists: they are short
        return list(difflib.unified_diff(exp, got, "expected", "got", lineterm="", n=context))


def _canon(alerts: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(alerts, key=lambda a: json.dumps(a, sort_keys=True))


def is_test_file(raw: Any) -> bool:
    return isinstance(raw, dict) and "tests" in raw


def load_test_file(path: str | Path) -> tuple[RuleTestFile, list[RuleConfig], RulesEngineConfig]:
    """The test file, its rules and engine settings; ConfigError listing every problem."""
    source = str(path)
    try:
        raw = parse_yaml(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(source, [f"cannot read the file: {exc.strerror or exc}"]) from None
    except ValueError as exc:
        raise ConfigError(source, [str(exc)]) from None
    try:
        spec = RuleTestFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(source, format_errors(exc, (), RuleTestFile)) from None
    rules, settings = _rules_of(spec, source, Path(path).parent)
    return spec, rules, settings


def _rules_of(spec: RuleTestFile, source: str,
              base_dir: Path) -> tuple[list[RuleConfig], RulesEngineConfig]:
    """The rules a test file names, read as the config reads its ``rules``, ``rule_files`` and
    ``rules_engine`` (same substitution, same key paths, same duplicate check)."""
    problems: list[str] = []
    raw = substitute({"rules": list(spec.rules), "rule_files": list(spec.rule_files)},
                     os.environ, (), problems)
    unset = {p.split(":", 1)[0] for p in problems}  # their bad value is not said again
    invalid: list[str] = []
    inline: list[RuleConfig] = []
    for i, item in enumerate(raw["rules"]):
        try:
            inline.append(RuleConfig.model_validate(item))
        except ValidationError as exc:
            invalid.extend(format_errors(exc, ("rules", i), RuleConfig))
    settings = RulesEngineConfig()
    if spec.evaluation_interval is not None:
        try:
            settings = RulesEngineConfig(evaluation_interval=spec.evaluation_interval)
        except ValidationError as exc:
            invalid.extend(format_errors(exc, ("rules_engine",), RulesEngineConfig))
    problems.extend(p for p in invalid if p.split(":", 1)[0] not in unset)
    rules = include_rule_files(() if invalid else inline, raw["rule_files"], base_dir, problems)
    if problems:
        raise ConfigError(source, problems)
    if not rules:
        raise ConfigError(source, ["rule_files, rules: the test file names no rules"])
    return list(rules), settings


def run_test_file(path: str | Path) -> list[CaseResult]:
    """Every case of every test; ConfigError for the file, DataError for a recording."""
    spec, rules, settings = load_test_file(path)
    base = Path(path).parent
    results: list[CaseResult] = []
    for n, test in enumerate(spec.tests):
        name = test.name or f"tests[{n}]"
        samples = read_samples_csv(base / test.data)
        start = min((s.timestamp for s in samples), default=0.0)
        times = [_at(case.eval_time, start) for case in test.alert_rule_test]
        end = max([s.timestamp for s in samples] + times, default=start)
        until = end + (test.until or 0.0)
        transitions = replay(rules, samples, settings, until, checkpoints=times)
        for case, at in zip(test.alert_rule_test, times):
            expected = [{"labels": dict(e.exp_labels),
                         **({"annotations": dict(e.exp_annotations)}
                            if e.exp_annotations is not None else {})}
                        for e in case.exp_alerts]
            shown_annotations = [e.exp_annotations is not None for e in case.exp_alerts]
            got = active_at(transitions, case.alertname, at,
                            with_annotations=any(shown_annotations) or not case.exp_alerts)
            if not any(shown_annotations):
                got = [{"labels": a["labels"]} for a in got]
            results.append(CaseResult(name, case.alertname, case.eval_time, at, expected, got))
    return results


def _at(eval_time: str, start: float) -> float:
    try:
        return start + parse_duration(eval_time)
    except ValueError:
        return parse_time(eval_time)


def active_at(transitions: Sequence[ReplayedTransition], alertname: str, at: float, *,
              with_annotations: bool = True) -> list[dict[str, Any]]:
    """The alerts of ``alertname`` firing (or flapping) at ``at``: the last transition of
    each label set at or before that time decides."""
    last: dict[str, ReplayedTransition] = {}
    for t in transitions:
        if t.rule == alertname and t.at <= at + 1e-9:
            last[json.dumps(t.labels, sort_keys=True)] = t
    out = []
    for t in last.values():
        if t.state in ACTIVE:
            alert: dict[str, Any] = {"labels": dict(t.labels)}
            if with_annotations:
                alert["annotations"] = dict(t.annotations)
            out.append(alert)
    return out
