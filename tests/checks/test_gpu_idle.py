"""Idle-GPU arithmetic on constructed utilisation histories, boundaries included."""

from __future__ import annotations

import pytest

from checks.gpu.idle import IdleTracker, Pricing, idle_signal, summarize
from checks.gpu.readings import GpuReading, ProcessReading

WINDOW = 1800.0


def replay(history: list[tuple[float, float | None]], price: float | None = 4.0,
           max_gap: float = 300.0, threshold: float = 0.05):
    tracker = IdleTracker(threshold=threshold, window=WINDOW, max_gap=max_gap)
    status = None
    for t, util in history:
        status = tracker.observe("GPU-1", t, util, price)
    return tracker, status


def every(step: float, start: float, end: float, util: float) -> list[tuple[float, float]]:
    n = int((end - start) / step)
    return [(start + i * step, util) for i in range(n + 1)]


def test_idle_exactly_at_the_window_boundary():
    # low readings every 15 s from t=0 to t=1800: the streak lasts exactly the window
    _, status = replay(every(15, 0, 1800, 0.0))
    assert status.idle is True
    assert status.duration == 1800.0
    assert status.cost == pytest.approx(4.0 * 0.5)   # half an hour at $4/h
    assert status.cost_rate == 4.0


def test_one_reading_short_of_the_window_is_not_idle():
    _, status = replay(every(15, 0, 1785, 0.0))
    assert status.idle is False
    assert (status.duration, status.cost, status.cost_rate) == (0.0, 0.0, 0.0)


def test_utilisation_equal_to_threshold_is_busy_and_restarts_the_streak():
    history = every(15, 0, 1500, 0.0) + [(1515, 0.05)] + every(15, 1530, 3330, 0.01)
    _, status = replay(history)
    assert status.idle is True
    assert status.duration == 3330 - 1530
    _, status = replay(every(15, 0, 1500, 0.0) + [(1515, 0.05)] + every(15, 1530, 3300, 0.0))
    assert status.idle is False  # 1770 s since the busy reading


def test_just_under_threshold_counts_as_idle():
    _, status = replay(every(60, 0, 2700, 0.0499))
    assert status.idle and status.duration == 2700.0
    assert status.cost == pytest.approx(4.0 * 0.75)


def test_45_minutes_idle_costs_three_quarters_of_the_price():
    _, status = replay(every(15, 0, 2700, 0.0), price=4.1)
    assert status.cost == pytest.approx(3.075)
    assert status.cost_rate == 4.1


def test_a_gap_longer_than_max_gap_restarts_the_streak():
    # agent down for 301 s (> max_gap 300): what the GPU did meanwhile is unknown
    history = every(15, 0, 1200, 0.0) + every(15, 1501, 2500, 0.0)
    _, status = replay(history)
    assert status.idle is False
    # a gap of exactly max_gap keeps the streak
    history = every(15, 0, 1200, 0.0) + every(20, 1500, 2500, 0.0)
    _, status = replay(history)
    assert status.idle is True and status.duration == 2500.0


def test_no_utilisation_means_no_verdict_and_keeps_the_streak():
    tracker, status = replay(every(15, 0, 900, 0.0) + [(915, None)])
    assert status is None
    for t, util in every(15, 930, 1800, 0.0):
        status = tracker.observe("GPU-1", t, util, 4.0)
    assert status.idle and status.duration == 1800.0


def test_without_a_price_there_is_no_cost_but_still_idleness():
    _, status = replay(every(15, 0, 1800, 0.0), price=None)
    assert status.idle and status.cost is None and status.cost_rate is None


def test_state_survives_a_restart():
    tracker, _ = replay(every(15, 0, 1800, 0.0))
    again = IdleTracker(0.05, WINDOW, 300.0, state=tracker.state())
    status = again.observe("GPU-1", 1860, 0.0, 4.0)   # 60 s gap (restart) < max_gap
    assert status.idle and status.duration == 1860.0


def test_a_clock_going_backwards_restarts_the_streak():
    tracker, _ = replay(every(15, 0, 1800, 0.0))
    status = tracker.observe("GPU-1", 100, 0.0, 4.0)
    assert status.idle is False


def test_prune_forgets_stale_streaks():
    tracker, _ = replay(every(15, 0, 600, 0.0))
    tracker.prune(600 + 300)
    assert tracker.state()
    tracker.prune(600 + 301)
    assert tracker.state() == {}


def test_pricing_by_model_glob_first_match_then_default():
    pricing = Pricing(2.0, {"*H100*": 4.1, "*h*": 9.9, "NVIDIA A10G": 1.0})
    assert pricing.price("NVIDIA H100 80GB HBM3") == 4.1
    assert pricing.price("NVIDIA A10G") == 1.0
    assert pricing.price("NVIDIA H200") == 9.9      # case-insensitive glob
    assert pricing.price("Tesla T4") == 2.0
    assert Pricing(None).price("Tesla T4") is None


def test_node_and_fleet_totals():
    tracker = IdleTracker(0.05, WINDOW, 300.0)
    statuses = []
    for i, (util, since) in enumerate([(0.0, 0), (0.0, 900), (0.5, 0), (0.01, 0)]):
        for t in range(since, 2701, 15):
            status = tracker.observe(f"GPU-{i}", t, util, 4.0)
        statuses.append(status)
    total = summarize(statuses, priced=True)
    # GPU-0 and GPU-3 low for 45 min, GPU-1 for exactly 30 min, GPU-2 busy
    assert total.idle == 3
    assert total.cost_rate == pytest.approx(12.0)
    assert total.min_duration == 1800.0
    assert summarize(statuses, priced=False).cost_rate is None
    assert summarize([], priced=True).cost_rate == 0.0


def test_idle_signal_for_mig_gpus():
    whole = GpuReading(index="0", uuid="GPU-a", utilization=0.3)
    assert idle_signal(whole) == 0.3
    parent = GpuReading(index="0", uuid="GPU-m")
    empty = GpuReading(index="0", uuid="MIG-1", parent_uuid="GPU-m", processes=[])
    busy = GpuReading(index="0", uuid="MIG-2", parent_uuid="GPU-m",
                      processes=[ProcessReading(pid=7, used_memory=1.0)])
    assert idle_signal(parent, [empty]) == 0.0
    assert idle_signal(parent, [empty, busy]) == 1.0
    assert idle_signal(parent, []) is None
    dcgm = GpuReading(index="0", uuid="GPU-m/gi1", parent_uuid="GPU-m", graphics_active=0.02)
    assert idle_signal(parent, [dcgm, busy]) == 0.02   # engine activity beats process presence
