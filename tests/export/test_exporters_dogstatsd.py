"""DogStatsD mode against real UDP and Unix-datagram listeners parsing the wire format."""

from __future__ import annotations

import gc
import os
import time
import tracemalloc

import pytest

from agent.export.config import DatadogConfig
from agent.export.datadog_statsd import DogStatsdExporter, _Line
from agent.samples import CheckResult, Kind, Sample, Status, make_tags
from tests.export.dogstatsd_listener import DogStatsdListener
from tests.support.procs import wait_for


def results(n: int = 1) -> list[CheckResult]:
    out = []
    for i in range(n):
        tags = make_tags({"check": "Ranker Prod", "model": "ranker|v2,beta", "env": "test"})
        meta = make_tags(tags, {"check_type": "model_endpoint"})
        out.append(CheckResult(
            "Ranker Prod", "model_endpoint", Status.CRITICAL if i else Status.OK,
            message="connection refused" if i else "",
            samples=[Sample("mlwarden.check.duration", 0.25 + i, meta, 1.0),
                     Sample("mlwarden.check.runs", 1.0, meta, 1.0, Kind.COUNT),
                     Sample("mlwarden.agent.cpu.time", 10.0 + 2.5 * i, tags, 1.0, Kind.MONOTONIC_COUNT),
                     Sample("mlwarden.check.status", float(i and 2), meta, 1.0)],
        ))
    return out


@pytest.fixture(params=["udp", "unix"])
def listener(request, tmp_path):
    path = str(tmp_path / "dsd.socket") if request.param == "unix" else None
    with DogStatsdListener(path=path) as lst:
        yield lst


def exporter_for(listener: DogStatsdListener, monkeypatch, telemetry_interval: int = 10,
                 **over) -> DogStatsdExporter:
    # the destination comes from Datadog's own environment variables, as in a pod
    for var in ("DD_AGENT_HOST", "DD_DOGSTATSD_PORT", "DD_DOGSTATSD_SOCKET", "DD_DOGSTATSD_URL"):
        monkeypatch.delenv(var, raising=False)
    if listener.path:
        monkeypatch.setenv("DD_DOGSTATSD_SOCKET", listener.path)
    else:
        monkeypatch.setenv("DD_AGENT_HOST", "127.0.0.1")
        monkeypatch.setenv("DD_DOGSTATSD_PORT", str(listener.port))
    monkeypatch.setenv("DD_ENV", "staging")
    monkeypatch.setenv("DD_SERVICE", "mlwarden")
    monkeypatch.setenv("DD_VERSION", "1.2.3")
    return DogStatsdExporter(DatadogConfig(mode="dogstatsd", **over), telemetry_interval)


async def test_names_values_types_tags_and_service_checks_arrive(listener, monkeypatch):
    exporter = exporter_for(listener, monkeypatch)
    assert exporter.destination == (f"unix://{listener.path}" if listener.path
                                    else f"udp://127.0.0.1:{listener.port}")
    await exporter.start()
    for result in results(2):
        exporter.consume(result)
    exporter.flush()
    wait_for(lambda: len(listener.ours()) >= 7 and len(listener.checks) >= 2, 5, 0.05, "datagrams")
    await exporter.stop()
    assert listener.problems == []
    got = {(m.name, m.type, m.value) for m in listener.ours()}
    assert ("mlwarden.check.duration", "g", 0.25) in got and ("mlwarden.check.duration", "g", 1.25) in got
    assert [m.type for m in listener.ours() if m.name == "mlwarden.check.runs"] == ["c", "c"]  # counts, not gauges
    # a monotonic total: the first only seeds, then the delta goes as a count
    assert [(m.type, m.value) for m in listener.ours() if m.name == "mlwarden.agent.cpu.time"] == [("c", 2.5)]
    tags = set(listener.ours()[0].tags)
    assert {"check:ranker_prod", "model:ranker_v2_beta"} <= tags  # normalised
    # DD_ENV/DD_SERVICE/DD_VERSION, and DD_ENV wins over the sample's env:test (once each)
    assert {"env:staging", "service:mlwarden", "version:1.2.3"} <= tags and "env:test" not in tags
    checks = [c for c in listener.checks if c.name == "mlwarden.model_endpoint.status"]
    assert [c.status for c in checks] == [0, 2]
    assert checks[1].message == "connection refused" and "check:ranker_prod" in checks[1].tags


