"""A stand-in for Datadog's intake, on 127.0.0.1.

Why a fake: Datadog's backend cannot run here. To keep it strict, every payload is
checked against the official ``datadog-api-client`` models (field names, required fields,
types, enums, list lengths: stricter than the client's own lenient deserialiser, which
accepts unknown keys and wrong enum values) and against the intake's published rules
(points no older than 1 h nor more than 10 min ahead, the API key header). Anything
else fails the test through ``problems``.

Endpoints: ``POST /api/v2/series``, ``POST /api/v1/distribution_points`` (both may be
deflated), ``POST /api/v1/check_run`` (a list of checks, as ``ServiceChecks`` is; a single
object too, as the ``datadog`` package sends), ``POST /api/v1/events`` and
``PUT /api/v1/metrics/<name>`` (metric metadata: needs the application key too, like the
real API). Bodies must be labelled ``application/json``; only the two metric intakes accept
``Content-Encoding``.

Modes make it answer like the intake in trouble: ``ok`` (202), ``error`` (503),
``hang`` (no answer before the client's timeout), ``late`` (keeps what it
is sent, but answers only after ``hang_seconds``, when the client has given up), ``forbidden`` (403 as Datadog sends it
for an invalid key) and ``ratelimit`` (429 with X-RateLimit headers).

An answer can fail to reach the client (it timed out while the intake was still working,
as a slow machine makes it): the points of such a series request were accepted, but the
client cannot know and must send them again. ``unacked`` keeps where they sit in
``points`` (and where those of requests not answered yet sit); ``acked_points()`` is what
the client was told the intake kept.
"""

from __future__ import annotations

import inspect
import json
import select
import socket
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from datadog_api_client.configuration import Configuration
from datadog_api_client.model_utils import ModelNormal, ModelSimple, UnsetType, none_type, validate_and_convert_types
from datadog_api_client.v1.model.distribution_points_payload import DistributionPointsPayload
from datadog_api_client.v1.model.event_create_request import EventCreateRequest
from datadog_api_client.v1.model.metric_metadata import MetricMetadata
from datadog_api_client.v1.model.service_check import ServiceCheck
from datadog_api_client.v2.model.metric_payload import MetricPayload

__all__ = ["FakeIntake", "strict_check"]


def _required(model: type) -> set[str]:
    sig = inspect.signature(model.__init__)
    return {n for n, p in sig.parameters.items()
            if n not in ("self_", "self", "kwargs", "args") and p.default is inspect.Parameter.empty}


def _check_type(value: Any, types: tuple, path: str, problems: list[str]) -> None:
    for t in types:
        if _matches(value, t, path, []):
            _matches(value, t, path, problems)  # collect nested problems of the matching branch
            return
    problems.append(f"{path}: {value!r} is not one of {types}")


def _matches(value: Any, t: Any, path: str, problems: list[str]) -> bool:
    if isinstance(t, list):
        if not isinstance(value, list):
            return False
        for i, v in enumerate(value):
            _check_type(v, tuple(t), f"{path}[{i}]", problems)
        return True
    if t is none_type:
        return value is None
    if t is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if t in (int, str, bool):
        return isinstance(value, t) and not (t is int and isinstance(value, bool))
    if isinstance(t, type) and issubclass(t, ModelSimple):
        inner = t.openapi_types["value"]
        if not any(_matches(value, x, path, []) for x in inner):
            return False
        allowed = getattr(t, "allowed_values", None)
        if allowed and value not in allowed:
            problems.append(f"{path}: {value!r} is not an allowed {t.__name__} {sorted(allowed)}")
        rules = getattr(t, "validations", {}).get("value", {})
        if "min_items" in rules and len(value) < rules["min_items"]:
            problems.append(f"{path}: fewer than {rules['min_items']} items")
        if "max_items" in rules and len(value) > rules["max_items"]:
            problems.append(f"{path}: more than {rules['max_items']} items")
        return True
    if isinstance(t, type) and issubclass(t, ModelNormal):
        if not isinstance(value, dict):
            return False
        strict_check(value, t, path, problems)
        return True
    return False


