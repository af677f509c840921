"""Datadog through a local Datadog Agent: DogStatsD over UDP or a Unix socket.

The hot path is ``consume()``: each series' datagram line is serialised once by the
client itself and cached, split around the value, so a poll costs a dict lookup, a float
format and a buffer append per metric, and a datagram carries many metrics. UDP drops are
silent, so the client's own telemetry is on and its drop counters are read (they reset
each time the client flushes its telemetry; :class:`_CountingDogStatsd` keeps totals).

Kinds: gauges are gauges; ``count`` samples are sent as counts (``|c``), never gauges;
``monotonic_count`` totals become the delta since the previous total, sent as counts.
Each check result also becomes a service check ``mlwarden.<check type>.status`` tagged
with the instance, so Datadog monitors can follow every check instance's status.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from datadog.dogstatsd.base import DogStatsd

from agent.export.config import DatadogConfig
from agent.export.counters import MonotonicDeltas
from agent.export.health import ExporterHealth
from agent.export.tags import dd_tags, instance_tags, service_check_name
from agent.samples import CheckResult, Kind, SeriesKey, Tags

__all__ = ["DogStatsdExporter"]

log = logging.getLogger(__name__)
_UNSET: Any = ("", "")  # a cache miss (None in the cache means: use the public calls)


class _CountingDogStatsd(DogStatsd):  # type: ignore[misc]
    """DogStatsd whose telemetry counters are also kept as totals across telemetry flushes."""

    def _reset_telemetry(self) -> None:
        self.total_dropped = getattr(self, "total_dropped", 0) + getattr(self, "packets_dropped_queue", 0) \
            + getattr(self, "packets_dropped_writer", 0) + getattr(self, "packets_dropped_expired", 0)
        self.total_sent = getattr(self, "total_sent", 0) + getattr(self, "packets_sent", 0)
        super()._reset_telemetry()

    def line_template(self, metric: str, metric_type: str, tags: list[str]) -> tuple[str, str] | None:
        """The datagram line of a series split around its value, serialised once by the
        client itself (namespace, constant tags, container id as it would send them).

        None when this client version lacks the internals the fast path relies on; the
        exporter then uses the public ``gauge``/``count`` calls.
        """
        try:
            line = self._serialize_metric(metric, metric_type, "\x00", tags)
        except (AttributeError, TypeError):
            return None
        head, sep, tail = line.partition(":\x00|")
        if not sep or "\x00" in tail:
            return None
        return head + ":", "|" + tail

    def send_line(self, line: str) -> None:
        """Hand one serialised line to the client's buffer, counted in its telemetry."""
        if self._telemetry:
            self.metrics_count += 1
        self._send(line)

    @property
    def dropped_so_far(self) -> int:
        return int(self.total_dropped + self.packets_dropped)

    @property
    def sent_so_far(self) -> int:
        return int(self.total_sent + self.packets_sent)


class DogStatsdExporter:
    """Pipeline sink and component that sends every sample to a DogStatsD server."""

    name = "datadog"

    def __init__(self, config: DatadogConfig, telemetry_interval: int = 10) -> None:
        self.config = config
        self.target = config.dogstatsd_target()
        self.health = ExporterHealth("datadog")
        self.health.state = "ok"
        self._deltas = MonotonicDeltas()
        self._seen_dropped = 0
        self.statsd = _CountingDogStatsd(
            host=None if self.target.socket else self.target.host,
            port=None if self.target.socket else self.target.port,
            socket_path=self.target.socket,
            disable_buffering=not config.buffering,
            flush_interval=config.interval,
            max_buffer_len=config.max_packet_size or _default_packet_size(self.target.host, self.target.socket),
            disable_telemetry=False,
            telemetry_min_flush_interval=telemetry_interval,
            # DD_ENV, DD_SERVICE and DD_VERSION become env/service/version constant tags
            # inside the client; nothing to add here.
            constant_tags=[],
            origin_detection_enabled=False,
        )
        self._lines: dict[tuple[SeriesKey, Kind], tuple[str, str] | None] = {}
        self._send_line = self.statsd.send_line

    @property
    def destination(self) -> str:
        if self.target.socket:
            return f"unix://{self.target.socket}"
        return f"udp://{self.target.host}:{self.target.port}"

    # -- component -------------------------------------------------------------------
    async def start(self) -> None:
        log.info("sending metrics to DogStatsD at %s (buffering %s)", self.destination,
                 "on" if self.config.buffering else "off")

    async def stop(self) -> None:
        self.flush()
        self.statsd.close_socket()
        self.statsd.stop()

    def status(self) -> dict[str, Any]:
        self._observe_drops()
        return {"mode": "dogstatsd", "destination": self.destination,
                "packets_sent": self.statsd.sent_so_far, **self.health.as_dict()}

    # -- sink ------------------------------------------------------------------------
    def consume(self, result: CheckResult) -> None:
        """Send a result's samples; a series' line is serialised once, then only its value."""
        lines, send, deltas = self._lines, self._send_line, self._deltas
        n = 0
        for sample in result.samples:
            kind = sample.kind
            value = sample.value
            if kind is Kind.MONOTONIC_COUNT:
                delta = deltas.delta(sample.key, value)
                if delta is None:
                    continue
                value = delta
            template = lines.get((sample.key, kind), _UNSET)
            if template is _UNSET:
                template = self._template(sample.metric, kind, sample.tags)
            if template is None:
                self._fallback(sample.metric, kind, value, sample.tags)
            else:
                send(template[0] + repr(value) + template[1])
            n += 1
        if self.config.service_checks and result.check_type != "exporters":
            self.statsd.service_check(
                service_check_name(result.check_type), int(result.status),
                tags=dd_tags(instance_tags(result)), message=result.message or None,
            )
        self.health.success(n)
        self._observe_drops()

    def _template(self, metric: str, kind: Kind, tags: Tags) -> tuple[str, str] | None:
        # distributions go as gauges until they are sent as DogStatsD `d` (issue #17)
        mtype = "g" if kind in (Kind.GAUGE, Kind.DISTRIBUTION) else "c"
        template = self.statsd.line_template(metric, mtype, dd_tags(tags))
        self._lines[((metric, tags), kind)] = template
        return template

    def _fallback(self, metric: str, kind: Kind, value: float, tags: Tags) -> None:
        if kind in (Kind.GAUGE, Kind.DISTRIBUTION):
            self.statsd.gauge(metric, value, tags=dd_tags(tags))
        else:
            self.statsd.count(metric, value, tags=dd_tags(tags))

    def forget(self, check: str) -> None:
        self._deltas.forget(check)
        for key in [k for k in self._lines if ("check", check) in k[0][1]]:
            del self._lines[key]

    def flush(self) -> None:
        self.statsd.flush()
        self._observe_drops()

    def _observe_drops(self) -> None:
        dropped = self.statsd.dropped_so_far
        if dropped > self._seen_dropped:
            new = dropped - self._seen_dropped
            self._seen_dropped = dropped
            self.health.drop("dogstatsd_send_failed", new)
            self.health.failure(
                f"{new} DogStatsD packet(s) could not be sent to {self.destination} "
                "(is the Datadog Agent running and listening there?)", time.time())


def _default_packet_size(host: str, socket_path: str | None) -> int:
    """8192 bytes to a Datadog Agent on this host (its default dogstatsd_buffer_size; no
    network MTU on loopback or a Unix socket), else 0: the client's 1432 for UDP."""
    if socket_path or host in ("localhost", "::1") or host.startswith("127."):
        return 8192
    return 0
