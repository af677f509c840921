"""Fuzzing the rule templates: any summary/description a config can hold renders for any
labels and value (labels come from the data: DAG names, model names, exporter labels), or
the rule is refused at load time with a message that names the template. Rendering never
raises and never blows up: a template must not stop an alert from being sent."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from agent.rules.config import RuleConfig
from agent.rules.templates import render, render_annotations

pytestmark = pytest.mark.unit

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

pieces = st.sampled_from([
    "{", "}", "{{", "}}", "{value}", "{value:.1f}", "{value:.0%}", "{value:>10}", "{value!r}",
    "{value!z}", "{value:{width}}", "{model}", "{model:>{value}}", "{for}", "{threshold:g}",
    "{alert}", "{severity}", "{0}", "{}", "{model.attr}", "{model[0]}", "{value:,}", "{value:x}",
    "{:{:{:{}}}}", "{value:>{width}}", "{value:.{width}f}", "{missing}", "{missing.deep[1]}",
    " is down ", "\u202e", "<!channel>", "*bold*",
]) | st.text(max_size=8)
templates = st.lists(pieces, max_size=8).map("".join)
label_keys = st.sampled_from(["model", "width", "check", "endpoint", "dag_id", "value", "for",
                              "alert", "0"]) | st.text(min_size=1, max_size=8)
label_values = st.sampled_from(["5", "99999999999", "-1", "", "{value}", "%s", "ranker",
                                "1e400"]) | st.text(max_size=12)
values = st.none() | st.floats(allow_nan=True, allow_infinity=True) | st.integers(-10**30, 10**30)


def rule(template: str) -> RuleConfig:
    return RuleConfig.model_validate({
        "alert": "Fuzz", "metric": "mlwarden.check.status", "op": ">", "threshold": 1,
        "summary": template, "description": template + " (more)",
    })


@FAST
@given(templates, st.dictionaries(label_keys, label_values, max_size=5), values)
def test_templates_render_or_are_refused_at_load(template: str, labels: dict[str, str],
                                                 value: float | None) -> None:
    try:
        r = rule(template)
    except ValidationError as exc:
        assert "invalid template" in str(exc), exc
        return
    out = render_annotations(r, labels, value)
    assert set(out) <= {"summary", "description", "runbook_url", "dashboard_url"}
    for text in out.values():
        assert isinstance(text, str)
        assert len(text) <= 10 * (len(template) + 100) + sum(len(v) for v in labels.values()) * 10


@FAST
@given(st.text(max_size=40), st.dictionaries(label_keys, label_values | values.map(str), max_size=4))
def test_render_never_raises_on_any_text(template: str, context: dict[str, str]) -> None:
    assert isinstance(render(template, context), str)


@pytest.mark.parametrize("template", ["{value:>2000000000}", "{value:.999999999f}",
                                      "{value:>{width}}", "{model:>{width}}"])
def test_a_huge_width_or_precision_renders_plainly(template: str) -> None:
    """A width taken from data (a label) must not make the agent build a gigabyte string."""
    text = render(template, {"value": 1.5, "width": "2000000000", "model": "ranker"})
    assert len(text) < 100, len(text)


def test_values_without_a_number_render_plainly() -> None:
    r = rule("{model} at {value:.1f} (limit {threshold:g}) for {for}")
    assert render_annotations(r, {"model": "m"}, None)["summary"] == "m at n/a (limit 1) for 0s"
    assert render_annotations(r, {"model": "m"}, math.inf)["summary"] == "m at inf (limit 1) for 0s"
