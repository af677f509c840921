"""The custom-metrics budget: what Datadog will bill, counted before sending, and kept under
a budget by dropping cardinality tags and then holding new series back.

The exporters are observed on the wire (a UDP DogStatsD listener, the strict fake intake):
what the exporter says Datadog bills must be what Datadog received.
"""

from __future__ import annotations

import logging
import time

import pytest

from agent.catalog import Catalog, MetricSpec, load_catalog
from agent.export.budget import Admission, CustomMetricsBudget, Ticket
from agent.export.config import DatadogConfig
from agent.export.datadog_api import DatadogApiExporter
from agent.export.datadog_statsd import DogStatsdExporter
from agent.export.health import HealthSource
from agent.history.db import create_schema, make_engine
from agent.samples import CheckResult, Kind, Sample, Status, make_tags
from tests.export.dogstatsd_listener import DogStatsdListener
from tests.export.fake_intake import FakeIntake
from tests.support.procs import wait_for

N = 40  # the budget


def key(metric: str, **tags: str) -> tuple[str, tuple[str, ...]]:
    return metric, tuple(sorted(f"{k}:{v}" for k, v in tags.items()))


def test_counts_distinct_series_per_metric_over_a_rolling_hour():
    budget = CustomMetricsBudget(weight=lambda m: 5 if m == "d" else 1)
    t0 = 1_000_000.0
    for i in range(30):
        assert budget.admit(key("a", pod=f"p{i % 10}"), t0 + i) == Admission.SEND
    budget.admit(key("d", model="x"), t0)
    assert budget.count("a") == 10 and budget.count("d") == 5  # a distribution bills 5
    assert budget.billed == 15 and budget.top(1) == [("a", 10)]
    budget.admit(key("a", pod="p0"), t0 + 3000)  # p0 seen again; the rest go quiet
    budget.expire(t0 + 3600 + 30)
    assert budget.count("a") == 1 and budget.count("d") == 0 and budget.billed == 1


def test_over_budget_drops_the_tag_with_most_values_from_the_biggest_contributor(caplog):
    caplog.set_level(logging.WARNING, logger="agent.export.budget")
    budget = CustomMetricsBudget(10, droppable=["model_version", "pod"])
    now = 1_000_000.0
    for i in range(4):
        assert budget.admit(key("small", pod=f"p{i}"), now) == Admission.SEND
    for i in range(6):
        assert budget.admit(key("big", pod=f"p{i}", model_version="v1", route="r"), now) == Admission.SEND
    # the 11th series: `big` is the biggest contributor; of its droppable tags, pod has the
    # most values (6, model_version 1), so pod goes
    assert budget.admit(key("big", pod="p6", model_version="v1", route="r"), now) == Admission.RESHAPE
    assert budget.dropped_tags == {"big": ("pod",)}
    # six retired (billed this hour, no longer sent), one merged series admitted on the spot
    assert budget.total == 5 and budget.retired == 6 and budget.billed == 11
    assert budget.admit(key("big", model_version="v1", route="r"), now) == Admission.SEND
    assert budget.total == 5
    decision = budget.decisions[0]
    assert (decision["action"], decision["metric"], decision["tag"],
            decision["series_before"], decision["series_after"]) == ("drop_tag", "big", "pod", 6, 1)
    assert [r.getMessage() for r in caplog.records].count(caplog.records[0].getMessage()) == 1


def test_when_nothing_is_left_to_drop_new_series_are_held_back_and_logged_once(caplog):
    caplog.set_level(logging.WARNING, logger="agent.export.budget")
    held = []
    budget = CustomMetricsBudget(5, droppable=["pod"], on_held=held.append)
    now = 1_000_000.0
    for i in range(5):
        budget.admit(key("sessions", session=f"s{i}"), now)
    for i in range(5, 50):
        assert budget.admit(key("sessions", session=f"s{i}"), now) == Admission.HOLD
    assert budget.admit(key("sessions", session="s0"), now + 1) == Admission.SEND  # admitted go on
    assert len(held) == 45 and budget.total == 5
    assert [d["action"] for d in budget.decisions] == ["hold_back"]
    assert len([r for r in caplog.records if "holding back" in r.getMessage()]) == 1
    status = budget.status(now + 1)
    assert status["held_back_points"] == {"sessions": 45}
    assert status["limited"] == {"drop_tags": 0, "hold_back": 1}
    # an hour later the quiet series have left the count: held-back ones get in
    for i in range(5):
        budget.admit(key("other", n=str(i)), now + 1)
    budget.expire(now + 3601 + 1)
    assert budget.admit(key("sessions", session="s49"), now + 3700) == Admission.SEND


