"""Datadog through a local Datadog Agent: DogStatsD over UDP or a Unix socket.

The hot path is ``consume()``: each series' datagram line is serialised once by the
client itself and cached, split around the value, so a poll costs a dict lookup and a
float format per metric; a result's lines (and its service check, from a cached template)
then go into the client's buffer at once, under one lock, in whole lines (issue #20: the
client's per-line ``_send_to_buffer`` was half the cost), and a datagram carries many
metrics. The client still sends the datagrams (its flush thread, socket, error handling).
UDP drops are silent, so the client's own telemetry is on and its drop counters are read
(they reset each time the client flushes its telemetry; :class:`_CountingDogStatsd` keeps
totals).

The line cache is what this exporter holds per series (issue #20, RSS per check: ~650
bytes a series before its sixth pass, ~300 after): lines are found by the sample's tags,
then its metric (a check's series share their tags tuple, so one lookup serves a run's
samples in a row, and no key tuple is made a series); a check's series share their shaped
tags tuple and their line tails; and a cached line is its series' budget ticket itself.

Kinds: gauges are gauges; ``count`` samples are sent as counts (``|c``), never gauges;
``monotonic_count`` totals become the delta since the previous total, sent as counts;
``distribution`` observations go as distributions (``|d``), so Datadog computes
percentiles across agents. Each check result also becomes a service check
``mlwarden.<check type>.status`` tagged with the instance, so Datadog monitors can follow
every check instance's status, and samples of event metrics become events (``_e``,
:mod:`agent.export.events`).

What a series is (facts off, unified service tags, normalised tags, the custom-metrics
budget) is decided by :class:`~agent.export.datadog_shape.Shaper`, shared with API mode.
The client's own ``DD_ENV``/``DD_SERVICE``/``DD_VERSION``/``DATADOG_TAGS`` constant tags
are taken off it, so each of those keys is sent once, with the precedence of
:mod:`agent.export.unified`.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from typing import Any

from collections.abc import Iterable, Mapping, Sequence

from agent.catalog import Catalog, load_catalog
from agent.export.budget import Admission, CustomMetricsBudget, Ticket, catalog_weight
from agent.export.config import DatadogConfig
from agent.export.counters import MonotonicDeltas
from agent.export.datadog_shape import Shaper
from agent.export.dogstatsd_client import DogStatsd, normalize_tags
from agent.export.events import SOURCE, DatadogEvent, EventDetector
from agent.export.health import ExporterHealth
from agent.export.tags import dd_tag, instance_tags, service_check_name
from agent.export.unified import UnifiedTags
from agent.samples import (
    AGENT_CHECK_TYPE,
    EXPORTERS_CHECK,
    CheckResult,
    Kind,
    Sample,
    Tags,
)

__all__ = ["DogStatsdExporter"]

log = logging.getLogger(__name__)
SLICE = 1000  # samples of a large result sent before the loop may run other tasks
_TYPE = {Kind.GAUGE: "g", Kind.COUNT: "c", Kind.MONOTONIC_COUNT: "c", Kind.DISTRIBUTION: "d"}
# the client's constant tags kept: origin detection (DD_ENTITY_ID), which the Agent strips
_KEEP_CONSTANT = ("dd.internal.entity_id:",)


_CLIENT_SOCKET = getattr(DogStatsd, "socket", None)


class _CountingDogStatsd(DogStatsd):  # type: ignore[misc]
    """DogStatsd whose telemetry counters are also kept as totals across telemetry flushes."""

    def _reset_telemetry(self) -> None:
        self.total_dropped = getattr(self, "total_dropped", 0) + getattr(self, "packets_dropped_queue", 0) \
            + getattr(self, "packets_dropped_writer", 0) + getattr(self, "packets_dropped_expired", 0)
        self.total_sent = getattr(self, "total_sent", 0) + getattr(self, "packets_sent", 0)
        super()._reset_telemetry()

    if isinstance(_CLIENT_SOCKET, property):  # datadog 0.4x-0.5x
        @_CLIENT_SOCKET.setter
        def socket(self, new_socket: Any) -> None:
            """The client's setter, but a configured packet size holds with no socket too:
            the client falls back to 1432 bytes until it connects (and after each socket
            error), so the first datagram could pass a smaller ``max_packet_size``."""
            _CLIENT_SOCKET.fset(self, new_socket)  # type: ignore[misc]
            if getattr(self, "_max_buffer_len", 0):
                self._max_payload_size = self._max_buffer_len

    def line_template(self, metric: str, metric_type: str,
                      tags: Sequence[str]) -> tuple[str, str] | None:
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
        # a metric's head: one string for all its series; a tail: one for all the series of
        # a type with the same tags (a check's gauges: 115 bytes a series otherwise)
        return sys.intern(head + ":"), sys.intern("|" + tail)

    def check_template(self, name: str, tags: list[str]) -> tuple[str, str, str]:
        """A service check's line around its status and message, as the client's
        ``service_check`` writes it (datadog 0.56: ``_sc|name|status|#tags|m:message|c:container``
        ``|card:cardinality``), so a result's check goes in its datagram with its lines."""
        tags = tags + list(self.constant_tags)
        mid = "|#" + ",".join(normalize_tags(tags)) if tags else ""
        container, cardinality = getattr(self, "_container_id", None), getattr(self, "cardinality", None)
        tail = f"|c:{container}" if container else ""
        if cardinality:
            tail += f"|card:{cardinality}"
        return sys.intern(f"_sc|{name}|"), mid, tail  # (one string a check type)

    @staticmethod
    def check_message(message: str) -> str:
        """The ``|m:`` field of a service check line (empty: none), escaped as the client does."""
        return "|m:" + DogStatsd._escape_service_check_message(message) if message else ""

    def send_line(self, line: str) -> None:
        """Hand one serialised line to the client's buffer, counted in its telemetry."""
        if self._telemetry:
            self.metrics_count += 1
        self._send(line)

    def batches(self) -> bool:
        """Whether :meth:`send_lines` can pack lines into the client's own buffer: buffering
        on and the buffer internals of datadog 0.4x-0.5x there (else it sends line by line)."""
        return not self._disable_buffering and all(
            hasattr(self, a) for a in ("_buffer", "_buffer_size", "_buffer_lock", "_enabled",
                                       "_max_payload_size", "_flush_one_buffer"))

    def send_lines(self, lines: list[str], checks: int = 0) -> None:
        """Hand a check result's lines to the client's buffer at once, counted in its telemetry
        (the last ``checks`` lines are service checks).

        The client takes a lock and makes several calls per line (``_send_to_buffer``):
        half the exporter's cost per metric. Here the lines go in joined, under one lock,
        as one item of the buffer the client joins into datagrams, so its flush thread,
        ``flush()``, socket handling, background sender and drop counters work as for its
        own lines. A datagram never grows past the client's ``_max_payload_size`` (counted
        in bytes, where the client counts characters) and a line is never split: a result
        that does not fit fills the datagram with whole lines, which is then sent (a line
        longer than a datagram goes alone, as the client sends it).
        """
        if self._enabled is not True:  # DD_DOGSTATSD_DISABLE, as the client's _report
            return
        if self._telemetry:
            self.metrics_count += len(lines) - checks
            self.service_checks_count += checks
        chunk = "\n".join(lines)
        size = (len(chunk) if chunk.isascii() else len(chunk.encode(self.encoding))) + 1
        with self._buffer_lock:
            if self._buffer_size + size <= self._max_payload_size:
                self._buffer.append(chunk)
                self._buffer_size += size
                return
            self._pack(lines, size)

    def _pack(self, lines: list[str], size: int) -> None:
        """The lines that fit go in the current datagram, which is sent; the rest start the
        next (the caller holds the buffer lock; ``size``: the lines' bytes, a newline each)."""
        while True:
            room = self._max_payload_size - self._buffer_size
            if size <= room:
                self._buffer.append("\n".join(lines))
                self._buffer_size += size
                return
            take = used = 0
            for line in lines:
                n = (len(line) if line.isascii() else len(line.encode(self.encoding))) + 1
                if used + n > room:
                    if not take and not self._buffer:  # longer than a datagram: alone, as the client does
                        take, used = 1, n
                    break
                take += 1
                used += n
            if take:
                self._buffer.append("\n".join(lines[:take]))
                self._buffer_size += used
            self._flush_one_buffer(False)
            lines = lines[take:]
            size -= used
            if not lines:
                return

    @property
    def dropped_so_far(self) -> int:
        return int(self.total_dropped + self.packets_dropped)

    @property
    def sent_so_far(self) -> int:
        return int(self.total_sent + self.packets_sent)


