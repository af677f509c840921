"""Pure parts of model_endpoint: JSON path expectations and the latency window."""

from __future__ import annotations

import pytest

from checks.model_endpoint.assertions import failed_assertions
from checks.model_endpoint.config import JsonAssertion
from checks.model_endpoint.latency import LatencyWindow

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


def test_latency_window_slides():
    window = LatencyWindow(4)
    assert window.percentiles(0.5) == {}
    for v in (9.0, 1.0, 2.0, 3.0, 4.0):  # 9.0 slides out
        window.add(v)
    assert len(window) == 4
    assert window.percentiles(0.5, 0.95, 0.99) == {0.5: 2.0, 0.95: 4.0, 0.99: 4.0}


def test_latency_window_before_it_fills_and_after_many_wraps():
    window = LatencyWindow(100)
    window.add(0.5)
    window.add(0.25)  # the 98 unused slots (zeros) must not count as probes
    assert len(window) == 2 and window.percentiles(0.5, 0.99) == {0.5: 0.25, 0.99: 0.5}
    for i in range(1, 1001):
        window.add(float(i))
    assert len(window) == 100
    assert window.percentiles(0.01, 0.5, 1.0) == {0.01: 901.0, 0.5: 950.0, 1.0: 1000.0}
