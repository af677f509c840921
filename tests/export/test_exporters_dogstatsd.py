"""DogStatsD mode against real UDP and Unix-datagram listeners parsing the wire format."""

from __future__ import annotations

import os
import time

import pytest

from agent.export.config import DatadogConfig
from agent.export.datadog_statsd import DogStatsdExporter
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