class _Head:
    """What the cached lines of one metric and kind share: the line's head (``text`` None:
    send through the client's public calls) and whether the metric makes events."""

    __slots__ = ("metric", "kind", "text", "events")

    def __init__(self, metric: str, kind: Kind, text: str | None, events: bool) -> None:
        self.metric = metric
        self.kind = kind
        self.text = text
        self.events = events


class _Line(Ticket):
    """A series' cached line: its head, the tail after its value, the tags it is sent with,
    and once admitted its budget ticket: the line itself (one object a series, ~11 an
    endpoint check, not a ticket beside it), or the ticket of the series it merged into."""

    __slots__ = ("head", "tail", "names", "ticket")

    def __init__(self, head: _Head, tail: str, names: tuple[str, ...]) -> None:
        self.head = head
        self.tail = tail
        self.names = names  # shaped tags: with the metric, the budget's key for the series
        self.ticket: Ticket | None = None
        self.seen = 0.0
        self.live = False  # (set by the budget when it takes the line as a ticket)


class DogStatsdExporter:
    """Pipeline sink and component that sends every sample to a DogStatsD server."""

    name = "datadog"

    def __init__(self, config: DatadogConfig, telemetry_interval: int = 10, *,
                 catalog: Catalog | None = None, file_tag_keys: Iterable[str] = (),
                 environ: Mapping[str, str] | None = None) -> None:
        self.config = config
        self.target = config.dogstatsd_target()
        self.catalog = catalog or load_catalog()
        self.health = ExporterHealth("datadog")
        self.health.state = "ok"
        self._deltas = MonotonicDeltas()
        self._seen_dropped = 0
        self.unified = UnifiedTags(environ, file_tag_keys)
        self.budget = CustomMetricsBudget(
            config.custom_metrics_budget, [dd_tag(t, "") for t in config.cardinality_tags],
            weight=catalog_weight(self.catalog), on_held=lambda n: self.health.drop("over_budget", n))
        # the lines keep their shaped tags (Shaper.names): no cache of Shaped objects beside them
        self.shaper = Shaper(self.catalog, self.unified, self.budget, cache=False)
        self.events = EventDetector(self.catalog)
        self._event_metrics = self.events.metrics
        self.statsd = _CountingDogStatsd(
            host=None if self.target.socket else self.target.host,
            port=None if self.target.socket else self.target.port,
            socket_path=self.target.socket,
            disable_buffering=not config.buffering,
            flush_interval=config.interval,
            max_buffer_len=config.max_packet_size or _default_packet_size(self.target.host, self.target.socket),
            disable_telemetry=False,
            telemetry_min_flush_interval=telemetry_interval,
            constant_tags=[],
            origin_detection_enabled=False,
        )
        # the client added DD_ENV/DD_SERVICE/DD_VERSION/DATADOG_TAGS as constant tags; the
        # shaper adds them instead, once per key and with the documented precedence
        self.statsd.constant_tags = [t for t in self.statsd.constant_tags if t.startswith(_KEEP_CONSTANT)]
        # a sample's tags -> the _Line of the only series with them, or {metric: _Line} for
        # a check's series that share them: no key tuple a series (see _line)
        self._lines: dict[Tags, _Line | dict[str, _Line]] = {}
        # (metric, tags, kind) -> the line of a series also sent with another kind (rare)
        self._kinds: dict[tuple[str, Tags, Kind], _Line] = {}
        self._series = 0  # lines cached in both (bounded)
        self._heads: dict[tuple[str, Kind], _Head] = {}  # shared by the lines of a metric
        self._batching = self.statsd.batches()
        self._send_lines = self.statsd.send_lines if self._batching else self._line_by_line
        # the tags of a result's status sample (the check's own tuple: no key made a check)
        # -> its service check line around status and message, and the check type
        self._checks: dict[Tags, tuple[str, str, str, str]] = {}

    @property
    def destination(self) -> str:
        if self.target.socket:
            return f"unix://{self.target.socket}"
        return f"udp://{self.target.host}:{self.target.port}"

    # -- component -------------------------------------------------------------------
    async def start(self) -> None:
        tags = ", ".join(f"{k}:{v}" for k, v in self.unified.tags) or "none"
        log.info("sending metrics to DogStatsD at %s (buffering %s; environment tags: %s)",
                 self.destination, "on" if self.config.buffering else "off", tags)

    async def stop(self) -> None:
        self.flush()
        self.statsd.close_socket()
        self.statsd.stop()

    def status(self) -> dict[str, Any]:
        self._observe_drops()
        return {"mode": "dogstatsd", "destination": self.destination,
                "packets_sent": self.statsd.sent_so_far, "tags": self.unified.as_dict(),
                **self.health.as_dict(), "custom_metrics": self.budget.status(time.time())}

    def self_samples(self, base: Tags, now: float) -> list[Sample]:
        """What the exporter counts for Datadog's bill (see HealthSource)."""
        return self.budget.samples(base, now)

    # -- sink ------------------------------------------------------------------------
    def consume(self, result: CheckResult) -> None:
        """Send a result's samples; a series' line is serialised once, then only its value,
        and the result's lines go to the client's buffer together (:meth:`send_lines`)."""
        out: list[str] = []
        n, eventful = self._lines_of(result.samples, result.started, out)
        self._finish(result, out, n, eventful)

    async def consume_in_slices(self, result: CheckResult) -> None:
        """:meth:`consume` for a large result (the pipeline's choice), ``SLICE`` samples at
        a time with the loop free between them: the self-check's 10,000 per-instance series
        at 5,000 instances held the loop 40-80 ms in one piece."""
        samples, n, eventful = result.samples, 0, []
        for start in range(0, len(samples), SLICE):
            out: list[str] = []
            k, some = self._lines_of(samples[start:start + SLICE], result.started, out)
            n += k
            eventful += some or ()
            if start + SLICE >= len(samples):
                self._finish(result, out, n, eventful)
                return
            if out:
                self._send_lines(out, 0)
                n += len(out)
            await asyncio.sleep(0)
        self._finish(result, [], n, eventful)  # (no samples)

    def _lines_of(self, samples: list[Sample], now: float, out: list[str]) -> tuple[int, list[Sample] | None]:
        """Each sample's line into ``out``; returns how many went through the client's public
        calls instead, and the samples of event metrics."""
        if self.shaper.stale:
            self._reset()
        cached, deltas, monotonic = self._lines.get, self._deltas, Kind.MONOTONIC_COUNT
        add = out.append
        n = 0  # sent through the public calls (a client without the internals we use)
        eventful = None
        seen: Tags | None = None  # the last sample's tags: a check's series share the tuple
        group: Any = None  # what the cache holds for them
        for sample in samples:
            kind = sample.kind
            if kind is monotonic:
                value = deltas.delta(sample.key, sample.value)
                if value is None:  # a first total only seeds
                    continue
            else:
                value = sample.value
            tags = sample.tags
            if tags is not seen:
                seen = tags
                group = cached(tags)
            metric = sample.metric
            if group.__class__ is dict:
                line = group.get(metric)
            else:
                line = group if group is not None and group.head.metric == metric else None
            if line is None or line.head.kind is not kind:
                line = self._line(metric, kind, tags, line)
                seen = None  # the cache changed: look the tags up again
            head = line.head
            if head.events:  # an event metric: looked at below
                eventful = eventful or []
                eventful.append(sample)
            ticket = line.ticket
            if ticket is not None and ticket.live:  # admitted before: stamp it
                ticket.seen = now
            else:
                seen = None  # (a reshape empties the cache)
                line = self._admit(line, tags, now)
                if line is None:  # held back by the budget (counted there)
                    continue
                head = line.head
            text = head.text
            if text is None:
                self._fallback(metric, kind, value, line.names)
                n += 1
            else:
                add(f"{text}{value!r}{line.tail}")
        return n, eventful

    def _finish(self, result: CheckResult, out: list[str], n: int, eventful: list[Sample] | None) -> None:
        """The result's service check and events after its lines; send; count."""
        sent = len(out)
        checks = 0
        if self.config.service_checks and \
                (result.check_type, result.check) != (AGENT_CHECK_TYPE, EXPORTERS_CHECK):
            if self._batching:
                template = self._check_template(result)
                out.append(f"{template[0]}{int(result.status)}{template[1]}"
                           f"{self.statsd.check_message(result.message)}{template[2]}")
                checks = 1
            else:
                self.statsd.service_check(
                    service_check_name(result.check_type), int(result.status),
                    tags=self.shaper.plain(instance_tags(result)), message=result.message or None,
                )
        if out:
            self._send_lines(out, checks)
        if eventful:
            for event in self.events.events(result, eventful):
                self._event(event)
        self.health.success(n + sent)
        self._observe_drops()

    def _check_template(self, result: CheckResult) -> tuple[str, str, str, str]:
        """A result's service check line around its status and message, made from its check
        type and instance tags (:func:`instance_tags`: its status sample's tags less the
        check type) and cached per its status sample's tags, the check's own tuple."""
        for sample in result.samples:
            if sample.metric == "mlwarden.check.status":
                key = sample.tags
                break
        else:  # (instance_tags: the check's name alone)
            key = (("check", result.check), ("check_type", result.check_type))
        template = self._checks.get(key)
        if template is None or template[3] != result.check_type:
            tags = self.shaper.plain(instance_tags(result), cache=False)  # (kept in the template)
            parts = self.statsd.check_template(service_check_name(result.check_type), tags)
            template = (*parts, result.check_type)
            if len(self._checks) >= 100_000:  # bounded, like the line cache
                self._checks.clear()
            self._checks[key] = template
        return template

    def _admit(self, line: _Line, tags: Tags, now: float) -> _Line | None:
        """Ask the budget about a series not (or no longer) admitted: its cached line, with
        the ticket kept, or None when it is held back."""
        metric, kind = line.head.metric, line.head.kind
        verdict = self.budget.admit((metric, line.names), now, line)
        while verdict == Admission.RESHAPE:  # the budget dropped a tag: shape again
            self._reset()
            line = self._line(metric, kind, tags, None)
            verdict = self.budget.admit((metric, line.names), now, line)
        if verdict == Admission.HOLD:
            return None
        line.ticket = self.budget.ticket((metric, line.names))  # itself, or the merged series'
        return line

    def _line(self, metric: str, kind: Kind, tags: Tags, other: _Line | None) -> _Line:
        """The cached line of a series that :meth:`_lines_of` did not find under its tags,
        made and cached now (``other``: the line found there, of another kind)."""
        if other is not None:  # the same metric and tags sent with two kinds: kept apart
            line = self._kinds.get((metric, tags, kind))
            if line is None:
                line = self._kinds[(metric, tags, kind)] = self._make(metric, kind, tags, other)
                self._series += 1
            return line
        if self._series >= 100_000:  # bounded, like the shaper's cache
            self._clear_lines()
        group = self._lines.get(tags)
        if group is None:
            line = self._lines[tags] = self._make(metric, kind, tags, None)
        elif group.__class__ is dict:
            line = group[metric] = self._make(metric, kind, tags, next(iter(group.values())))
        else:
            line = self._make(metric, kind, tags, group)
            self._lines[tags] = {group.head.metric: group, metric: line}
        self._series += 1
        return line

    def _make(self, metric: str, kind: Kind, tags: Tags, sibling: _Line | None) -> _Line:
        """A series' line; its tag strings are its ``sibling``'s tuple (a series cached under
        the same tags) when equal, so a check's series share one."""
        names = self.shaper.names(metric, tags)
        if sibling is not None and sibling.names == names:
            names = sibling.names
        template = self.statsd.line_template(metric, _TYPE[kind], names)
        text, tail = template if template else (None, "")
        head = self._heads.get((metric, kind))
        if head is None or head.text != text:
            # (a series the client could not template goes through the public calls on
            # its own: the metric's shared head is for the series it could)
            head = _Head(metric, kind, text, metric in self._event_metrics)
            if text is not None or (metric, kind) not in self._heads:
                if len(self._heads) >= 100_000:
                    self._heads.clear()
                self._heads[(metric, kind)] = head
        return _Line(head, tail, names)

    def _line_by_line(self, lines: list[str], checks: int = 0) -> None:
        """Unbuffered (one datagram a metric, as configured) or a client without the buffer
        internals :meth:`_CountingDogStatsd.send_lines` uses."""
        if getattr(self.statsd, "_enabled", True) is True:  # DD_DOGSTATSD_DISABLE
            for line in lines:
                self.statsd.send_line(line)

    def _reset(self) -> None:
        self._clear_lines()
        self._checks.clear()
        self.shaper.clear()

    def _clear_lines(self) -> None:
        self._release([line for group in self._lines.values()
                       for line in (group.values() if group.__class__ is dict else (group,))])
        self._release(self._kinds.values())
        self._lines.clear()
        self._kinds.clear()
        self._heads.clear()
        self._series = 0

    def _release(self, lines: Iterable[_Line]) -> None:
        """Lines leaving the cache stop being budget tickets (a plain one takes the place of
        each), so the budget does not keep them for as long as their series are sent."""
        release = self.budget.release
        for line in lines:
            if line.ticket is line:
                release((line.head.metric, line.names), line)

    def _fallback(self, metric: str, kind: Kind, value: float, tags: tuple[str, ...]) -> None:
        if kind is Kind.GAUGE:
            self.statsd.gauge(metric, value, tags=list(tags))
        elif kind is Kind.DISTRIBUTION:
            self.statsd.distribution(metric, value, tags=list(tags))
        else:
            self.statsd.count(metric, value, tags=list(tags))

    def _event(self, event: DatadogEvent) -> None:
        try:
            self.statsd.event(event.title, event.text, alert_type=event.alert_type,
                              aggregation_key=event.aggregation_key, source_type_name=SOURCE,
                              date_happened=event.timestamp, priority=event.priority,
                              tags=self.shaper.plain(event.tags))
        except ValueError as exc:  # over DogStatsD's 8 KiB: never expected (text <= 4000)
            self.health.drop("event_too_big", 1)
            log.warning("datadog event %r not sent: %s", event.title, exc)

    def forget(self, check: str) -> None:
        self._deltas.forget(check)
        self.events.forget(check)
        gone: list[_Line] = []
        for tags in [t for t in self._lines if ("check", check) in t]:
            group = self._lines.pop(tags)
            gone += group.values() if group.__class__ is dict else (group,)
        for key in [k for k in self._kinds if ("check", check) in k[1]]:
            gone.append(self._kinds.pop(key))
        self._series -= len(gone)
        self._release(gone)
        for key in [k for k in self._checks if ("check", check) in k]:
            del self._checks[key]

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
