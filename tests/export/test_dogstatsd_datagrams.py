"""DogStatsD datagrams as they leave the exporter: each check result's lines are packed into
the client's buffer at once (``_CountingDogStatsd.send_lines``), so these tests read the
raw datagrams off a real UDP socket on 127.0.0.1 and a real Unix datagram socket and check
that every line arrives exactly once, whole, in datagrams no larger than the limit, and
that the client's counters and failure handling still see every datagram.
"""

from __future__ import annotations

import errno
import socket
from collections import Counter

import pytest

from agent.export.config import DatadogConfig
from agent.export.datadog_statsd import DogStatsdExporter
from agent.samples import CheckResult, Kind, Sample, Status, make_tags

PER_READ = 0.5  # seconds a read waits for a datagram the exporter already sent


class Receiver:
    """A bound datagram socket read in the test's own thread: the client sends synchronously,
    so what ``consume``/``flush`` sent is in its queue when they return."""

    def __init__(self, path: str | None = None) -> None:
        self.path = path
        family = socket.AF_UNIX if path else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.bind(path or ("127.0.0.1", 0))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.settimeout(PER_READ)
        self.port = 0 if path else self.sock.getsockname()[1]
        self.datagrams: list[bytes] = []

    def drain(self) -> None:
        """Everything queued now (a Unix socket queues only net.unix.max_dgram_qlen datagrams,
        10 by default: the tests drain after each result, and a result makes fewer)."""
        self.sock.setblocking(False)
        try:
            while True:
                self.datagrams.append(self.sock.recv(1 << 16))
        except BlockingIOError:
            pass
        finally:
            self.sock.settimeout(PER_READ)

    def read_lines(self, count: int) -> list[str]:
        """Datagrams until ``count`` lines arrived (every datagram ends with a newline)."""
        self.drain()
        while sum(d.count(b"\n") for d in self.datagrams) < count:
            self.datagrams.append(self.sock.recv(1 << 16))  # raises on a lost datagram
        assert all(d.endswith(b"\n") for d in self.datagrams)
        return [line for d in self.datagrams for line in d.decode().split("\n")[:-1]]

    def close(self) -> None:
        self.sock.close()


def destination(monkeypatch, receiver: Receiver) -> None:
    for var in ("DD_AGENT_HOST", "DD_DOGSTATSD_PORT", "DD_DOGSTATSD_SOCKET", "DD_DOGSTATSD_URL",
                "DD_DOGSTATSD_DISABLE", "DATADOG_TAGS"):
        monkeypatch.delenv(var, raising=False)
    if receiver.path:
        monkeypatch.setenv("DD_DOGSTATSD_SOCKET", receiver.path)
    else:
        monkeypatch.setenv("DD_AGENT_HOST", "127.0.0.1")
        monkeypatch.setenv("DD_DOGSTATSD_PORT", str(receiver.port))
    monkeypatch.setenv("DD_ENV", "staging")
    monkeypatch.setenv("DD_SERVICE", "mlwarden")
    monkeypatch.setenv("DD_VERSION", "1.2.3")
    # origin detection's constant tag, kept on every line; not ASCII, so bytes != characters
    monkeypatch.setenv("DD_ENTITY_ID", "pod-" + "été" * 8)


def check_results(count: int, start: int = 0) -> list[CheckResult]:
    """Results of 1 to 10 samples, of every kind, with tags of varied lengths (lines of
    150-230 bytes: at most 5 datagrams of 512 bytes a result)."""
    out = []
    for i in range(start, start + count):
        tags = make_tags({"check": f"endpoint-{i % 37}", "model": f"model-{i % 5}",
                          "endpoint": f"http://10.0.{i % 250}.{i % 7}:8080/" + "v" * (i % 61)})
        samples = [Sample(f"mlwarden.test.gauge_{j}", i * 0.5 + j / 3, tags, 1.0) for j in range(i % 9)]
        samples.append(Sample("mlwarden.check.runs", 1.0, tags, 1.0, Kind.COUNT))
        if i % 4 == 0:
            samples.append(Sample("mlwarden.endpoint.latency", 0.01 * i, tags, 1.0, Kind.DISTRIBUTION))
        out.append(CheckResult(f"endpoint-{i % 37}", "model_endpoint", Status.OK,
                               samples=samples, interval=3600))
    return out


_TYPE = {Kind.GAUGE: "g", Kind.COUNT: "c", Kind.DISTRIBUTION: "d"}


def feed(exporter: DogStatsdExporter, receiver: Receiver, results: list[CheckResult]) -> None:
    """Consume each result (a full datagram is sent from inside), then flush."""
    for result in results:
        exporter.consume(result)
        receiver.drain()
    exporter.flush()
    receiver.drain()


def expected_lines(exporter: DogStatsdExporter, results: list[CheckResult]) -> list[str]:
    """Each sample's line as the datadog client serialises it for its public calls."""
    return [exporter.statsd._serialize_metric(s.metric, _TYPE[s.kind], s.value,
                                              list(exporter.shaper.shape(s.metric, s.tags).tags))
            for r in results for s in r.samples]