def strict_check(data: Any, model: type, path: str = "body", problems: list[str] | None = None) -> list[str]:
    """Problems of ``data`` against an official model (empty list: valid)."""
    problems = [] if problems is None else problems
    if not isinstance(data, dict):
        problems.append(f"{path}: expected an object, found {type(data).__name__}")
        return problems
    fields = {v: k for k, v in model.attribute_map.items()}
    for key in data:
        if key not in fields:
            problems.append(f"{path}.{key}: unknown field for {model.__name__}")
    for key in _required(model):
        if model.attribute_map.get(key, key) not in data:
            problems.append(f"{path}.{key}: required by {model.__name__}, missing")
    for json_key, value in data.items():
        attr = fields.get(json_key)
        if attr is None:
            continue
        if attr in getattr(model, "read_only_vars", ()):
            problems.append(f"{path}.{json_key}: read-only in {model.__name__}")
        types = tuple(t for t in model.openapi_types[attr] if t is not UnsetType)
        _check_type(value, types, f"{path}.{json_key}", problems)
        rules = getattr(model, "validations", {}).get(attr, {})
        if "max_length" in rules and isinstance(value, str) and len(value) > rules["max_length"]:
            problems.append(f"{path}.{json_key}: longer than {rules['max_length']} characters")
        if "min_length" in rules and isinstance(value, str) and len(value) < rules["min_length"]:
            problems.append(f"{path}.{json_key}: shorter than {rules['min_length']} characters")
    if path == "body" and not problems:
        # and the official deserialiser must accept it too
        validate_and_convert_types(data, (model,), [path], True, True, Configuration())
    return problems


def _client_gone(sock: socket.socket) -> bool:
    """Whether the client closed its end (it does when its timeout runs out)."""
    readable, _, _ = select.select([sock], [], [], 0)
    try:
        return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


