"""A DogStatsD listener on UDP or a Unix datagram socket, parsing the datagram format.

Format (docs.datadoghq.com/developers/dogstatsd/datagram_shell): one line per item,
``<name>:<value>|<type>[|@<rate>][|#<tag>,<tag>][|c:<container>][|T<ts>]`` for metrics and
``_sc|<name>|<status>[|d:<ts>][|h:<host>][|#<tags>][|m:<message>]`` for service checks and
``_e{<title bytes>,<text bytes>}:<title>|<text>[|d:<ts>][|h:<host>][|k:<aggregation key>]
[|p:<priority>][|s:<source>][|t:<alert type>][|#<tags>]`` for events (the lengths are
checked: a title or text whose byte length differs from its header is a problem).
Anything that does not parse is kept in ``problems`` so the test fails on it.
"""

from __future__ import annotations

import re
import socket
import threading
from dataclasses import dataclass, field

__all__ = ["DogStatsdListener", "Event", "Metric", "ServiceCheck"]

_NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9_.]*$")
_TAG = re.compile(r"^[a-z][a-z0-9_\-:./]*$")
_EVENT = re.compile(r"^_e\{(\d+),(\d+)\}:")


@dataclass(frozen=True)
class Metric:
    name: str
    value: float
    type: str
    tags: tuple[str, ...]


@dataclass(frozen=True)
class ServiceCheck:
    name: str
    status: int
    tags: tuple[str, ...]
    message: str | None
    hostname: str | None


@dataclass(frozen=True)
class Event:
    title: str
    text: str  # newlines unescaped, as the Datadog Agent reads them
    alert_type: str | None
    aggregation_key: str | None
    priority: str | None
    source: str | None
    date: int | None
    tags: tuple[str, ...]


@dataclass
class DogStatsdListener:
    path: str | None = None
    metrics: list[Metric] = field(default_factory=list)
    checks: list[ServiceCheck] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    datagrams: int = 0
    our_datagrams: int = 0  # those carrying mlwarden metrics (not client telemetry)
    problems: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.path:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self.sock.bind(self.path)
            self.port = 0
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.bind(("127.0.0.1", 0))
            self.port = self.sock.getsockname()[1]
        self.sock.settimeout(0.2)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> DogStatsdListener:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            with self._lock:
                self.datagrams += 1
                self.our_datagrams += data.startswith(b"mlwarden.")
                for line in data.decode("utf-8", "replace").split("\n"):
                    if line:
                        self._parse(line)

    def _tags(self, part: str, line: str) -> tuple[str, ...]:
        tags = tuple(t for t in part[1:].split(",") if t)
        for t in tags:
            if not _TAG.match(t):
                self.problems.append(f"tag {t!r} is not normalised in {line!r}")
        return tags

    def _parse_event(self, line: str) -> None:
        match = _EVENT.match(line)
        raw = line.encode()
        if match is None:
            self.problems.append(f"bad event header in {line!r}")
            return
        tlen, xlen = int(match.group(1)), int(match.group(2))
        body = raw[match.end():]
        title, text = body[:tlen], body[tlen + 1:tlen + 1 + xlen]
        if body[tlen:tlen + 1] != b"|" or len(text) != xlen or body[tlen + 1 + xlen:][:1] not in (b"", b"|"):
            self.problems.append(f"event lengths do not match its header in {line!r}")
            return
        fields: dict[str, str] = {}
        tags: tuple[str, ...] = ()
        rest = body[tlen + 1 + xlen:].decode()
        for part in rest.split("|")[1:]:
            if part.startswith("#"):
                tags = self._tags(part, line)
            elif part[:2] in ("d:", "h:", "k:", "p:", "s:", "t:", "c:"):
                fields[part[0]] = part[2:]
            else:
                self.problems.append(f"unknown event field {part!r} in {line!r}")
        if fields.get("t") not in (None, "error", "warning", "info", "success"):
            self.problems.append(f"bad alert type in {line!r}")
        if fields.get("p") not in (None, "normal", "low"):
            self.problems.append(f"bad priority in {line!r}")
        self.events.append(Event(
            title.decode(), text.decode().replace("\\n", "\n"), fields.get("t"), fields.get("k"),
            fields.get("p"), fields.get("s"), int(fields["d"]) if "d" in fields else None, tags))

    def _parse(self, line: str) -> None:
        if line.startswith("_e{"):
            self._parse_event(line)
            return
        if line.startswith("_sc|"):
            parts = line.split("|")
            if len(parts) < 3 or parts[2] not in ("0", "1", "2", "3"):
                self.problems.append(f"bad service check {line!r}")
                return
            tags: tuple[str, ...] = ()
            message = host = None
            for part in parts[3:]:
                if part.startswith("#"):
                    tags = self._tags(part, line)
                elif part.startswith("m:"):
                    message = part[2:]
                elif part.startswith("h:"):
                    host = part[2:]
                elif not part.startswith(("d:", "c:", "card:")):
                    self.problems.append(f"unknown service check field {part!r} in {line!r}")
            self.checks.append(ServiceCheck(parts[1], int(parts[2]), tags, message, host))
            return
        head, _, rest = line.partition("|")
        name, _, value = head.rpartition(":")
        parts = rest.split("|")
        if not _NAME.match(name) or parts[0] not in ("g", "c", "h", "d", "s", "ms"):
            self.problems.append(f"bad metric line {line!r}")
            return
        try:
            number = float(value)
        except ValueError:
            self.problems.append(f"bad value in {line!r}")
            return
        tags = ()
        for part in parts[1:]:
            if part.startswith("#"):
                tags = self._tags(part, line)
            elif not part.startswith(("@", "c:", "T", "card:", "e:")):
                self.problems.append(f"unknown metric field {part!r} in {line!r}")
        self.metrics.append(Metric(name, number, parts[0], tags))

    def snapshot_events(self) -> list[Event]:
        with self._lock:
            return list(self.events)

    def snapshot(self) -> tuple[list[Metric], list[ServiceCheck]]:
        with self._lock:
            return list(self.metrics), list(self.checks)

    def ours(self) -> list[Metric]:
        """Metrics without the client's own telemetry."""
        return [m for m in self.snapshot()[0] if m.name.startswith("mlwarden.")]
