"""Pure parts of model_endpoint: JSON path expectations."""

from __future__ import annotations

import pytest

from checks.model_endpoint.assertions import failed_assertions
from checks.model_endpoint.config import JsonAssertion

pytestmark = pytest.mark.unit
ANSWER = {"model_name": "iris", "outputs": [{"name": "predict", "shape": [3, 1],
                                             "data": [0, 1, 2]}]}


@pytest.mark.parametrize(("path", "equals", "exists", "problem"), [
    ("outputs[0].name", "predict", True, None),
    ("outputs.0.shape", [3, 1], True, None),
    ("outputs[0].data[-1]", 2, True, None),
    ("outputs[1].name", None, True, "outputs[1].name is missing"),
    ("outputs[0].name", "proba", True, "outputs[0].name is 'predict', expected 'proba'"),
    ("error", None, False, None),
    ("model_name", None, False, "model_name should be absent but is 'iris'"),
    ("model_name.x", None, True, "model_name.x is missing"),
])
def test_json_expectations(path, equals, exists, problem):
    got = failed_assertions(ANSWER, [JsonAssertion(path=path, equals=equals, exists=exists)])
    assert got == ([problem] if problem else [])
