"""Datadog straight to the intake (HTTP API), with nothing lost in an outage.

Every batch goes through the store's outbox before it is sent (write-ahead), so a Datadog
outage or an agent restart loses nothing: ``consume()`` only appends to a memory batch;
a task moves the batch to the outbox every ``flush_interval`` and then delivers pending
batches oldest first, each with its original timestamps. A lane (series, service checks)
stops at its first failure so order holds; it waits with exponential backoff, or as long
as the intake's rate limit asks, and then resumes at the same batch. Batches beyond
``queue_max_items`` and points older than ``max_age`` (Datadog refuses points over an hour
old) are dropped and counted, never silently.

The ``datadog`` package is used with muting off and raw responses on, and its HTTP client
is wrapped to record each answer's status and rate-limit headers, because the package
raises the same ``ApiError`` for a 403, a 429 and a 400 (see shared notes on its
behaviour). Verdicts: 2xx sent; 5xx, 429, timeouts, connection errors and the package's
own ``HttpBackoff`` (300 s after 3 timeouts) are retried; 403/401 (bad API key) and 404
(wrong site) stop the lane with one error and a status, re-probed every ``retry_max`` with
a single request; 400/413 (payload refused) drop that batch and count its points.

All database and HTTP work runs on one worker thread, off the event loop, which also
serialises the package's module-global state.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from datadog import api as dd_api
from datadog import initialize as dd_initialize
from datadog.api.api_client import APIClient
from datadog.api.exceptions import ApiError, ClientError, HttpBackoff, HTTPError, HttpTimeout
from datadog.api.http_client import RequestClient
from datadog.api.service_checks import ServiceCheck
from sqlalchemy import Engine, and_, delete, func

from agent.catalog import Catalog, load_catalog
from agent.errors import ExportError
from agent.export.config import DatadogConfig
from agent.export.counters import MonotonicDeltas
from agent.export.health import ExporterHealth
from agent.export.tags import dd_tags, instance_tags, service_check_name
from agent.history.tables import outbox as outbox_table
from agent.outbox import Outbox, OutboxItem
from agent.samples import CheckResult, Kind
from agent.secrets import register_secret, scrub
from agent.tasks import cancel_and_wait

__all__ = ["DatadogApiExporter", "SERIES_KIND", "CHECK_KIND", "DD_UNITS"]

log = logging.getLogger(__name__)

SERIES_KIND = "datadog_series"
CHECK_KIND = "datadog_check"
# v2 series intake types
# distributions go as gauges until the exporter sends Datadog distributions (issue #17)
_TYPE = {Kind.GAUGE: 3, Kind.COUNT: 1, Kind.MONOTONIC_COUNT: 1, Kind.DISTRIBUTION: 3}
# catalog unit -> Datadog unit name (units Datadog does not know are left unset)
DD_UNITS = {
    "seconds": "second", "bytes": "byte", "ratio": "fraction", "celsius": "degree celsius",
    "watts": "watt", "hertz": "hertz", "joules": "joule", "dollars": "dollar",
    "requests": "request", "errors": "error", "tasks": "task", "files": "file",
    "processes": "process", "events": "event", "samples": "sample",
}
_REJECT_STATUSES = (401, 403, 404)
_INVALID_STATUSES = (400, 413, 422)
_local = threading.local()


class _RecordingClient(RequestClient):  # type: ignore[misc]
    """The package's requests client, keeping the last answer so status codes are never lost."""

    @classmethod
    def request(cls, *args: Any, **kwargs: Any) -> Any:
        _local.response = None
        result = super().request(*args, **kwargs)
        _local.response = result
        return result


@dataclass
class _Lane:
    kind: str
    blocked_until: float = 0.0
    delay: float = 0.0
    rejected: bool = False
    last_error: str | None = None
    sent_items: int = field(default=0)


