"""One HTTP request to a target, bounded, classified and timed.

Every probe check (model endpoints, Prometheus scrapes) goes through :class:`HttpProbe`:
the shared session (never a client per probe), a deadline per request that covers the
body, a cut-off for huge or endless bodies, TLS settings built once per instance, and
one translation of aiohttp's errors into the error kinds users route on. The verdict
rule lives here too: a probe we could not make (our DNS, our deadline, a bad config) is
UNKNOWN; a target that answered badly (refused, bad TLS, HTTP error, garbage) is CRITICAL.
"""

from __future__ import annotations

import asyncio
import base64
import enum
import json
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from agent.check import CheckContext
from agent.errors import ConfigError
from agent.httptrace import Phases
from agent.samples import Status
from checks.model_endpoint.config import HttpOptions

__all__ = ["Answer", "ErrorKind", "HttpProbe", "ProbeFailure", "build_ssl"]

_CHUNK = 65_536


class ErrorKind(str, enum.Enum):
    """Why a probe failed; the ``error_kind`` tag value."""

    TIMEOUT = "timeout"
    REFUSED = "refused"
    DNS = "dns"
    TLS = "tls"
    HTTP_4XX = "http_4xx"
    HTTP_5XX = "http_5xx"
    MALFORMED = "malformed"

    @property
    def status(self) -> Status:
        # our resolver and our deadline say nothing about the target's health
        return Status.UNKNOWN if self in (ErrorKind.TIMEOUT, ErrorKind.DNS) else Status.CRITICAL


class ProbeFailure(Exception):
    """A probe that failed, with its kind and a message in words."""

    def __init__(self, kind: ErrorKind, message: str, http_status: int | None = None,
                 answer: Answer | None = None) -> None:
        self.kind = kind
        self.http_status = http_status
        self.answer = answer
        super().__init__(message)

    @property
    def status(self) -> Status:
        return self.kind.status


@dataclass(slots=True)
class Answer:
    """A complete HTTP answer with its timing."""

    what: str
    status: int
    body: bytes
    content_type: str
    latency: float
    connect: float | None
    ttfb: float | None

    def json(self) -> Any:
        """The body as JSON, or a ``malformed`` failure naming the request."""
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise self.malformed(f"answered HTTP {self.status} with a body that is not JSON "
                                 f"({exc})") from None

    def malformed(self, problem: str) -> ProbeFailure:
        return ProbeFailure(ErrorKind.MALFORMED, f"{self.what} {problem}", self.status, self)

    def http_failure(self, meaning: str = "") -> ProbeFailure:
        """A failure for an HTTP status the protocol gives no meaning to."""
        kind = ErrorKind.HTTP_5XX if self.status >= 500 else ErrorKind.HTTP_4XX
        detail = _short_text(self.body)
        text = f"{self.what} answered HTTP {self.status}"
        if meaning:
            text += f" ({meaning})"
        elif detail:
            text += f": {detail}"
        return ProbeFailure(kind, text, self.status, self)

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def _short_text(body: bytes, limit: int = 160) -> str:
    """A one-line excerpt of an error body, JSON ``error``/``message`` preferred."""
    if not body:
        return ""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        data = None
    if isinstance(data, dict):
        for key in ("error", "message", "detail", "status"):
            if isinstance(data.get(key), str):
                return data[key][:limit]
    text = body[:limit * 2].decode("utf-8", "replace").strip().splitlines()
    return text[0][:limit] if text else ""


def build_ssl(options: HttpOptions) -> ssl.SSLContext | bool | None:
    """The TLS setting for every request of one instance (built once; it is costly)."""
    if not options.tls_verify:
        return False
    if options.ca_bundle is None:
        return None  # aiohttp's default, verifying context
    try:
        return ssl.create_default_context(cafile=str(options.ca_bundle))
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError("ca_bundle", [f"cannot load {options.ca_bundle}: {reason}"]) from None


def auth_header(options: HttpOptions) -> dict[str, str]:
    if options.bearer_token is not None:
        return {"Authorization": f"Bearer {options.bearer_token.get_secret_value()}"}
    if options.username is not None and options.password is not None:
        raw = f"{options.username}:{options.password.get_secret_value()}".encode()
        return {"Authorization": "Basic " + base64.b64encode(raw).decode()}
    return {}