class FakeIntake:
    """Threaded HTTP server recording every accepted point and service check, in order."""

    def __init__(self, api_key: str = "0123456789abcdef0123456789abcdef",
                 app_key: str = "fedcba9876543210fedcba9876543210fedcba98") -> None:
        self.api_key = api_key
        self.app_key = app_key
        self.mode = "ok"
        self.hang_seconds = 3.0
        self.lock = threading.Lock()
        self.points: list[tuple[str, tuple[str, ...], int, float]] = []
        self.series_payloads: list[dict] = []
        self.distributions: list[tuple[str, tuple[str, ...], int, list[float]]] = []
        self.distribution_payloads: list[dict] = []
        self.checks: list[dict] = []
        self.events: list[dict] = []
        self.metadata: dict[str, list[dict]] = {}  # metric -> bodies PUT, in order
        self.requests: list[tuple[str, int, float]] = []  # (path, status answered, negative if the client had gone, when)
        self.problems: list[str] = []
        self.unacked: list[range] = []  # slices of ``points`` whose 202 has not reached the client
        self.ratelimit_reset = 1
        intake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                intake._handle(self)

            def do_PUT(self) -> None:  # noqa: N802
                intake._handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeIntake:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _answer(self, h: BaseHTTPRequestHandler, status: int, body: Any,
                headers: dict[str, str] | None = None) -> bool:
        """Answer; False when the client had already gone (its timeout ran out)."""
        data = json.dumps(body).encode()
        try:
            if _client_gone(h.connection):
                raise BrokenPipeError  # a write to a closed peer can still "succeed" once
            h.send_response(status)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                h.send_header(k, v)
            h.end_headers()
            h.wfile.write(data)
            h.wfile.flush()
            delivered = True
        except (BrokenPipeError, ConnectionResetError):
            h.close_connection = True
            delivered = False
        with self.lock:
            self.requests.append((h.path.split("?")[0], status if delivered else -status, time.time()))
        return delivered

    def acked_points(self) -> list[tuple[str, tuple[str, ...], int, float]]:
        """``points`` less those whose acceptance the client never heard of."""
        with self.lock:
            dropped = {i for r in self.unacked for i in r}
            return [p for i, p in enumerate(self.points) if i not in dropped]

    def requests_to(self, path: str) -> int:
        """How many requests reached ``path`` (whatever the answer)."""
        with self.lock:
            return sum(1 for p, _, _ in self.requests if p == path)

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        raw = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        path = h.path.split("?")[0]
        mode = self.mode
        if mode == "hang":
            time.sleep(self.hang_seconds)
            return self._answer(h, 504, {"errors": ["Gateway timeout"]})
        if mode == "error":
            return self._answer(h, 503, {"errors": ["Service unavailable"]})
        if h.headers.get("DD-API-KEY") != self.api_key or mode == "forbidden":
            return self._answer(h, 403, {"errors": ["Forbidden"]})
        if mode == "ratelimit":
            return self._answer(h, 429, {"errors": ["Rate limit exceeded"]},
                                {"X-RateLimit-Limit": "100", "X-RateLimit-Period": "10",
                                 "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(self.ratelimit_reset)})
        if not (h.headers.get("Content-Type") or "").startswith(("application/json", "text/json")):
            self.problems.append(f"{path}: Content-Type {h.headers.get('Content-Type')!r} is not JSON")
            return self._answer(h, 415, {"errors": ["Unsupported Media Type"]})
        encoding = h.headers.get("Content-Encoding")
        if encoding is not None:
            if path not in ("/api/v2/series", "/api/v1/distribution_points") or encoding != "deflate":
                self.problems.append(f"{path}: Content-Encoding {encoding!r} is not accepted there")
                return self._answer(h, 400, {"errors": ["Unsupported Content-Encoding"]})
            raw = zlib.decompress(raw)
        try:
            body = json.loads(raw)
        except ValueError:
            self.problems.append(f"{path}: body is not JSON")
            return self._answer(h, 400, {"errors": ["Payload is not in the expected format"]})
        now = time.time()
        if h.command == "PUT" and path.startswith("/api/v1/metrics/"):
            return self._metadata(h, path, body)
        if h.command != "POST":
            self.problems.append(f"unexpected {h.command} {path}")
            return self._answer(h, 405, {"errors": ["Method Not Allowed"]})
        if path == "/api/v2/series":
            problems = strict_check(body, MetricPayload)
            for s in body.get("series", []) if not problems else []:
                for p in s["points"]:
                    if not now - 3600 <= p["timestamp"] <= now + 600:
                        problems.append(f"{s['metric']}: point at {p['timestamp']} outside the intake window")
            if problems:
                self.problems.extend(problems)
                return self._answer(h, 400, {"errors": problems})
            with self.lock:
                self.series_payloads.append(body)
                first = len(self.points)
                for s in body["series"]:
                    for p in s["points"]:
                        self.points.append((s["metric"], tuple(s.get("tags", [])), p["timestamp"], p["value"]))
                taken = range(first, len(self.points))
                self.unacked.append(taken)  # until the client has its answer
            if mode == "late":
                time.sleep(self.hang_seconds)
            if self._answer(h, 202, {"errors": []}):
                with self.lock:
                    self.unacked.remove(taken)
            return None
        if path == "/api/v1/distribution_points":
            problems = strict_check(body, DistributionPointsPayload)
            for s in body.get("series", []) if not problems else []:
                for ts, values in s["points"]:
                    if not now - 3600 <= ts <= now + 600:
                        problems.append(f"{s['metric']}: point at {ts} outside the intake window")
                    if not isinstance(values, list) or not values:
                        problems.append(f"{s['metric']}: a point needs a list of values")
            if problems:
                self.problems.extend(problems)
                return self._answer(h, 400, {"errors": problems})
            with self.lock:
                self.distribution_payloads.append(body)
                for s in body["series"]:
                    for ts, values in s["points"]:
                        self.distributions.append((s["metric"], tuple(s.get("tags", [])), ts, values))
            return self._answer(h, 202, {"errors": []})
        if path == "/api/v1/check_run":
            checks = body if isinstance(body, list) else [body]
            problems = [] if checks else ["body: an empty list of service checks"]
            for i, check in enumerate(checks):
                strict_check(check, ServiceCheck, f"body[{i}]", problems)
            if problems:
                self.problems.extend(problems)
                return self._answer(h, 400, {"errors": problems})
            with self.lock:
                self.checks.extend(checks)
            return self._answer(h, 202, {"status": "ok"})
        if path == "/api/v1/events":
            problems = strict_check(body, EventCreateRequest)
            if not problems and not now - 18 * 3600 <= body.get("date_happened", now) <= now + 7200:
                problems.append(f"event at {body['date_happened']} outside the events window")
            if problems:
                self.problems.extend(problems)
                return self._answer(h, 400, {"errors": problems})
            with self.lock:
                self.events.append(body)
                event_id = len(self.events)
            return self._answer(h, 202, {"status": "ok", "event": {"id": event_id, **body}})
        self.problems.append(f"unexpected path {path}")
        return self._answer(h, 404, {"errors": ["Not found"]})

    def _metadata(self, h: BaseHTTPRequestHandler, path: str, body: Any) -> None:
        if h.headers.get("DD-APPLICATION-KEY") != self.app_key:
            return self._answer(h, 403, {"errors": ["Forbidden"]})
        metric = path.removeprefix("/api/v1/metrics/")
        problems = strict_check(body, MetricMetadata)
        if not problems and body.get("type") not in ("gauge", "count", "rate", "distribution"):
            problems.append(f"{metric}: metadata type {body.get('type')!r}")
        if problems:
            self.problems.extend(problems)
            return self._answer(h, 400, {"errors": problems})
        with self.lock:
            self.metadata.setdefault(metric, []).append(body)
        return self._answer(h, 200, body)
