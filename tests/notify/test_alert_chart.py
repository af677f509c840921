"""Which series an alert's chart draws: exactly the alert's own, read from the history store
the way it answers (tags ⊇ the filter, a gauge's fact variants stored apart)."""

from __future__ import annotations

import pytest

from agent.notify.alert_chart import alert_series, chart_since
from agent.notify.base import Alert

pytestmark = pytest.mark.unit


class Store:
    """A SeriesReader over fixed series: ``tags ⊇ filter``, as the history store answers."""

    def __init__(self, series: dict[tuple, list[tuple[float, float]]]) -> None:
        self.series = series

    def read_series(self, metric, since, until=None, tags=None):
        want = set((tags or {}).items())
        return {k: [p for p in v if since < p[0] <= (until or p[0])]
                for k, v in self.series.items() if want <= set(k)}


BASE = {"check": "iris", "endpoint": "http://m:8080", "protocol": "v2"}


def key(**tags: str) -> tuple:
    return tuple(sorted({**BASE, **tags}.items()))


def test_a_gauges_reason_variants_are_one_line_and_neighbours_stay_out():
    store = Store({
        key(): [(10, 1.0), (20, 1.0)],
        key(reason="Model iris not found"): [(30, 0.0), (40, 0.0)],
        key(model="other"): [(10, 5.0)],  # another series that carries more tags
    })
    alert = Alert("f", "EndpointNotReady", {}, "firing", metric="mlwarden.endpoint.ready",
                      series=[BASE])
    assert alert_series(store, alert, 0, 50) == {
        key(): [(10, 1.0), (20, 1.0), (30, 0.0), (40, 0.0)]}


def test_a_counts_facts_pick_its_own_event():
    run = {"dag_id": "d", "task_id": "t", "run_id": "r1", "try_number": "2"}
    other = {**run, "run_id": "r2"}
    store = Store({tuple(sorted(run.items())): [(10, 1.0)],
                   tuple(sorted(other.items())): [(20, 1.0)]})
    alert = Alert("f", "AirflowTaskFailed", {}, "firing",
                      metric="mlwarden.airflow.task_instance.failed", series=[run])
    assert list(alert_series(store, alert, 0, 50)) == [tuple(sorted(run.items()))]


def test_the_chart_starts_well_before_the_change():
    # pending for 2000 s: the chart starts twice that before the condition began
    alert = Alert("f", "A", {}, "firing", active_since=10_000, fired_at=12_000)
    assert chart_since(alert, now=12_100, window=3600) == 10_000 - 4000
    # pending briefly: a quarter of the window before it began, or the whole window
    brief = Alert("f", "A", {}, "firing", active_since=10_000, fired_at=10_060)
    assert chart_since(brief, now=10_100, window=3600) == 10_100 - 3600
    assert chart_since(brief, now=10_700, window=600) == 10_000 - 150
