"""Datadog straight to the intake (HTTP API), with nothing lost in an outage.

Every batch goes through the store's outbox before it is sent (write-ahead), so a Datadog
outage or an agent restart loses nothing: ``consume()`` only appends to a memory batch
(:mod:`agent.export.datadog_payloads`); a task moves the batch to the outbox every
``flush_interval`` and then delivers pending batches oldest first, each with its original
timestamps. A lane (series, distributions, service checks, events, metadata) stops at its
first failure so order holds; it waits with exponential backoff, or as long
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
serialises the package's module-global state. The package logs every request at INFO
(``datadog.api``); that logger is held at WARNING unless the agent logs at DEBUG.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from datadog import api as dd_api
from datadog import initialize as dd_initialize
from datadog.api.api_client import APIClient
from datadog.api.exceptions import ApiError, ClientError, HttpBackoff, HTTPError, HttpTimeout
from datadog.api.http_client import RequestClient
from sqlalchemy import Engine

from agent.catalog import Catalog, load_catalog
from agent.errors import ExportError
from agent.export.budget import CustomMetricsBudget, catalog_weight
from agent.export.config import DatadogConfig
from agent.export.datadog_metadata import DD_UNITS
from agent.export.datadog_payloads import Batch, PayloadBuilder
from agent.export.datadog_shape import Shaper
from agent.export.health import ExporterHealth
from agent.export.tags import dd_tag
from agent.export.unified import UnifiedTags
from agent.history.outbox import Outbox, OutboxItem
from agent.samples import CheckResult, Sample, Tags
from agent.secrets import register_secret, scrub
from agent.tasks import cancel_and_wait

__all__ = ["DatadogApiExporter", "SERIES_KIND", "DISTRIBUTION_KIND", "CHECK_KIND", "EVENT_KIND",
           "METADATA_KIND", "DD_UNITS"]

log = logging.getLogger(__name__)

SERIES_KIND = "datadog_series"
DISTRIBUTION_KIND = "datadog_distribution"
CHECK_KIND = "datadog_check"
EVENT_KIND = "datadog_event"
METADATA_KIND = "datadog_metadata"
KINDS = (SERIES_KIND, DISTRIBUTION_KIND, CHECK_KIND, EVENT_KIND, METADATA_KIND)
_WHAT = {SERIES_KIND: "series", DISTRIBUTION_KIND: "distribution", CHECK_KIND: "service check",
         EVENT_KIND: "event", METADATA_KIND: "metric metadata"}
EVENT_MAX_AGE = 18 * 3600.0  # /api/v1/events takes events up to 18 hours old
CHECKS_PER_REQUEST = 1000
_REJECT_STATUSES = (401, 403, 404)
_INVALID_STATUSES = (400, 413, 422)
_local = threading.local()


class _RecordingClient(RequestClient):  # type: ignore[misc]
    """The package's requests client, keeping the last answer so status codes are never lost.

    It also labels bodies the package passed through unlabelled: the package sets
    ``Content-Type`` only for dict bodies, and ``check_run`` takes a JSON list."""

    @classmethod
    def request(cls, *args: Any, **kwargs: Any) -> Any:
        _local.response = None
        headers = kwargs.get("headers")
        if isinstance(headers, dict) and kwargs.get("data") is not None:
            headers.setdefault("Content-Type", "application/json")
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
    kinds_seen: set[str] = field(default_factory=set)  # of trouble, in this outage


def _trouble(err: ExportError) -> str:
    """What went wrong, coarsely: each kind is logged once per outage."""
    return f"http {err.status}" if err.status is not None else err.reason


class DatadogApiExporter:
    """Pipeline sink and component that submits series, distributions, service checks,
    events and metric metadata to Datadog's API."""

    name = "datadog"

    def __init__(self, config: DatadogConfig, engine: Engine, hostname: str,
                 catalog: Catalog | None = None, clock: Callable[[], float] = time.time, *,
                 file_tag_keys: Iterable[str] = (), environ: Mapping[str, str] | None = None) -> None:
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
        self._app_key = config.resolved_app_key() if config.send_metadata else ""
        if self._app_key:
            register_secret(self._app_key)
        self.health = ExporterHealth("datadog")
        self.unified = UnifiedTags(environ, file_tag_keys)
        self.budget = CustomMetricsBudget(
            config.custom_metrics_budget, [dd_tag(t, "") for t in config.cardinality_tags],
            weight=catalog_weight(self.catalog), on_held=lambda n: self.health.drop("over_budget", n))
        self.payloads = PayloadBuilder(
            hostname=hostname, destination=self.api_url, catalog=self.catalog,
            shaper=Shaper(self.catalog, self.unified, self.budget), budget=self.budget,
            service_checks=config.service_checks, send_metadata=config.send_metadata,
            on_full=lambda n: self._wake.set(), full_at=config.max_points_per_request)
        self._lanes = {kind: _Lane(kind) for kind in KINDS}
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="datadog-api")
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._store_failing = False

    # -- component -------------------------------------------------------------------
    async def start(self) -> None:
        _quiet_package_log()
        await self._blocking(self._configure_client)
        self.health.state = "ok"
        self._task = asyncio.get_running_loop().create_task(self._run(), name="datadog-api")
        tags = ", ".join(f"{k}:{v}" for k, v in self.unified.tags) or "none"
        log.info("sending metrics to the Datadog API at %s (durable queue in the store's outbox; "
                 "environment tags: %s)", self.api_url, tags)

    async def stop(self) -> None:
        """Move what is still in memory to the outbox (sent after the restart), then stop."""
        await cancel_and_wait(self._task)
        self._task = None
        await self._blocking(self._to_outbox, self.clock(), self._take())
        self._pool.shutdown(wait=True)

    def status(self) -> dict[str, Any]:
        now = self.clock()
        lanes = {k: {"blocked_for_seconds": max(0.0, round(v.blocked_until - now, 3)),
                     "rejected": v.rejected, "last_error": v.last_error} for k, v in self._lanes.items()}
        return {"mode": "api", "destination": self.api_url, "tags": self.unified.as_dict(),
                "lanes": lanes, **self.health.as_dict(), "custom_metrics": self.budget.status(now)}

    def self_samples(self, base: Tags, now: float) -> list[Sample]:
        """What the exporter counts for Datadog's bill (see HealthSource)."""
        return self.budget.samples(base, now)

    # -- sink ------------------------------------------------------------------------
    def consume(self, result: CheckResult) -> None:
        self.payloads.consume(result)

    def forget(self, check: str) -> None:
        self.payloads.forget(check)

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
            batch = self._take()
            try:
                await self._blocking(self._to_outbox, self.clock(), batch)
            except asyncio.CancelledError:
                self._restore(batch)
                raise
            except Exception as exc:  # noqa: BLE001 - the store is down: keep the batch in memory
                self._restore(batch)
                self._cycle_failed(f"cannot write to the outbox in the store: {exc}")
                continue
            try:
                await self._blocking(self.cycle, self.clock())
                self._store_failing = False
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the store may be down; keep trying
                self._cycle_failed(f"a delivery round failed: {exc}")

    def _restore(self, batch: Batch) -> None:
        """Put a batch the outbox did not take back in memory, within the queue's bound."""
        cap = self.config.max_points_per_request * 10
        current = self.payloads.restore(batch)
        for name in ("series", "distributions", "checks", "events", "metadata"):
            items = getattr(current, name)
            if len(items) > cap:
                self.health.drop("queue_full", len(items) - cap)
                del items[:len(items) - cap]

    def _cycle_failed(self, message: str) -> None:
        message = f"datadog exporter: {scrub(message)}"
        self.health.failure(message)
        if not self._store_failing:
            log.error("%s; retrying every %gs (points wait in memory)", message, self.config.interval)
        self._store_failing = True

    def _take(self) -> Batch:
        """The memory batch, taken on the loop (where ``consume`` appends to it)."""
        return self.payloads.take()

    def cycle(self, now: float, batch: Batch | None = None) -> None:
        """One round (blocking): batch to the outbox, bound it, deliver what is due."""
        self._to_outbox(now, batch or Batch())
        self._bound(now)
        for lane in self._lanes.values():
            self._deliver(lane, now)
        self.health.queue_length = sum(self.outbox.pending_count(k) for k in KINDS)

    def _to_outbox(self, now: float, batch: Batch) -> None:
        step = self.config.max_points_per_request
        for kind, items, size in ((SERIES_KIND, batch.series, step),
                                  (DISTRIBUTION_KIND, batch.distributions, step),
                                  (CHECK_KIND, batch.checks, CHECKS_PER_REQUEST)):
            chunks = [items[i:i + size] for i in range(0, len(items), size)]
            payloads = [{"series": c} for c in chunks] if kind != CHECK_KIND else chunks
            if payloads:
                self.outbox.enqueue_many(kind, self.api_url, payloads, now=now)
        for kind, keyed in ((EVENT_KIND, batch.events), (METADATA_KIND, batch.metadata)):
            for dedup, payload in keyed:  # a dedup key already queued or sent is a no-op
                self.outbox.enqueue(kind, self.api_url, payload, now=now, dedup_key=dedup)

    def _bound(self, now: float) -> None:
        """Keep the queue within ``queue_max_items`` (oldest go first) and prune settled rows."""
        for kind in KINDS:
            excess = self.outbox.pending_count(kind) - self.config.queue_max_items
            if excess > 0:
                for item in self.outbox.due(kind, now=float("inf"), limit=excess):
                    self.outbox.mark_dead(item.id, error="dropped: the outbox queue was full")
                    self.health.drop("queue_full", _points(item.payload))
                log.warning("datadog outbox over %d batches: dropped the %d oldest",
                            self.config.queue_max_items, excess)
        # settled rows go after an hour, but sent metadata stays: its dedup key is how a
        # restart knows the body was already set
        self.outbox.prune(sent_before=now - 3600, kinds=KINDS, keep_sent=(METADATA_KIND,))

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
                self.outbox.mark_dead(item.id, error=f"too old for the intake (over {self.config.max_age:g}s; "
                                      f"events over {EVENT_MAX_AGE:g}s)")
                continue
            try:
                self._send(lane.kind, payload)
            except ExportError as err:
                self._on_failure(lane, item, err, now)
                return
            self.outbox.mark_sent(item.id, now=now)
            self.health.success(_points(payload), now)
            if lane.rejected:
                log.info("datadog intake accepts the API key again")
            lane.delay, lane.rejected, lane.last_error = 0.0, False, None
            lane.kinds_seen.clear()
            pause = _rate_limit_pause(_local.response)
            if pause:
                lane.blocked_until = now + pause
                log.info("datadog rate limit reached: pausing the %s lane for %.0fs", lane.kind, pause)
                return

    def _fresh(self, item: OutboxItem, now: float) -> tuple[Any, int]:
        """The item without points too old for the intake; None when nothing is left."""
        oldest = now - self.config.max_age
        payload = item.payload
        if item.kind == METADATA_KIND:
            return payload, 0
        if item.kind == EVENT_KIND:
            fresh = payload.get("date_happened", now) >= now - EVENT_MAX_AGE
            return (payload, 0) if fresh else (None, 1)
        if item.kind == CHECK_KIND:
            checks = payload if isinstance(payload, list) else [payload]  # one check: older rows
            kept = [c for c in checks if c.get("timestamp", now) >= oldest]
            return (kept or None), len(checks) - len(kept)
        kept, stale = [], 0
        for series in payload["series"]:
            if item.kind == DISTRIBUTION_KIND:
                points = [p for p in series["points"] if p[0] >= oldest]
                stale += sum(len(p[1]) for p in series["points"]) - sum(len(p[1]) for p in points)
            else:
                points = [p for p in series["points"] if p["timestamp"] >= oldest]
                stale += len(series["points"]) - len(points)
            if points:
                kept.append({**series, "points": points})
        return ({"series": kept} if kept else None), stale

    def _on_failure(self, lane: _Lane, item: OutboxItem, err: ExportError, now: float) -> None:
        message = scrub(str(err))
        if not err.retryable:  # the intake refused this payload: sending it again cannot help
            self.outbox.mark_dead(item.id, error=message)
            self.health.drop("refused_by_intake", _points(item.payload))
            self.health.failure(message, now)
            log.error("datadog intake refused a batch (dropped, %d points): %s",
                      _points(item.payload), message)
            return
        if err.reason == "config":  # the key or site is refused: ask again, slowly
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
        wait = max(lane.delay, err.retry_after or 0.0)
        lane.blocked_until = now + wait
        self.outbox.retry_later(item.id, due_at=lane.blocked_until, error=message)
        self.health.failure(message, now)
        # once per kind of trouble per outage (503, then timeouts, the client's backoff,
        # 429): the log tells the story without a line per retry
        if _trouble(err) not in lane.kinds_seen:
            lane.kinds_seen.add(_trouble(err))
            log.warning("%s; keeping points in the outbox and retrying in %.1fs", message, wait)
        else:
            log.debug("%s; retrying in %.1fs", message, wait)
        lane.last_error = message

    # -- the datadog package ---------------------------------------------------------
    def _configure_client(self) -> None:
        dd_initialize(api_key=self._api_key, app_key=self._app_key or None, api_host=self.api_url,
                      host_name=self.hostname, mute=False, return_raw_response=True,
                      hostname_from_config=False)
        dd_api._timeout = self.config.timeout  # type: ignore[assignment]  # requests takes floats
        dd_api._max_retries = 0
        APIClient._http_client = _RecordingClient
        APIClient._backoff_period = self.config.client_backoff  # type: ignore[assignment]
        APIClient._backoff_timestamp = None
        APIClient._timeout_counter = 0

    def _send(self, kind: str, payload: dict[str, Any]) -> None:
        """One request through the package; raises ExportError (the verdict) unless the intake
        took it."""
        what = _WHAT[kind]
        where = f"Datadog intake {self.api_url}"
        _local.response = None
        try:
            out = _submit(kind, payload)
        except HttpBackoff as exc:
            left = _backoff_left()
            raise ExportError(f"{where}: the datadog client is backing off after repeated "
                              f"timeouts ({left:.0f}s left)", retryable=True, retry_after=left,
                              reason="backoff") from exc
        except HttpTimeout as exc:
            raise ExportError(f"{where}: no answer within {self.config.timeout:g}s",
                              retryable=True, reason="timeout") from exc
        except HTTPError as exc:
            # the package keeps the status only in its message; our client recorded nothing
            # because requests raised, so read it from the message
            status = _status_in(str(exc))
            raise ExportError(f"{where} answered HTTP {status} to a {what} submission",
                              retryable=True, reason="server_error", status=status) from exc
        except ClientError as exc:
            raise ExportError(f"{where} is unreachable: {_reason(exc)}", retryable=True,
                              reason="network") from exc
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

    def _verdict_from_response(self, body: Any, what: str, where: str) -> ExportError:
        response = _local.response
        status = getattr(response, "status_code", None)
        errors = body.get("errors") if isinstance(body, dict) else body
        detail = f": {errors}" if errors else ""
        if status in _REJECT_STATUSES:
            hint = ("check exporters.datadog.api_key / DD_API_KEY" if status != 404
                    else "check exporters.datadog.site / DD_SITE / api_url")
            if what == _WHAT[METADATA_KIND] and status != 404:
                hint = ("check exporters.datadog.app_key / DD_APP_KEY (and api_key): setting "
                        "metadata needs an application key allowed to edit metrics")
            return ExportError(f"{where} refused the {what} submission with HTTP {status}{detail} "
                               f"({hint})", retryable=True, reason="config", status=status)
        if status == 429:
            headers = getattr(response, "headers", {}) or {}
            retry_after = _float(headers.get("Retry-After")) or _float(headers.get("X-RateLimit-Reset"))
            return ExportError(f"{where} is rate limiting (HTTP 429){detail}", retryable=True,
                               reason="rate_limited", status=429, retry_after=retry_after)
        if status in _INVALID_STATUSES:
            return ExportError(f"{where} refused a {what} payload with HTTP {status}{detail}",
                               retryable=False, reason="rejected", status=status)
        return ExportError(f"{where} answered HTTP {status}{detail}", retryable=True,
                           reason="server_error", status=status)


