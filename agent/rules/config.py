"""The ``rules:`` config: one alert rule per entry, validated against the metric catalog.

A rule names a catalog metric, selects series with tag matchers, reduces a window of each
series to one number (``aggregate`` over ``window``), compares it with ``threshold`` and
holds that verdict steady with ``for``, ``recover`` (hysteresis) and ``keep_firing_for``.
An ``absent`` rule instead fires when a series (or the whole selector) has been silent.
A metric the catalog does not declare is a config error, so a typo in a rule can never
leave an alert that silently never fires.

Example::

    rules:
      - alert: EndpointDown
        metric: mlwarden.endpoint.up
        where: {model: ranker, env: "!=dev"}
        op: "<"
        threshold: 1
        for: 1m
        severity: critical
        summary: "{model} is down"
        annotations: {runbook_url: "https://runbooks.example/{model}", team: ml-platform}
"""

from __future__ import annotations

import difflib
import re
import string
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from agent.durations import Duration, format_duration
from agent.tagmatch import parse_tag_matcher

__all__ = ["AGGREGATES", "OPS", "RuleConfig", "RulesEngineConfig"]

Aggregate = Literal[
    "last", "avg", "min", "max", "sum", "count", "p50", "p90", "p95", "p99", "rate", "increase"
]
AGGREGATES: tuple[str, ...] = Aggregate.__args__  # type: ignore[attr-defined]
Op = Literal["<", "<=", ">", ">=", "==", "!="]
OPS: tuple[str, ...] = Op.__args__  # type: ignore[attr-defined]
_TEMPLATE_FIELDS = ("summary", "description", "runbook_url", "dashboard_url")
_ANNOTATION = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class RuleConfig(_Model):
    """One alert rule: which series, what number, when it is wrong, what to say."""

    alert: str = Field(
        min_length=1, max_length=200, pattern=r"^[A-Za-z_][A-Za-z0-9_.:-]*$",
        description="Rule name; alerts carry it as `alert`.",
    )
    metric: str = Field(description="Catalog metric name (e.g. `mlwarden.endpoint.up`).")
    where: dict[str, str] = Field(
        default_factory=dict,
        description="Tag matchers: `x` equals, `!=x`, `=~regex`, `!~regex`, or a glob with * or ?.",
    )
    aggregate: Aggregate = Field(
        "last", description="How the window of each series becomes one number."
    )
    window: Duration = Field(
        0.0, ge=0, description="Span of samples the aggregate reads (0: the latest sample only)."
    )
    op: Op | None = Field(None, description="Comparison of the aggregate with `threshold`.")
    threshold: float | None = Field(None, description="The value the aggregate is compared with.")
    recover: float | None = Field(
        None,
        description="Hysteresis: once active, the alert resolves only when the value passes "
        "back beyond this level (e.g. fire above 0.9, resolve below 0.8).",
    )
    for_: Duration = Field(
        0.0, ge=0, alias="for",
        description="How long the condition must hold before the alert fires (pending until then).",
    )
    keep_firing_for: Duration = Field(
        0.0, ge=0, description="How long a firing alert stays firing after the condition clears."
    )
    absent: Duration | None = Field(
        None, gt=0,
        description="Instead of op/threshold: fire when no sample arrived for this long.",
    )
    absent_intervals: int | None = Field(
        None, ge=1,
        description="Instead of op/threshold: fire when a series missed this many of its own "
        "sampling intervals (measured from its recent samples; `absent` is then the minimum).",
    )
    severity: Literal["critical", "warning", "info"] = Field(
        "warning", description="How bad; a label routes can match on."
    )
    labels: dict[str, str] = Field(
        default_factory=dict, description="Extra labels on every alert of this rule."
    )
    group_by: tuple[str, ...] | None = Field(
        None,
        description="Tags that identify one alert (default: every tag of the series). Series "
        "of a group combine: sum/count/rate/increase add up, the others take the worst series.",
    )
    summary: str = Field("", description="Template: tags, {value}, {threshold}, {for}, {alert}.")
    description: str = Field("", description="Template, like `summary`.")
    runbook_url: str = Field("", description="Template, like `summary`.")
    dashboard_url: str = Field("", description="Template, like `summary`.")
    annotations: dict[str, str] = Field(
        default_factory=dict,
        description="Free-form annotations sent with every alert of the rule, as in "
        "Prometheus rules (e.g. `team`, `playbook_url`); each value is a template like `summary`.",
    )

    @field_validator("metric")
    @classmethod
    def _in_catalog(cls, value: str) -> str:
        from agent.catalog import load_catalog

        catalog = load_catalog()
        if value not in catalog:
            names = [spec.name for spec in catalog]
            close = difflib.get_close_matches(value, names, n=1, cutoff=0.8)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(
                f"unknown metric{hint}: rules may only use metrics declared in a metadata.csv "
                f"(the metric catalog), found {value!r}"
            )
        return value

    @field_validator("where")
    @classmethod
    def _matchers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, spec in value.items():
            try:
                parse_tag_matcher(name, spec)
            except ValueError as exc:
                raise ValueError(f"tag {name!r}: {exc}, found {spec!r}") from None
        return value

    @field_validator(*_TEMPLATE_FIELDS)
    @classmethod
    def _template(cls, value: str) -> str:
        try:
            list(string.Formatter().parse(value))
        except ValueError as exc:
            raise ValueError(f"invalid template ({exc}); write literal braces as {{{{ and }}}}, "
                             f"found {value!r}") from None
        return value

    @field_validator("annotations")
    @classmethod
    def _annotations(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not _ANNOTATION.match(name):
                raise ValueError(f"annotation names are letters, digits and _ (not starting "
                                 f"with a digit), found {name!r}")
            try:
                list(string.Formatter().parse(text))
            except ValueError as exc:
                raise ValueError(f"annotation {name!r}: invalid template ({exc}); write literal "
                                 f"braces as {{{{ and }}}}, found {text!r}") from None
        return value

    @model_validator(mode="after")
    def _shape(self) -> RuleConfig:
        twice = sorted(k for k in self.annotations if k in _TEMPLATE_FIELDS and getattr(self, k))
        if twice:
            raise ValueError(f"`{twice[0]}` goes either on the rule or in `annotations`, "
                             "found both")
        is_absent = self.absent is not None or self.absent_intervals is not None
        has_compare = self.op is not None or self.threshold is not None
        if is_absent and has_compare:
            raise ValueError("a rule is either a threshold rule (op, threshold) or an absent rule "
                             "(absent / absent_intervals), found both")
        if not is_absent:
            if self.op is None or self.threshold is None:
                missing = "op" if self.op is None else "threshold"
                raise ValueError(f"`{missing}` is required (or make it an absent rule with "
                                 f"`absent: 10m`), found no `{missing}`")
            if self.recover is not None:
                if self.op in ("==", "!="):
                    raise ValueError(f"`recover` needs op <, <=, > or >=, found op {self.op}")
                if self.op in (">", ">=") and self.recover > self.threshold:
                    raise ValueError(f"`recover` must be at or below the threshold "
                                     f"({self.threshold:g}) for op {self.op}, found "
                                     f"recover {self.recover:g}")
                if self.op in ("<", "<=") and self.recover < self.threshold:
                    raise ValueError(f"`recover` must be at or above the threshold "
                                     f"({self.threshold:g}) for op {self.op}, found "
                                     f"recover {self.recover:g}")
        elif self.recover is not None:
            raise ValueError("`recover` only applies to threshold rules, found it on an absent rule")
        if self.aggregate in ("rate", "increase") and self.window <= 0:
            raise ValueError(f"aggregate {self.aggregate} needs a `window` (e.g. window: 5m), "
                             "found none")
        return self

    # -- derived -------------------------------------------------------------------------
    @property
    def is_absent(self) -> bool:
        return self.absent is not None or self.absent_intervals is not None

    def describe(self) -> str:
        """One line a person reads in `rules test` output and logs."""
        sel = "{" + ", ".join(f"{k}: {v}" for k, v in sorted(self.where.items())) + "}"
        if self.is_absent:
            what = f"absent {format_duration(self.absent or 0)}" if self.absent else "absent"
            if self.absent_intervals:
                what += f" for {self.absent_intervals} intervals"
            return f"{self.alert}: {self.metric}{sel} {what}"
        agg = self.aggregate if self.window <= 0 else f"{self.aggregate}[{format_duration(self.window)}]"
        return f"{self.alert}: {agg} {self.metric}{sel} {self.op} {self.threshold:g}"


class RulesEngineConfig(_Model):
    """How the rules engine evaluates and remembers."""

    evaluation_interval: Duration = Field(
        15.0, gt=0,
        description="Timer for absent rules, stale series and windows read from the store.",
    )
    memory_window: Duration = Field(
        3600.0, gt=0,
        description="Longest window kept in memory per series; longer windows read the store.",
    )
    max_points: int = Field(
        4096, ge=16, description="Most samples held in memory per series (bounds memory)."
    )
    stale_after: Duration = Field(
        600.0, gt=0,
        description="A series silent this long (beyond its rule's window) is forgotten and its "
        "threshold alerts resolve; absent rules are what catch silence.",
    )
    flap_threshold: int = Field(
        6, ge=2,
        description="State changes within `flap_window` that make an alert `flapping` "
        "(notified once, with the count, until it settles).",
    )
    flap_window: Duration = Field(
        3600.0, gt=0, description="Window over which state changes are counted for flapping."
    )
    flap_settle: Duration = Field(
        900.0, gt=0, description="A flapping alert settles after this long without a change."
    )