class HttpProbe:
    """Requests of one check instance over the shared session."""

    def __init__(self, context: CheckContext, options: HttpOptions, deadline: float) -> None:
        self.context = context
        self.deadline = deadline
        self.max_body = options.max_body_bytes
        self.ssl = build_ssl(options)
        self.headers = {**options.headers, **auth_header(options)}
        self._timeout = aiohttp.ClientTimeout(total=deadline)

    async def request(self, method: str, url: str, *, json_body: Any = None,
                      headers: Mapping[str, str] | None = None) -> Answer:
        """One request; an :class:`Answer` for any HTTP status, a ProbeFailure otherwise."""
        what = f"{method} {url}"
        phases = Phases()
        sent = dict(self.headers, **headers) if headers else self.headers
        try:
            async with asyncio.timeout(self.deadline):
                async with self.context.http.request(
                    method, url, json=json_body, headers=sent, ssl=self.ssl,
                    timeout=self._timeout, trace_request_ctx=phases, allow_redirects=True,
                ) as resp:
                    body = await self._read(resp, what)
                    return Answer(what, resp.status, body, resp.content_type,
                                  time.monotonic() - phases.start, phases.connect, phases.ttfb)
        except ProbeFailure:
            raise
        except Exception as exc:  # noqa: BLE001 - translated into an error kind here
            raise classify(exc, what, self.deadline, phases) from None

    async def _read(self, resp: aiohttp.ClientResponse, what: str) -> bytes:
        size = resp.content_length
        if size is not None and size > self.max_body:
            resp.close()
            raise ProbeFailure(ErrorKind.MALFORMED,
                               f"{what} announced a {size}-byte answer, over the "
                               f"{self.max_body}-byte limit (max_body_bytes)", resp.status)
        chunks: list[bytes] = []
        total = 0
        while True:
            chunk = await resp.content.read(_CHUNK)
            if not chunk:
                return b"".join(chunks)
            total += len(chunk)
            if total > self.max_body:
                resp.close()
                raise ProbeFailure(ErrorKind.MALFORMED,
                                   f"{what} sent more than {self.max_body} bytes; cut off "
                                   "(max_body_bytes)", resp.status)
            chunks.append(chunk)


def classify(exc: BaseException, what: str, deadline: float, phases: Phases) -> ProbeFailure:
    """Translate a transport error into a kind and a message in words."""
    if isinstance(exc, TimeoutError):
        stage = ("while the answer was still arriving" if phases.headers is not None
                 else "before an answer started")
        return ProbeFailure(ErrorKind.TIMEOUT,
                            f"{what}: no complete answer within {deadline:g}s ({stage})")
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return ProbeFailure(ErrorKind.DNS, f"{what}: cannot resolve {exc.host!r} ({exc.os_error})")
    if isinstance(exc, (aiohttp.ClientSSLError, ssl.SSLError)):
        reason = getattr(exc, "certificate_error", None) or getattr(exc, "os_error", None) or exc
        return ProbeFailure(ErrorKind.TLS, f"{what}: TLS handshake failed ({reason})")
    if isinstance(exc, aiohttp.ClientConnectorError):
        os_error = exc.os_error
        reason = ("connection refused" if isinstance(os_error, ConnectionRefusedError)
                  else os_error.strerror or type(os_error).__name__)
        return ProbeFailure(ErrorKind.REFUSED,
                            f"{what}: cannot connect to {exc.host}:{exc.port} ({reason})")
    if isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError,
                        aiohttp.ClientResponseError)):
        return ProbeFailure(ErrorKind.MALFORMED, f"{what}: broken HTTP answer ({exc})")
    if isinstance(exc, (aiohttp.ClientOSError, ConnectionError)):
        return ProbeFailure(ErrorKind.REFUSED, f"{what}: connection failed ({exc})")
    if isinstance(exc, aiohttp.InvalidURL):
        raise ConfigError("url", [f"{what}: invalid URL ({exc})"]) from None
    raise exc