def test_an_exploding_metric_gives_way_to_the_others_new_series():
    """Without droppable tags, the biggest contributor cannot crowd out a metric that comes
    later (the agent's own health, a new check): it gives up one series per new one."""
    budget = CustomMetricsBudget(10)
    now = 1_000_000.0
    for i in range(30):
        budget.admit(key("sessions", session=f"s{i}"), now)
    assert budget.total == 10 and budget.count("sessions") == 10
    for name in ("check.status", "exporter.up"):
        assert budget.admit(key(name, check="a"), now + 1) == Admission.SEND
    assert budget.total == 10  # within the budget at every moment
    assert budget.retired == 2 and budget.billed == 12  # the two displaced were sent this hour
    # the displaced sessions series are held back now, like its other new ones
    held = [budget.admit(key("sessions", session=f"s{i}"), now + 2) for i in range(10)]
    assert held.count(Admission.HOLD) == 2 and budget.total == 10
    assert [d["action"] for d in budget.decisions] == ["hold_back"]
    # it never ping-pongs: a metric as big as the biggest does not displace it
    small = CustomMetricsBudget(4)
    for i in range(2):
        small.admit(key("a", n=str(i)), now)
        small.admit(key("b", n=str(i)), now)
    assert small.admit(key("b", n="2"), now) == Admission.HOLD


def test_a_callers_own_ticket_stands_for_its_series_until_released():
    """A caller that keeps an object a series (the DogStatsD exporter's cached line) hands it
    in as the ticket, so the budget holds no second object a series. Released, a plain ticket
    takes its place (same last-seen time, same counts) and the released one is no longer
    live, so whoever stamps it asks again; the next caller's own object then takes over."""
    budget = CustomMetricsBudget(3)
    now = 1_000_000.0
    series = key("a", pod="p0")
    mine, other = Ticket(0.0), Ticket(0.0)
    assert budget.admit(series, now, mine) == Admission.SEND
    assert budget.ticket(series) is mine and mine.live and mine.seen == now
    # a second holder (two raw series merged into one) stamps the first one's ticket
    assert budget.admit(series, now + 1, other) == Admission.SEND
    assert budget.ticket(series) is mine and mine.seen == now + 1
    budget.release(series, mine)
    plain = budget.ticket(series)
    assert plain is not mine and not mine.live and plain.live and plain.seen == now + 1
    assert (budget.total, budget.billed, budget.count("a")) == (1, 1, 1)
    assert budget.admit(series, now + 2, other) == Admission.SEND  # a plain ticket gives way
    assert budget.ticket(series) is other and other.live and other.seen == now + 2
    assert not plain.live
    budget.release(series, mine)  # no longer the series' ticket: nothing changes
    assert budget.ticket(series) is other
    # a released ticket of a retired or expired series is not brought back
    budget.expire(now + 2 + 3601)
    assert not other.live and budget.ticket(series) is None and budget.billed == 0
    budget.release(series, other)
    assert budget.ticket(series) is None and budget.billed == 0


def test_budget_config_errors_are_clear(monkeypatch):
    from agent.config import parse_config
    from agent.errors import ConfigError

    monkeypatch.delenv("DD_APP_KEY", raising=False)
    monkeypatch.delenv("DD_APPLICATION_KEY", raising=False)
    cases = [
        ("{cardinality_tags: [pod]}", "cardinality_tags are removed only to stay under custom_metrics_budget"),
        ("{custom_metrics_budget: 10, cardinality_tags: [env]}", "may not name ['env']"),
        ("{custom_metrics_budget: 0}", "exporters.datadog.custom_metrics_budget"),
        ("{send_metadata: true}", "needs `mode: api`"),
        ("{mode: api, api_key: k, send_metadata: true}", "needs an application key"),
    ]
    for body, message in cases:
        with pytest.raises(ConfigError) as err:
            parse_config(f"exporters:\n  datadog: {body}\n", source="agent.yaml")
        assert message in str(err.value), (body, str(err.value))


# -- a check producing 10 x N tag combinations, against both exporters -------------------------
def flood(i: int, now: float) -> CheckResult:
    """One run of a check with 10 x N combinations: 5 pods x 4 routes (pod droppable) of one
    metric, and 10 x N - 20 sessions (nothing droppable) of another; plus its own status."""
    base = make_tags({"check": "flood", "env": "prod"})
    samples = [Sample("mlwarden.openmetrics.demo_requests", float(i),
                      make_tags(base, {"pod": f"pod-{p}", "route": f"r{r}"}), now, Kind.COUNT)
               for p in range(5) for r in range(4)]
    samples += [Sample("mlwarden.openmetrics.demo_sessions", 1.0,
                       make_tags(base, {"session": f"s{s}"}), now) for s in range(10 * N - 20)]
    samples.append(Sample("mlwarden.check.status", 0.0, make_tags(base, {"check_type": "openmetrics"}), now))
    return CheckResult("flood", "openmetrics", Status.OK, samples=samples, started=now)


def budget_config(**extra) -> dict:
    return dict(custom_metrics_budget=N, cardinality_tags=["pod"], service_checks=False, **extra)