def send_in_chunks(exporter: DogStatsdExporter, listener: DogStatsdListener) -> None:
    """100 results, flushed every 10 and waited for: a Unix datagram socket queues only a
    few datagrams (net.unix.max_dgram_qlen), so a listener starved of CPU would see drops
    (which the exporter counts, see the test below) rather than the packing under test."""
    batch = results(1)[0]
    for chunk in range(10):
        for _ in range(10):
            exporter.consume(batch)
        exporter.flush()
        want = 40 * (chunk + 1) - 1  # 4 per result, but the first monotonic total only seeds
        wait_for(lambda: len(listener.ours()) >= want, 5, 0.02, f"{want} metrics")


async def test_buffering_packs_many_metrics_per_datagram_and_telemetry_is_on(listener, monkeypatch):
    exporter = exporter_for(listener, monkeypatch, telemetry_interval=0, service_checks=False)
    send_in_chunks(exporter, listener)
    await exporter.stop()
    assert len(listener.ours()) == 399  # 4 per result, but the first monotonic total only seeds
    # unbuffered this would be 399 datagrams (a chunk of 40 lines fills about one 8 KiB datagram)
    assert listener.our_datagrams <= 20, listener.our_datagrams
    names = {m.name for m in listener.snapshot()[0]}
    assert "datadog.dogstatsd.client.packets_sent" in names  # the client's own telemetry
    assert exporter.status()["packets_sent"] >= 1


async def test_unreachable_socket_drops_are_counted_not_silent(tmp_path, monkeypatch):
    for var in ("DD_AGENT_HOST", "DD_DOGSTATSD_PORT", "DD_DOGSTATSD_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DD_DOGSTATSD_SOCKET", str(tmp_path / "nobody-listens.socket"))
    exporter = DogStatsdExporter(DatadogConfig(mode="dogstatsd"))
    for result in results(2):
        exporter.consume(result)
    exporter.flush()
    status = exporter.status()
    await exporter.stop()
    assert status["state"] == "failing"
    assert status["dropped_points"].get("dogstatsd_send_failed", 0) >= 1
    assert "nobody-listens.socket" in status["last_error"] and "Datadog Agent" in status["last_error"]
    assert status["failures"] >= 1


async def test_mtu_sized_packets_for_a_remote_agent(listener, monkeypatch):
    exporter = exporter_for(listener, monkeypatch, service_checks=False, max_packet_size=1432)
    send_in_chunks(exporter, listener)
    await exporter.stop()
    assert 35 <= listener.our_datagrams <= 50, listener.our_datagrams  # ~130-byte lines, 1432-byte packets


def test_config_wins_over_environment(monkeypatch):
    monkeypatch.setenv("DD_AGENT_HOST", "10.0.0.1")
    monkeypatch.setenv("DD_DOGSTATSD_PORT", "9999")
    monkeypatch.delenv("DD_DOGSTATSD_SOCKET", raising=False)
    assert DatadogConfig(host="127.0.0.1", port=8126).dogstatsd_target().port == 8126
    target = DatadogConfig().dogstatsd_target()
    assert (target.host, target.port, target.socket) == ("10.0.0.1", 9999, None)
    monkeypatch.setenv("DD_DOGSTATSD_SOCKET", "/var/run/datadog/dsd.socket")
    assert DatadogConfig().dogstatsd_target().socket == "/var/run/datadog/dsd.socket"
    assert os.environ["DD_AGENT_HOST"] == "10.0.0.1"
    time.sleep(0)


async def test_cached_lines_are_what_the_client_itself_would_send(listener, monkeypatch):
    exporter = exporter_for(listener, monkeypatch, service_checks=False)
    result = results(1)[0]
    exporter.consume(result)  # the cached fast path
    exporter.flush()
    for s in result.samples:  # the client's public calls, same data and shaped tags
        tags = exporter.shaper.shape(s.metric, s.tags).tags
        if s.kind is Kind.GAUGE:
            exporter.statsd.gauge(s.metric, s.value, tags=tags)
        elif s.kind is Kind.COUNT:
            exporter.statsd.count(s.metric, s.value, tags=tags)
    exporter.flush()
    wait_for(lambda: len(listener.ours()) >= 6, 5, 0.05, "both sets of lines")
    await exporter.stop()
    ours = listener.ours()
    assert ours[:3] == ours[3:6]
    assert listener.problems == []


