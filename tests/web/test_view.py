"""The page's data: sparklines, filters, store failures, key metrics (agent/web/view.py)."""

from __future__ import annotations

import math

import pytest

from agent.catalog import load_catalog
from agent.plugins import check_types
from agent.samples import Status
from agent.scheduler import CheckState
from agent.web.sparkline import sparkline
from agent.web.view import Ack, Filters, LiveAlert, Snapshot, build_page

pytestmark = pytest.mark.unit


def test_sparkline_scales_into_the_box_and_ends_where_the_data_ends():
    spark = sparkline([(100.0, 1.0), (150.0, 3.0), (200.0, 2.0)], since=100.0, until=300.0,
                      width=102, height=24, pad=1.0)
    assert spark is not None
    assert spark.points == "1,23 26,1 51,12"  # x over since..until; the highest value on top
    assert (spark.last, spark.low, spark.high, spark.count) == (2.0, 1.0, 3.0, 3)
    assert (spark.last_x, spark.last_y) == (51.0, 12.0)  # stopped at t=200: half-way across


def test_sparkline_flat_single_and_bad_points():
    flat = sparkline([(0.0, 5.0), (10.0, 5.0)], since=0.0, until=10.0, height=24, pad=2.0)
    assert flat is not None and {p.split(",")[1] for p in flat.points.split()} == {"12"}
    one = sparkline([(10.0, 7.0)], since=0.0, until=10.0)
    assert one is not None and len(one.points.split()) == 2 and one.count == 1
    assert sparkline([(5.0, math.nan), (50.0, 1.0)], since=0.0, until=10.0) is None
    assert sparkline([], since=0.0, until=10.0) is None


def state(name: str, status: Status | None, type_: str = "model_endpoint") -> CheckState:
    return CheckState(name=name, type=type_, interval=10.0, status=status, message=f"{name} says hi")


def snapshot(states, alerts=()) -> Snapshot:
    return Snapshot(
        status={"agent": {"hostname": "node-1"}, "pipeline": {}, "checks": list(states),
                "components": {"exporter-health": {"exporters": ["prometheus"]},
                               "prometheus": {"state": "ok", "endpoint": "/metrics"},
                               "alerting": {"receivers": {"slack": {"type": "slack", "sent": 3}}}}},
        alerts=list(alerts), rules={"EndpointDown": ("mlwarden.endpoint.up", {})},
        key_metrics={}, hostname="node-1", readiness=[], alerting=True, inhibitor=None)


STATES = [state("a-ok", Status.OK), state("b-crit", Status.CRITICAL), state("c-new", None),
          state("gpu0", Status.WARNING, "gpu"), state("d-unk", Status.UNKNOWN)]


@pytest.mark.parametrize("query,names", [
    ({}, ["b-crit", "d-unk", "gpu0", "c-new", "a-ok"]),  # worst first
    ({"status": "failing"}, ["b-crit", "d-unk", "gpu0", "c-new"]),
    ({"status": "OK"}, ["a-ok"]),
    ({"status": "PENDING"}, ["c-new"]),
    ({"type": "gpu"}, ["gpu0"]),
    ({"type": "gpu", "status": "OK"}, []),
    ({"status": "<b>nonsense</b>"}, ["b-crit", "d-unk", "gpu0", "c-new", "a-ok"]),
])
def test_filters(query, names):
    page = build_page(snapshot(STATES), now=1000.0, filters=Filters.from_query(query), reader=None,
                      silences=None, backlog=None)
    assert [r.name for r in page.checks] == names
    assert page.total_checks == 5 and page.counts["CRITICAL"] == 1 and page.counts["PENDING"] == 1
    assert page.types == ["gpu", "model_endpoint"]


class Broken:
    def query(self, *args, **kwargs):
        raise OSError("disk I/O error")

    def list(self, **kwargs):
        raise OSError("database is locked")

    def pending(self, now):
        raise OSError("no such table: outbox")


def test_a_failing_store_costs_its_sections_not_the_page():
    broken = Broken()
    page = build_page(snapshot(STATES), now=1000.0, filters=Filters(), reader=broken,
                      silences=broken, backlog=broken)
    assert len(page.checks) == 5 and all(r.spark is None for r in page.checks)
    assert page.problems == {"sparklines": "OSError: disk I/O error",
                             "silences": "OSError: database is locked",
                             "receivers": "OSError: no such table: outbox"}
    assert page.receivers[0].pending is None  # unknown, not "0"
    assert [e.name for e in page.exporters] == ["prometheus"]


def test_acknowledgements_have_their_place_once_a_source_exists():
    alert = LiveAlert("fp1", "EndpointDown", {"check": "b-crit"}, (("check", "b-crit"),), "critical",
                      "firing", 0.0, 900.0, 900.0, {"summary": "down", "runbook_url": "javascript:x()"})

    class Acks:
        def acks(self, fingerprints):
            return {"fp1": Ack("maria", 950.0, "on it")} if "fp1" in fingerprints else {}

    page = build_page(snapshot(STATES, [alert]), now=1000.0, filters=Filters(), reader=None,
                      silences=None, backlog=None, acks=Acks())
    assert page.acks_enabled and page.alerts[0].ack == Ack("maria", 950.0, "on it")
    assert page.alerts[0].runbook_url is None  # not an http(s) link: shown nowhere
    assert page.alerts[0].chart_url == "/ui/chart?metric=mlwarden.endpoint.up&tag=check%3Db-crit"
    assert not build_page(snapshot(STATES, [alert]), now=1000.0, filters=Filters(), reader=None,
                          silences=None, backlog=None).acks_enabled


def test_every_check_types_key_metric_is_its_own_and_declared():
    catalog = load_catalog()
    for name, cls in check_types().items():
        spec = catalog.get(cls.key_metric)
        assert spec is not None, f"{name}: key_metric {cls.key_metric} is not in the catalog"
        assert spec.check in (name, "agent"), f"{name}: key_metric {cls.key_metric} belongs to {spec.check}"
