"""Charts worth looking at: the figure behind `history plot`, `dashboards preview` and Slack
images, inspected after matplotlib laid it out (what a person would see)."""

from __future__ import annotations

import math

import pytest

from agent.charts import fit_label, legend_labels, line_chart, render_line_chart

pytestmark = pytest.mark.unit

T0 = 1_790_000_000.0


def drawn(fig):
    fig.canvas.draw()
    return fig.axes[0]


@pytest.mark.parametrize(
    "span", [30, 90, 150, 600, 3 * 3600, 86400, 2 * 86400, 20 * 86400, 400 * 86400])
def test_no_tick_label_repeats_whatever_the_span(span):
    points = [(T0 + span * i / 80, math.sin(i / 7)) for i in range(81)]
    ax = drawn(line_chart({"x": points}, title="t"))
    labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    assert len(labels) >= 2, labels
    assert len(labels) == len(set(labels)), labels


def test_a_gap_in_the_data_is_drawn_as_a_gap():
    before = [(T0 + i * 10, 1.0 + i) for i in range(30)]
    after = [(T0 + 900 + i * 10, 5.0) for i in range(30)]  # silent for 10 minutes
    ax = drawn(line_chart({"x": before + after}, title="t"))
    ys = list(ax.lines[0].get_ydata())
    assert sum(1 for y in ys if isinstance(y, float) and math.isnan(y)) == 1
    steady = drawn(line_chart({"x": before}, title="t")).lines[0].get_ydata()
    assert not any(math.isnan(y) for y in steady), "jitter-free data has no gap"


def test_a_zero_one_metric_is_drawn_as_steps_with_two_ticks():
    up = [(T0 + i * 10, 1.0 if i < 20 else 0.0) for i in range(40)]
    ax = drawn(line_chart({"up": up}, title="t"))
    assert ax.lines[0].get_drawstyle() == "steps-post"
    assert list(ax.get_yticks()) == [0, 1]
    latency = drawn(line_chart({"x": [(T0 + i, 0.1 * i) for i in range(40)]}, title="t"))
    assert latency.lines[0].get_drawstyle() == "default"


def test_legends_name_the_tags_that_differ_and_cut_between_pairs():
    tags = [
        {"model": "ranker", "endpoint": "http://ranker:8080", "protocol": "v2", "check": "r"},
        {"model": "scorer", "endpoint": "http://ranker:8080", "protocol": "v2", "check": "r"},
    ]
    assert legend_labels(tags) == ["model=ranker", "model=scorer"]
    assert legend_labels([{"model": "a"}]) == [""], "one series: nothing differs, no legend text"
    long = [{"dag_id": "train_" + "x" * 30, "run_id": "scheduled__2026-12-06T00:00:00", "a": "1"},
            {"dag_id": "train_" + "y" * 30, "run_id": "manual__2026-12-06T01:00:00", "a": "2"}]
    for label in legend_labels(long):
        assert len(label) <= 40 and label.endswith("…")
        for part in label.split(", ")[:-1]:
            assert part.count("=") == 1  # whole key=value pairs only
    one = fit_label(["model=" + "m" * 60])
    assert one.startswith("model=m") and one.endswith("…") and len(one) == 40


def test_alert_windows_and_threshold_appear_in_the_legend():
    pts = [(T0 + i * 10, 1.0 if i < 30 else 0.0) for i in range(60)]
    ax = drawn(line_chart({"": pts}, title="ranker is down", threshold=1,
                          pending=(T0 + 300, T0 + 360), firing=(T0 + 360, T0 + 600)))
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["threshold 1", "pending", "firing"]


def test_readable_at_slack_thumbnail_size():
    pts = [(T0 + i * 10, float(i % 5)) for i in range(60)]
    fig = line_chart({"model=a": pts, "model=b": pts[::-1]}, title="p95 latency", threshold=3)
    ax = drawn(fig)
    w, h = fig.get_size_inches() * fig.dpi
    assert w <= 800 and h <= 400, (w, h)  # Slack scales thumbnails to ~360 px wide
    sizes = [t.get_fontsize() for t in ax.get_xticklabels() + ax.get_yticklabels()]
    sizes += [ax.title.get_fontsize()] + [t.get_fontsize() for t in ax.get_legend().get_texts()]
    assert min(sizes) >= 10, sizes
    assert all(line.get_linewidth() >= 1.5 for line in ax.lines)
    png = render_line_chart({"model=a": pts}, title="t")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