async def test_public_calls_when_the_client_cannot_serialise_lines_for_the_cache(listener, monkeypatch):
    exporter = exporter_for(listener, monkeypatch, service_checks=False)
    monkeypatch.setattr(exporter.statsd, "line_template", lambda *args: None)  # a future client
    exporter.consume(results(1)[0])
    exporter.flush()
    wait_for(lambda: len(listener.ours()) >= 3, 5, 0.05, "the lines")
    await exporter.stop()
    assert [(m.name, m.type) for m in listener.ours()] == [
        ("mlwarden.check.duration", "g"), ("mlwarden.check.runs", "c"), ("mlwarden.check.status", "g")]


async def test_a_series_sent_as_a_gauge_and_as_a_count_keeps_both_lines(listener, monkeypatch):
    exporter = exporter_for(listener, monkeypatch, service_checks=False)
    tags = make_tags({"check": "c", "model": "m"})
    for i, kind in enumerate([Kind.GAUGE, Kind.COUNT, Kind.GAUGE, Kind.COUNT]):
        exporter.consume(CheckResult("c", "model_endpoint", Status.OK, samples=[
            Sample("mlwarden.check.duration", float(i), tags, 1.0),
            Sample("mlwarden.test.twice", float(i), tags, 1.0, kind)]))
    exporter.flush()
    wait_for(lambda: len(listener.ours()) >= 8, 5, 0.05, "the lines")
    await exporter.stop()
    assert [(m.value, m.type) for m in listener.ours() if m.name == "mlwarden.test.twice"] == [
        (0.0, "g"), (1.0, "c"), (2.0, "g"), (3.0, "c")]
    assert listener.problems == []


def endpoint_run(c: int, now: float) -> CheckResult:
    """An endpoint check's run as the agent makes it: 14 series on three tag sets."""
    base = make_tags({"check": f"endpoint-{c}", "check_type": "model_endpoint", "env": "prod"})
    tags = make_tags(base, {"endpoint": f"http://127.0.0.1:18080/m/{c}",
                            "model": f"model-{c % 50}"})
    samples = [Sample(f"mlwarden.endpoint.{m}", 1.0, tags, now) for m in (
        "up", "ready", "http_status", "workers", "workers.ready", "latency.connect", "latency.ttfb",
        "canary.success")]
    samples += [Sample("mlwarden.endpoint.model.info", 1.0, make_tags(tags, {"version": "1"}), now),
                Sample("mlwarden.endpoint.latency", 0.01, tags, now, Kind.DISTRIBUTION),
                Sample("mlwarden.check.duration", 0.02, base, now),
                Sample("mlwarden.check.status", 0.0, base, now),
                Sample("mlwarden.check.runs", 1.0, base, now, Kind.COUNT),
                Sample("mlwarden.agent.cpu.time", now, base, now, Kind.MONOTONIC_COUNT)]
    return CheckResult(f"endpoint-{c}", "model_endpoint", Status.OK, samples=samples, started=now)


def test_a_series_costs_the_exporter_about_300_bytes():
    """What the line cache, the shaper and the budget hold a series of an endpoint check
    (issue #20: ~650 bytes before its sixth pass, a list, a key tuple and a line tail a
    series in the cache, the shaper's key tuples, a ticket and two dict slots in the budget).
    A line is now one object that is also its series' budget ticket, in a dict per tag set,
    and a check's series share their shaped tags tuple and line tails. Two windows of 1,000
    further checks, the smaller kept: the tails are interned, and the interpreter's table of
    interned strings may grow (megabytes, not ours) in either window, not in both."""
    ours = [tracemalloc.Filter(True, f"*/agent/export/{name}.py")
            for name in ("datadog_statsd", "datadog_shape", "budget")]
    with DogStatsdListener() as listener:
        exporter = DogStatsdExporter(DatadogConfig(host="127.0.0.1", port=listener.port,
                                                   service_checks=False), environ={})
        now = time.time()

        def add(checks: range) -> None:
            for run in (0, 1):  # a monotonic total's first run only seeds
                for c in checks:
                    exporter.consume(endpoint_run(c, now + run))
            exporter.flush()  # (the client's buffer is not the exporter's)

        add(range(100))
        tracemalloc.start(1)
        try:
            snapshots = [tracemalloc.take_snapshot().filter_traces(ours)]
            for first in (100, 1100):
                add(range(first, first + 1000))
                snapshots.append(tracemalloc.take_snapshot().filter_traces(ours))
        finally:
            tracemalloc.stop()
        exporter.statsd.stop()
    assert exporter.status()["custom_metrics"]["active"] == 2100 * (13 + 5)  # a distribution: 5
    held = min(sum(stat.size_diff for stat in after.compare_to(before, "filename"))
               for before, after in zip(snapshots, snapshots[1:]))
    assert held / (1000 * 14) < 400, f"{held / (1000 * 14):.0f} bytes a series"