@pytest.fixture(params=["udp", "unix"])
def receiver(request, tmp_path):
    rx = Receiver(str(tmp_path / "dsd.socket") if request.param == "unix" else None)
    yield rx
    rx.close()


@pytest.mark.parametrize("packet", [None, 1432, 512])
def test_every_line_arrives_once_and_whole_in_datagrams_within_the_limit(receiver, monkeypatch, packet):
    destination(monkeypatch, receiver)
    exporter = DogStatsdExporter(DatadogConfig(mode="dogstatsd", service_checks=False,
                                               max_packet_size=packet), telemetry_interval=3600)
    assert exporter.statsd.batches()
    results = check_results(120)
    for chunk in range(0, len(results), 10):
        feed(exporter, receiver, results[chunk:chunk + 10])
    want = expected_lines(exporter, results)
    got = receiver.read_lines(len(want))
    limit = packet or 8192
    sizes = [len(d) for d in receiver.datagrams]
    assert "pod-" + "été" * 8 in got[0] and len(got[0].encode()) > len(got[0])  # the byte count matters
    assert Counter(got) == Counter(want)  # every line, once, none split or merged
    assert max(sizes) <= limit, sizes
    # packed: a datagram is sent when the next line does not fit (or on a flush, 12 here)
    full = limit - max(len(line.encode()) + 1 for line in want)
    assert len(sizes) <= sum(sizes) / full + 12, (len(sizes), sum(sizes), full)
    assert exporter.status()["packets_sent"] == len(sizes)  # the client's counters saw each
    assert exporter.statsd.metrics_count == len(want)
    assert exporter.status()["state"] == "ok"
    assert exporter.health.as_dict()["dropped_points"] == {}


def test_a_line_longer_than_a_datagram_goes_alone_as_the_client_sends_it(receiver, monkeypatch):
    destination(monkeypatch, receiver)
    exporter = DogStatsdExporter(DatadogConfig(mode="dogstatsd", service_checks=False,
                                               max_packet_size=512), telemetry_interval=3600)
    long_tags = make_tags({"check": "a", "path": "p" * 190, "query": "q" * 190, "body": "b" * 190})
    result = check_results(3)[2]  # 2 gauges, a count
    result.samples.insert(1, Sample("mlwarden.test.long", 7.0, long_tags, 1.0))
    feed(exporter, receiver, [check_results(1, 5)[0], result])  # the first waits in the buffer
    want = expected_lines(exporter, check_results(1, 5) + [result])
    got = receiver.read_lines(len(want))
    assert Counter(got) == Counter(want)
    long = [d for d in receiver.datagrams if b"mlwarden.test.long" in d]
    assert len(long) == 1 and long[0].count(b"\n") == 1 and len(long[0]) > 512
    assert all(len(d) <= 512 for d in receiver.datagrams if d is not long[0])


async def test_a_socket_that_fails_is_counted_then_reconnected(tmp_path, monkeypatch):
    """The Agent's Unix socket goes away mid-stream, then comes back: the client's own error
    handling (drop, close, reconnect on the next send) runs for the packed datagrams."""
    path = str(tmp_path / "dsd.socket")
    receiver = Receiver(path)
    destination(monkeypatch, receiver)
    exporter = DogStatsdExporter(DatadogConfig(mode="dogstatsd", service_checks=False,
                                               max_packet_size=512), telemetry_interval=3600)
    first = check_results(5)
    feed(exporter, receiver, first)
    assert Counter(receiver.read_lines(len(expected_lines(exporter, first)))) == \
        Counter(expected_lines(exporter, first))
    receiver.close()  # the Agent stops: its socket file is left behind, nobody reads it
    for result in check_results(20, 5):  # datagrams go out from inside consume (512 B full)
        exporter.consume(result)
    exporter.flush()
    status = exporter.status()
    dropped = status["dropped_points"].get("dogstatsd_send_failed", 0)
    assert dropped >= 20 and dropped == exporter.statsd.dropped_so_far
    assert status["state"] == "failing" and "dsd.socket" in status["last_error"]
    # the Agent is back on the same path: the next datagrams find it
    (tmp_path / "dsd.socket").unlink()
    back = Receiver(path)
    later = check_results(4, 40)
    feed(exporter, back, later)
    assert Counter(back.read_lines(len(expected_lines(exporter, later)))) == \
        Counter(expected_lines(exporter, later))
    assert exporter.statsd.dropped_so_far == dropped
    await exporter.stop()
    back.close()


def test_udp_to_a_closed_port_counts_drops(monkeypatch):
    """UDP: the kernel reports the closed port (ECONNREFUSED) on a later send of the
    connected socket; the client drops that datagram and reopens, so about every other
    datagram is counted."""
    receiver = Receiver()
    destination(monkeypatch, receiver)
    receiver.close()
    exporter = DogStatsdExporter(DatadogConfig(mode="dogstatsd", service_checks=False,
                                               max_packet_size=512), telemetry_interval=3600)
    for result in check_results(30):
        exporter.consume(result)
    exporter.flush()
    status = exporter.status()
    assert status["dropped_points"].get("dogstatsd_send_failed", 0) >= 10
    assert status["state"] == "failing"
    assert exporter.statsd.sent_so_far + exporter.statsd.dropped_so_far >= 20