def assert_budget_held(status: dict, wire: set) -> None:
    cm = status["custom_metrics"]
    assert cm["active"] <= N
    assert len(wire) == cm["count"], "what the exporter says Datadog bills is what it received"
    assert cm["count"] <= N + cm["retired_by_decisions"]
    actions = [(d["action"], d["metric"]) for d in cm["decisions"]]
    assert ("drop_tag", "mlwarden.openmetrics.demo_sessions") not in actions
    assert ("hold_back", "mlwarden.openmetrics.demo_sessions") in actions
    assert ("hold_back", "mlwarden.openmetrics.demo_requests") not in actions  # merged, kept
    assert cm["tags_dropped"] == {"mlwarden.openmetrics.demo_requests": ["pod"]}
    assert cm["held_back_points"]["mlwarden.openmetrics.demo_sessions"] > 0
    assert status["dropped_points"]["over_budget"] == sum(cm["held_back_points"].values())


async def test_dogstatsd_holds_the_budget_under_ten_times_n_combinations():
    with DogStatsdListener() as listener:
        exporter = DogStatsdExporter(DatadogConfig(host="127.0.0.1", port=listener.port,
                                                   **budget_config()), environ={})
        now = time.time()
        for i in range(3):
            exporter.consume(flood(i, now + i))
            exporter.flush()
        HealthSource([exporter], exporter.consume, 1.0).result(now + 3)  # self metrics count too
        wait_for(lambda: exporter.status()["packets_sent"] > 0, 5, 0.05, "packets")
        time.sleep(0.3)
        status = exporter.status()
        await exporter.stop()
    wire = {(m.name, m.tags) for m in listener.ours()}
    assert listener.problems == []
    assert_budget_held(status, wire)
    # after the drop (in run 0) the routes' counts arrive without pods and add up: run i
    # counts i per pod, 5 pods, so runs 1 and 2 give 5 + 10 per route
    merged = [m for m in listener.ours() if m.name.endswith("demo_requests")
              and not any(t.startswith("pod:") for t in m.tags)]
    assert {next(t for t in m.tags if t.startswith("route:")) for m in merged} == {"route:r0", "route:r1", "route:r2", "route:r3"}
    assert sum(m.value for m in merged if "route:r0" in m.tags) == 15


async def test_api_mode_holds_the_budget_and_shows_it_in_metrics(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/h.db")
    create_schema(engine)
    with FakeIntake() as intake:
        exporter = DatadogApiExporter(
            DatadogConfig(mode="api", api_key=intake.api_key, api_url=intake.url, **budget_config()),
            engine, hostname="node-1", environ={})
        exporter._configure_client()
        now = time.time()
        for i in range(3):
            exporter.consume(flood(i, now - 10 + i))
            exporter.cycle(now, exporter._take())
        health = HealthSource([exporter], exporter.consume, 1.0).result(now)
        status = exporter.status()
        assert intake.problems == []
        wire = {(m, tags) for m, tags, _, _ in intake.points}
    engine.dispose()
    assert_budget_held(status, wire)
    got = {(s.metric, s.tag("decision") or s.tag("metric")): s.value for s in health.samples
           if s.metric.startswith("mlwarden.exporter.custom_metrics")}
    assert got[("mlwarden.exporter.custom_metrics", None)] == status["custom_metrics"]["count"]
    assert got[("mlwarden.exporter.custom_metrics.budget", None)] == N
    assert got[("mlwarden.exporter.custom_metrics.limited", "drop_tags")] == 1
    assert got[("mlwarden.exporter.custom_metrics.limited", "hold_back")] >= 1
    assert got[("mlwarden.exporter.custom_metrics.by_metric", "mlwarden.openmetrics.demo_sessions")] > 0
    # one point per route and second, the five pods' counts added up (runs 1 and 2)
    merged = [(tags, ts, v) for m, tags, ts, v in intake.points
              if m.endswith("demo_requests") and not any(t.startswith("pod:") for t in tags)]
    assert sorted(v for tags, _, v in merged if "route:r0" in tags) == [5.0, 10.0]
    catalog = load_catalog()
    for sample in health.samples:
        assert sample.metric in catalog and catalog[sample.metric].kind is sample.kind


def test_distributions_weigh_five():
    catalog = Catalog([*load_catalog(), MetricSpec("mlwarden.test.latency", Kind.DISTRIBUTION,
                                                   "seconds", "a test latency", "test", ("model",))])
    exporter = DogStatsdExporter(DatadogConfig(host="127.0.0.1", port=9, custom_metrics_budget=12),
                                 catalog=catalog, environ={})
    now = time.time()
    for model in ("a", "b", "c"):
        exporter.consume(CheckResult("t", "test", Status.OK, started=now, samples=[
            Sample("mlwarden.test.latency", 0.1, make_tags({"model": model}), now, Kind.DISTRIBUTION)]))
    status = exporter.status()["custom_metrics"]
    assert status["count"] == 10 and status["held_back_points"] == {"mlwarden.test.latency": 1}