def test_lines_that_leave_the_cache_are_not_kept_as_budget_tickets():
    """A cached line is its series' budget ticket. A line the cache lets go (its check
    forgotten; every line once the budget drops a tag) must not live on as a ticket for as
    long as its series is sent: the budget takes a plain one, and the next line takes over."""
    def alive() -> int:
        gc.collect()
        return sum(1 for o in gc.get_objects() if type(o) is _Line)

    def run(c: int, now: float, pods: int = 1) -> CheckResult:
        tags = make_tags({"check": f"c{c}", "model": "m"})
        return CheckResult(f"c{c}", "openmetrics", Status.OK, started=now, samples=[
            Sample("mlwarden.check.duration", 0.1, tags, now),
            Sample("mlwarden.check.status", 0.0, tags, now),
            Sample("mlwarden.check.runs", 1.0, tags, now, Kind.COUNT),
            *[Sample("mlwarden.openmetrics.demo_requests", 1.0,
                     make_tags(tags, {"pod": f"p{p}"}), now) for p in range(pods)]])

    elsewhere = alive()
    exporter = DogStatsdExporter(DatadogConfig(host="127.0.0.1", port=9, service_checks=False,
                                               custom_metrics_budget=100, cardinality_tags=["pod"]),
                                 environ={})
    now = time.time()
    for c in range(10):
        exporter.consume(run(c, now))
    assert alive() - elsewhere == exporter._series == 40
    for c in range(5):
        exporter.forget(f"c{c}")
    assert alive() - elsewhere == exporter._series == 20
    for c in range(10):
        exporter.consume(run(c, now + 1))
    assert alive() - elsewhere == exporter._series == 40
    assert exporter.status()["custom_metrics"]["active"] == 40
    exporter.consume(run(0, now + 2, pods=80))  # over the budget: the pods go, the cache empties
    dropped = exporter.status()["custom_metrics"]["tags_dropped"]
    assert dropped == {"mlwarden.openmetrics.demo_requests": ["pod"]}
    for c in range(10):
        exporter.consume(run(c, now + 3))
    assert alive() - elsewhere == exporter._series
    status = exporter.status()["custom_metrics"]
    assert (status["active"], status["held_back_points"]) == (40, {})


async def test_a_series_the_client_cannot_template_does_not_change_its_metric_siblings(listener, monkeypatch):
    # the line head is shared by a metric's series: one the client cannot serialise for the
    # cache goes through the public calls alone, whether it comes first or after the others
    exporter = exporter_for(listener, monkeypatch, service_checks=False)
    real = exporter.statsd.line_template
    monkeypatch.setattr(exporter.statsd, "line_template",
                        lambda metric, kind, tags: None if any("model:odd" in t for t in tags)
                        else real(metric, kind, tags))
    order = ["a", "odd", "b", "odd", "c"]
    for i, model in enumerate(order):
        exporter.consume(CheckResult(model, "model_endpoint", Status.OK, samples=[
            Sample("mlwarden.check.duration", float(i), make_tags({"check": model, "model": model}), 1.0)]))
    exporter.flush()
    wait_for(lambda: len(listener.ours()) >= len(order), 5, 0.05, "the lines")
    await exporter.stop()
    got = sorted((m.value, m.type, next(t for t in m.tags if t.startswith("model:")))
                 for m in listener.ours() if m.name == "mlwarden.check.duration")
    assert got == [(float(i), "g", f"model:{model}") for i, model in enumerate(order)]
    assert listener.problems == []