def _submit(kind: str, payload: Any) -> Any:
    """One request of ``kind`` through the package (its backoff and our recording client)."""
    if kind == SERIES_KIND:
        return APIClient.submit("POST", "series", api_version="v2", body=payload, compress_payload=True)
    if kind == DISTRIBUTION_KIND:
        return APIClient.submit("POST", "distribution_points", api_version="v1", body=payload,
                                compress_payload=True)
    if kind == CHECK_KIND:
        checks = payload if isinstance(payload, list) else [payload]
        # one request for the flush: the package serialises only dicts, so the list goes as text
        return APIClient.submit("POST", "check_run", api_version="v1",
                                body=json.dumps(checks, separators=(",", ":")))
    if kind == EVENT_KIND:
        return APIClient.submit("POST", "events", api_version="v1", body=payload)
    return APIClient.submit("PUT", f"metrics/{payload['metric']}", api_version="v1", body=payload["body"])


def _quiet_package_log() -> None:
    """The datadog package logs each request at INFO: keep that out of the agent's log
    unless the agent itself logs at DEBUG."""
    package = logging.getLogger("datadog.api")
    if not logging.getLogger().isEnabledFor(logging.DEBUG) and package.level < logging.WARNING:
        package.setLevel(logging.WARNING)


def _rate_limit_pause(response: Any) -> float | None:
    """Seconds to wait when the intake says no calls are left in this rate-limit period."""
    headers = getattr(response, "headers", None) or {}
    if headers.get("X-RateLimit-Remaining") == "0":
        return _float(headers.get("X-RateLimit-Reset")) or 1.0
    return None


def _points(payload: Any) -> int:
    if isinstance(payload, dict) and "series" in payload:
        return sum(len(p[1]) if isinstance(p, list) else 1
                   for s in payload["series"] for p in s["points"])
    if isinstance(payload, list):
        return len(payload)
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