class _Verdict(Exception):
    def __init__(self, message: str, *, outcome: str, status: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.outcome = outcome  # retry | reject | invalid
        self.status = status
        self.retry_after = retry_after


class DatadogApiExporter:
    """Pipeline sink and component that submits series and service checks to Datadog's API."""

    name = "datadog"

    def __init__(self, config: DatadogConfig, engine: Engine, hostname: str,
                 catalog: Catalog | None = None, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.engine = engine
        self.outbox = Outbox(engine)
        self.hostname = hostname
        self.catalog = catalog or load_catalog()
        self.clock = clock
        self.api_url = config.resolved_api_url()
        self._api_key = config.resolved_api_key()
        if not self._api_key:
            raise ExportError("exporters.datadog: mode `api` needs an API key (api_key or DD_API_KEY)",
                              retryable=False)
        register_secret(self._api_key)
        self.health = ExporterHealth("datadog")
        self._deltas = MonotonicDeltas()
        self._series: list[dict[str, Any]] = []
        self._checks: list[dict[str, Any]] = []
        self._lanes = {SERIES_KIND: _Lane(SERIES_KIND), CHECK_KIND: _Lane(CHECK_KIND)}
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="datadog-api")
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._units: dict[str, str | None] = {}
        self._store_failing = False

    # -- component -------------------------------------------------------------------
    async def start(self) -> None:
        await self._blocking(self._configure_client)
        self.health.state = "ok"
        self._task = asyncio.get_running_loop().create_task(self._run(), name="datadog-api")
        log.info("sending metrics to the Datadog API at %s (durable queue in the store's outbox)",
                 self.api_url)

    async def stop(self) -> None:
        """Move what is still in memory to the outbox (sent after the restart), then stop."""
        await cancel_and_wait(self._task)
        self._task = None
        await self._blocking(self._to_outbox, self.clock(), *self._take())
        self._pool.shutdown(wait=True)

    def status(self) -> dict[str, Any]:
        lanes = {k: {"blocked_for_seconds": max(0.0, round(v.blocked_until - self.clock(), 3)),
                     "rejected": v.rejected, "last_error": v.last_error} for k, v in self._lanes.items()}
        return {"mode": "api", "destination": self.api_url, "lanes": lanes, **self.health.as_dict()}

    # -- sink ------------------------------------------------------------------------
    def consume(self, result: CheckResult) -> None:
        host = [{"name": self.hostname, "type": "host"}]
        for sample in result.samples:
            value = sample.value
            if sample.kind is Kind.MONOTONIC_COUNT:
                delta = self._deltas.delta(sample.key, value)
                if delta is None:
                    continue
                value = delta
            series: dict[str, Any] = {
                "metric": sample.metric,
                "type": _TYPE[sample.kind],
                "points": [{"timestamp": _second(sample.timestamp or result.started), "value": float(value)}],
                "tags": dd_tags(sample.tags),
                "resources": host,
            }
            unit = self._unit(sample.metric)
            if unit:
                series["unit"] = unit
            self._series.append(series)
        if self.config.service_checks and result.check_type != "exporters":
            check: dict[str, Any] = {
                "check": service_check_name(result.check_type),
                "host_name": self.hostname,
                "status": int(result.status),
                "timestamp": _second(result.started),
                "tags": dd_tags(instance_tags(result)),
            }
            if result.message:
                check["message"] = result.message[:4000]
            self._checks.append(check)
        if len(self._series) >= self.config.max_points_per_request:
            self._wake.set()

    def forget(self, check: str) -> None:
        self._deltas.forget(check)

    def _unit(self, metric: str) -> str | None:
        if metric not in self._units:
            spec = self.catalog.get(metric)
            self._units[metric] = DD_UNITS.get(spec.unit) if spec else None
        return self._units[metric]

    # -- the loop --------------------------------------------------------------------
    async def _blocking(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self.config.interval)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            series, checks = self._take()
            try:
                await self._blocking(self._to_outbox, self.clock(), series, checks)
            except asyncio.CancelledError:
                self._restore(series, checks)
                raise
            except Exception as exc:  # noqa: BLE001 - the store is down: keep the batch in memory
                self._restore(series, checks)
                self._cycle_failed(f"cannot write to the outbox in the store: {exc}")
                continue
            try:
                await self._blocking(self.cycle, self.clock())
                self._store_failing = False
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the store may be down; keep trying
                self._cycle_failed(f"a delivery round failed: {exc}")

    def _restore(self, series: list[dict[str, Any]], checks: list[dict[str, Any]]) -> None:
        """Put a batch the outbox did not take back in memory, within the queue's bound."""
        cap = self.config.max_points_per_request * 10
        self._series[:0] = series
        self._checks[:0] = checks
        if len(self._series) > cap:
            self.health.drop("queue_full", len(self._series) - cap)
            del self._series[:len(self._series) - cap]
        if len(self._checks) > cap:
            self.health.drop("queue_full", len(self._checks) - cap)
            del self._checks[:len(self._checks) - cap]

    def _cycle_failed(self, message: str) -> None:
        message = f"datadog exporter: {scrub(message)}"
        self.health.failure(message)
        if not self._store_failing:
            log.error("%s; retrying every %gs (points wait in memory)", message, self.config.interval)
        self._store_failing = True

    def _take(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The memory batch, taken on the loop (where ``consume`` appends to it)."""
        series, self._series = self._series, []
        checks, self._checks = self._checks, []
        return series, checks

    def cycle(self, now: float, series: list[dict[str, Any]] | None = None,
              checks: list[dict[str, Any]] | None = None) -> None:
        """One round (blocking): batch to the outbox, bound it, deliver what is due."""
        self._to_outbox(now, series or [], checks or [])
        self._bound(now)
        for lane in self._lanes.values():
            self._deliver(lane, now)
        self.health.queue_length = self.outbox.pending_count(SERIES_KIND) + \
            self.outbox.pending_count(CHECK_KIND)

    def _to_outbox(self, now: float, series: list[dict[str, Any]], checks: list[dict[str, Any]]) -> None:
        step = self.config.max_points_per_request
        batches = [{"series": series[i:i + step]} for i in range(0, len(series), step)]
        if batches:
            self.outbox.enqueue_many(SERIES_KIND, self.api_url, batches, now=now)
        if checks:
            self.outbox.enqueue_many(CHECK_KIND, self.api_url, checks, now=now)

    def _bound(self, now: float) -> None:
        """Keep the queue within ``queue_max_items`` (oldest go first) and prune settled rows."""
        for kind in (SERIES_KIND, CHECK_KIND):
            excess = self.outbox.pending_count(kind) - self.config.queue_max_items
            if excess > 0:
                for item in self.outbox.due(kind, now=float("inf"), limit=excess):
                    self.outbox.mark_dead(item.id, error="dropped: the outbox queue was full")
                    self.health.drop("queue_full", _points(item.payload))
                log.warning("datadog outbox over %d batches: dropped the %d oldest",
                            self.config.queue_max_items, excess)
        with self.engine.begin() as conn:
            conn.execute(delete(outbox_table).where(and_(
                outbox_table.c.kind.in_((SERIES_KIND, CHECK_KIND)),
                outbox_table.c.state.in_(("sent", "dead")),
                func.coalesce(outbox_table.c.sent_at, outbox_table.c.created_at) < now - 3600)))

    def _deliver(self, lane: _Lane, now: float, limit: int = 50) -> None:
        if now < lane.blocked_until:
            return
        # every pending item, oldest first, whatever its due_at: the lane's own block keeps order
        for item in self.outbox.due(lane.kind, now=float("inf"), limit=limit):
            # agents sharing the store drain one queue: send only what this agent claimed
            # (batches are independent, so no order across agents is kept)
            if not self.outbox.claim(item.id, now=now, in_order=False, only_due=False):
                continue
            payload, stale = self._fresh(item, now)
            if stale:
                self.health.drop("too_old", stale)
            if payload is None:
                self.outbox.mark_dead(item.id, error=f"every point is older than {self.config.max_age:g}s")
                continue
            try:
                self._send(lane.kind, payload)
            except _Verdict as verdict:
                self._on_failure(lane, item, verdict, now)
                return
            self.outbox.mark_sent(item.id, now=now)
            self.health.success(_points(payload), now)
            if lane.rejected:
                log.info("datadog intake accepts the API key again")
            lane.delay, lane.rejected, lane.last_error = 0.0, False, None
            lane.sent_items += 1
            pause = _rate_limit_pause(_local.response)
            if pause:
                lane.blocked_until = now + pause
                log.info("datadog rate limit reached: pausing the %s lane for %.0fs", lane.kind, pause)
                return

    def _fresh(self, item: OutboxItem, now: float) -> tuple[dict[str, Any] | None, int]:
        """The item without points older than ``max_age``; None when nothing is left."""
        oldest = now - self.config.max_age
        if item.kind == CHECK_KIND:
            return (None, 1) if item.payload.get("timestamp", now) < oldest else (item.payload, 0)
        kept, stale = [], 0
        for series in item.payload["series"]:
            points = [p for p in series["points"] if p["timestamp"] >= oldest]
            stale += len(series["points"]) - len(points)
            if points:
                kept.append({**series, "points": points})
        return ({"series": kept} if kept else None), stale

    def _on_failure(self, lane: _Lane, item: OutboxItem, verdict: _Verdict, now: float) -> None:
        message = scrub(str(verdict))
        if verdict.outcome == "invalid":
            self.outbox.mark_dead(item.id, error=message)
            self.health.drop("refused_by_intake", _points(item.payload))
            self.health.failure(message, now)
            log.error("datadog intake refused a batch (dropped, %d points): %s",
                      _points(item.payload), message)
            return
        if verdict.outcome == "reject":
            first = not lane.rejected
            lane.rejected = True
            lane.blocked_until = now + self.config.retry_max
            self.outbox.retry_later(item.id, due_at=lane.blocked_until, error=message)
            self.health.failure(message, now, state="rejected")
            if first:
                log.error("%s; points are kept in the outbox (up to %gs old) and the intake is "
                          "asked again every %gs", message, self.config.max_age, self.config.retry_max)
            lane.last_error = message
            return
        lane.delay = min(self.config.retry_max, max(self.config.retry_initial, lane.delay * 2))
        wait = max(lane.delay, verdict.retry_after or 0.0)
        lane.blocked_until = now + wait
        self.outbox.retry_later(item.id, due_at=lane.blocked_until, error=message)
        self.health.failure(message, now)
        if lane.last_error is None:
            log.warning("%s; keeping points in the outbox and retrying in %.1fs", message, wait)
        else:
            log.debug("%s; retrying in %.1fs", message, wait)
        lane.last_error = message

    # -- the datadog package ---------------------------------------------------------
    def _configure_client(self) -> None:
        dd_initialize(api_key=self._api_key, api_host=self.api_url, host_name=self.hostname,
                      mute=False, return_raw_response=True, hostname_from_config=False)
        dd_api._timeout = self.config.timeout  # type: ignore[assignment]  # requests takes floats
        dd_api._max_retries = 0
        APIClient._http_client = _RecordingClient
        APIClient._backoff_period = self.config.client_backoff  # type: ignore[assignment]
        APIClient._backoff_timestamp = None
        APIClient._timeout_counter = 0

    def _send(self, kind: str, payload: dict[str, Any]) -> None:
        """One request through the package; raises _Verdict unless the intake took it."""
        what = "series" if kind == SERIES_KIND else "service check"
        where = f"Datadog intake {self.api_url}"
        _local.response = None
        try:
            if kind == SERIES_KIND:
                out = APIClient.submit("POST", "series", api_version="v2", body=payload,
                                       compress_payload=True)
            else:
                out = ServiceCheck.check(**payload)
        except HttpBackoff as exc:
            left = _backoff_left()
            raise _Verdict(f"{where}: the datadog client is backing off after repeated timeouts "
                           f"({left:.0f}s left)", outcome="retry", retry_after=left) from exc
        except HttpTimeout as exc:
            raise _Verdict(f"{where}: no answer within {self.config.timeout:g}s", outcome="retry") from exc
        except HTTPError as exc:
            # the package keeps the status only in its message; our client recorded nothing
            # because requests raised, so read it from the message
            status = _status_in(str(exc))
            raise _Verdict(f"{where} answered HTTP {status} to a {what} submission",
                           outcome="retry", status=status) from exc
        except ClientError as exc:
            raise _Verdict(f"{where} is unreachable: {_reason(exc)}", outcome="retry") from exc
        except ApiError as exc:
            body = exc.args[0] if exc.args else None
            status = getattr(_local.response, "status_code", None)
            if status is not None and 200 <= status < 300 and not (isinstance(body, dict) and body.get("errors")):
                return  # the v2 intake answers 202 {"errors": []}, which the package raises on
            raise self._verdict_from_response(body, what, where) from exc
        response = out[1] if isinstance(out, tuple) else _local.response
        status = getattr(response, "status_code", None)
        if status is None or not 200 <= status < 300:
            raise self._verdict_from_response(out[0] if isinstance(out, tuple) else out, what, where)

    def _verdict_from_response(self, body: Any, what: str, where: str) -> _Verdict:
        response = _local.response
        status = getattr(response, "status_code", None)
        errors = body.get("errors") if isinstance(body, dict) else body
        detail = f": {errors}" if errors else ""
        if status in _REJECT_STATUSES:
            hint = ("check exporters.datadog.api_key / DD_API_KEY" if status != 404
                    else "check exporters.datadog.site / DD_SITE / api_url")
            return _Verdict(f"{where} refused the {what} submission with HTTP {status}{detail} ({hint})",
                            outcome="reject", status=status)
        if status == 429:
            headers = getattr(response, "headers", {}) or {}
            retry_after = _float(headers.get("Retry-After")) or _float(headers.get("X-RateLimit-Reset"))
            return _Verdict(f"{where} is rate limiting (HTTP 429){detail}", outcome="retry",
                            status=429, retry_after=retry_after)
        if status in _INVALID_STATUSES:
            return _Verdict(f"{where} refused a {what} payload with HTTP {status}{detail}",
                            outcome="invalid", status=status)
        return _Verdict(f"{where} answered HTTP {status}{detail}", outcome="retry", status=status)


def _rate_limit_pause(response: Any) -> float | None:
    """Seconds to wait when the intake says no calls are left in this rate-limit period."""
    headers = getattr(response, "headers", None) or {}
    if headers.get("X-RateLimit-Remaining") == "0":
        return _float(headers.get("X-RateLimit-Reset")) or 1.0
    return None


def _second(t: float) -> int:
    """Datadog's whole second for ``t``: the nearest, not the one before. A run scheduled on
    the second often starts a hair early (684.9996); truncated, it shares a second with the
    previous run and Datadog keeps one of the two points."""
    return round(t)


def _points(payload: Any) -> int:
    if isinstance(payload, dict) and "series" in payload:
        return sum(len(s["points"]) for s in payload["series"])
    return 1


def _status_in(message: str) -> int | None:
    match = re.search(r"response code: (\d{3})", message)
    return int(match.group(1)) if match else None


def _float(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _backoff_left() -> float:
    stamp = APIClient._backoff_timestamp
    if not stamp:
        return float(APIClient._backoff_period)
    return max(0.0, APIClient._backoff_period - (time.time() - stamp))


def _reason(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) < 300 else text[:300] + "..."
