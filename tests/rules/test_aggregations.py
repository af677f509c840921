"""Each aggregation over a window, counter resets, and how a group's values combine."""

from __future__ import annotations

from array import array

import pytest

from agent.rules.aggregations import AGGREGATORS, combine, percentile

TIMES = [10.0, 20.0, 30.0, 40.0, 50.0]
VALUES = [4.0, 1.0, 3.0, 5.0, 2.0]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("last", 2.0),
        ("avg", 3.0),
        ("min", 1.0),
        ("max", 5.0),
        ("sum", 15.0),
        ("count", 5.0),
        ("p50", 3.0),
        ("p90", 4.6),           # linear interpolation between ranks: 4 + 0.6 * (5 - 4)
        ("p95", 4.8),
        ("p99", 4.96),
    ],
)
def test_level_aggregations(name, expected):
    got = AGGREGATORS[name](array("d", TIMES), array("d", VALUES), 0, 5, 60.0, False)
    assert got == pytest.approx(expected)


@pytest.mark.parametrize("name", ["last", "avg", "min", "max", "sum", "p50", "p99", "rate", "increase"])
def test_an_empty_window_has_no_value(name):
    assert AGGREGATORS[name](array("d"), array("d"), 0, 0, 60.0, False) is None


def test_an_empty_window_counts_zero_samples():
    assert AGGREGATORS["count"](array("d"), array("d"), 0, 0, 60.0, False) == 0.0


def test_window_bounds_are_respected():
    # only samples 2..4 (index 1..3) are in the window
    assert AGGREGATORS["avg"](TIMES, VALUES, 1, 4, 30.0, False) == pytest.approx(3.0)
    assert AGGREGATORS["last"](TIMES, VALUES, 1, 4, 30.0, False) == 5.0


@pytest.mark.parametrize(
    ("values", "increase", "rate"),
    [
        ([10, 20, 30, 40], 30.0, 1.0),               # steady running total
        ([10, 20, 5, 15], 25.0, 25.0 / 30),          # reset after 20: 10 + 5 (from zero) + 10
        ([10, 10, 10, 10], 0.0, 0.0),
        ([100, 0, 0, 3], 3.0, 0.1),                  # reset to zero then 3
        ([5, 3, 2, 1], 6.0, 0.2),                    # every drop is a reset: 3 + 2 + 1 from zero
    ],
)
def test_increase_and_rate_of_running_totals_survive_resets(values, increase, rate):
    times = [0.0, 10.0, 20.0, 30.0]
    vals = [float(v) for v in values]
    assert AGGREGATORS["increase"](times, vals, 0, 4, 60.0, False) == pytest.approx(increase)
    assert AGGREGATORS["rate"](times, vals, 0, 4, 60.0, False) == pytest.approx(rate)


def test_increase_and_rate_of_deltas_add_them_up():
    times = [0.0, 10.0, 20.0, 30.0]
    deltas = [1.0, 0.0, 2.0, 3.0]
    assert AGGREGATORS["increase"](times, deltas, 0, 4, 60.0, True) == 6.0
    assert AGGREGATORS["rate"](times, deltas, 0, 4, 60.0, True) == pytest.approx(0.1)


def test_a_running_total_needs_two_samples_for_a_rate():
    assert AGGREGATORS["rate"]([5.0], [7.0], 0, 1, 60.0, False) is None
    assert AGGREGATORS["increase"]([5.0], [7.0], 0, 1, 60.0, False) is None


def test_percentile_of_one_value_is_that_value():
    assert percentile([3.5], 0.99) == 3.5


@pytest.mark.parametrize(
    ("aggregate", "op", "values", "expected"),
    [
        ("sum", ">", [1.0, 2.0, 3.0], 6.0),
        ("increase", ">", [1.0, 2.0], 3.0),
        ("rate", "<", [0.5, 0.25], 0.75),
        ("count", ">", [2.0, 3.0], 5.0),
        ("last", "<", [1.0, 0.0, 1.0], 0.0),          # the worst replica of a model is down
        ("avg", ">", [0.2, 0.9, 0.5], 0.9),
        ("max", ">=", [0.2, 0.9], 0.9),
        ("p95", "<=", [0.3, 0.1], 0.1),
        ("last", "==", [2.0, 3.0, 1.0], 3.0),
        ("last", "!=", [3.0, 3.0, 1.0], 1.0),
    ],
)
def test_group_values_combine(aggregate, op, values, expected):
    assert combine(aggregate, values, op, 3.0) == expected