def test_dd_dogstatsd_disable_sends_nothing(monkeypatch):
    """DD_DOGSTATSD_DISABLE turns the client off; its public calls send nothing, nor do ours."""
    receiver = Receiver()
    destination(monkeypatch, receiver)
    monkeypatch.setenv("DD_DOGSTATSD_DISABLE", "true")
    exporter = DogStatsdExporter(DatadogConfig(mode="dogstatsd", service_checks=False),
                                 telemetry_interval=3600)
    for result in check_results(10):
        exporter.consume(result)
    exporter.flush()
    receiver.drain()
    receiver.close()
    assert receiver.datagrams == [] and exporter.statsd._buffer == []
    assert exporter.statsd.sent_so_far == 0 and exporter.statsd.metrics_count == 0


def test_unbuffered_still_sends_one_datagram_a_metric(receiver, monkeypatch):
    destination(monkeypatch, receiver)
    exporter = DogStatsdExporter(DatadogConfig(mode="dogstatsd", service_checks=False,
                                               buffering=False), telemetry_interval=3600)
    assert not exporter.statsd.batches()
    results = check_results(3, 3)  # 3, 4 and 5 gauges, a count each, a distribution
    feed(exporter, receiver, results)
    want = expected_lines(exporter, results)
    got = receiver.read_lines(len(want))
    assert Counter(got) == Counter(want) and len(receiver.datagrams) == len(want)


def test_errno_of_a_closed_udp_port_is_what_the_client_handles():
    """The premise of the UDP test above, checked on this kernel with a bare socket."""
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.connect(rx.getsockname())
    rx.close()
    tx.send(b"x")
    with pytest.raises(OSError) as err:
        tx.send(b"x")
    tx.close()
    assert err.value.errno == errno.ECONNREFUSED


def test_service_checks_are_the_lines_the_client_itself_writes(receiver, monkeypatch):
    """A result's service check goes in its datagram with its lines, written from a cached
    template: the same line as the client's ``service_check`` (status, tags with the kept
    constant tag, the escaped message)."""
    destination(monkeypatch, receiver)
    exporter = DogStatsdExporter(DatadogConfig(mode="dogstatsd"), telemetry_interval=3600)
    results = check_results(6, 2)
    messages = ["", "connection refused", "HTTP 503\nm:retry in 5 s", "", "timed out", ""]
    for result, status, message in zip(results, [0, 2, 1, 3, 2, 0], messages, strict=True):
        result.status, result.message = Status(status), message
        result.samples.append(Sample("mlwarden.check.status", float(status), result.samples[0].tags, 1.0))
    feed(exporter, receiver, results)
    for result in results:
        exporter.consume(result)  # the second time: the cached template
        receiver.drain()
    exporter.flush()
    count = 2 * sum(len(r.samples) for r in results)
    assert exporter.statsd.service_checks_count == 12 and exporter.statsd.metrics_count == count
    ours = [line for line in receiver.read_lines(count + 12) if line.startswith("_sc|")]
    receiver.datagrams.clear()
    for result in results:  # the client's public call, as the exporter made it before
        exporter.statsd.service_check(
            "mlwarden.model_endpoint.status", int(result.status),
            tags=exporter.shaper.plain(tuple(p for p in result.samples[-1].tags if p[0] != "check_type")),
            message=result.message or None)
    exporter.flush()
    theirs = receiver.read_lines(6)
    assert ours == theirs + theirs
    assert theirs[2].startswith("_sc|mlwarden.model_endpoint.status|1|#") and \
        theirs[2].endswith("|m:HTTP 503\\nm\\:retry in 5 s") and "|m:" not in theirs[0]
    assert all("dd.internal.entity_id:pod-" in line for line in theirs)


async def test_a_large_result_in_slices_sends_each_line_once_and_one_service_check(monkeypatch):
    """The pipeline hands a result of thousands of samples to consume_in_slices (the loop
    runs between slices): the same lines arrive as from consume, and one service check."""
    from agent.export.datadog_statsd import SLICE

    receiver = Receiver()
    try:
        destination(monkeypatch, receiver)
        exporter = DogStatsdExporter(DatadogConfig(mode="dogstatsd"), telemetry_interval=3600)
        samples = [s for r in check_results(600) for s in r.samples]
        result = CheckResult("agent", "agent", Status.WARNING, message="3 check(s) failing",
                             samples=samples, interval=15)
        assert len(samples) > 2 * SLICE
        await exporter.consume_in_slices(result)
        exporter.flush()
        want = expected_lines(exporter, [result])
        got = receiver.read_lines(len(want) + 1)
    finally:
        receiver.close()
    checks = [line for line in got if line.startswith("_sc|")]
    assert len(checks) == 1 and checks[0].startswith("_sc|mlwarden.agent.status|1|")
    assert Counter(line for line in got if not line.startswith("_sc|")) == Counter(want)
    assert exporter.health.as_dict()["dropped_points"] == {}
