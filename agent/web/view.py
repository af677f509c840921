"""What the status page shows, as plain data: checks, live alerts, silences, agent health.

Two steps, so the event loop pays only for copies: :func:`take_snapshot` reads the running
agent on the loop (check states, live alerts, component status: what /status reads), and
:func:`build_page` does the blocking part in a worker thread (silences, outbox backlog and
sparklines from the store, then filtering and sorting). A store that fails costs its own
section a note, never the page: the checks and the health are in memory.

This module is the only one in the package that knows the agent's insides; the templates
see these dataclasses only.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlencode, urlsplit

from agent.alert import Ack, alert_labels
from agent.alerting.inhibit import Inhibitor
from agent.alerting.silences import Silence
from agent.secrets import scrub
from agent.web.sparkline import Spark, sparkline

if TYPE_CHECKING:
    from agent.app import Agent

__all__ = [
    "Ack", "AckReader", "AlertRow", "CheckRow", "Filters", "LiveAlert", "Page", "Snapshot",
    "build_page", "chart_url", "take_snapshot",
]

log = logging.getLogger(__name__)

DEFAULT_KEY_METRIC = "mlwarden.check.duration"  # every check has it
SPARK_WINDOW = 3600.0
SPARK_STEP = 60.0  # 1-minute buckets: the store answers from its 1m rollups
LIVE_STATES = ("firing", "flapping", "pending")
# worst first: the page lists what needs someone before what is fine
STATUS_ORDER = {"CRITICAL": 0, "UNKNOWN": 1, "WARNING": 2, "PENDING": 3, "OK": 4}
STATUS_FILTERS = ("failing", "CRITICAL", "UNKNOWN", "WARNING", "PENDING", "OK")


def chart_url(metric: str, tags: Mapping[str, str], window: str = "") -> str:
    """The page's link to the history chart of ``metric`` restricted to ``tags``."""
    query = [("metric", metric)] + [("tag", f"{k}={v}") for k, v in sorted(tags.items())]
    if window:
        query.append(("window", window))
    return "/ui/chart?" + urlencode(query)


def safe_link(url: str) -> str | None:
    """``url`` when it is an http(s) link (annotations are templated from data; a
    ``javascript:`` link would run in the page however well its text is escaped)."""
    try:
        scheme = urlsplit(url.strip()).scheme.lower()
    except ValueError:
        return None
    return url.strip() if scheme in ("http", "https") else None


# -- acknowledgements (the value is the chain's: agent.alert.Ack) ------------------------
class AckReader(Protocol):
    """Where acknowledgements come from; the page shows an 'Acknowledged' column only
    when one is given (the Slack actions' store, agent.slackapp.store.ActionStore)."""

    def acks(self, fingerprints: Sequence[str]) -> Mapping[str, Ack]: ...


# -- the snapshot (on the loop) ------------------------------------------------------------
@dataclass(frozen=True)
class LiveAlert:
    fingerprint: str
    rule: str
    labels: dict[str, str]
    group: tuple[tuple[str, str], ...]
    severity: str
    state: str
    value: float | None
    active_since: float | None
    fired_at: float | None
    annotations: dict[str, str]


@dataclass
class Snapshot:
    status: dict[str, Any]  # Agent.status_snapshot(): check states are detached copies
    alerts: list[LiveAlert]
    rules: dict[str, tuple[str, dict[str, str]]]  # rule -> (metric, where)
    key_metrics: dict[str, str]  # check instance -> its key metric
    hostname: str
    readiness: list[str]
    alerting: bool
    inhibitor: Inhibitor | None


def take_snapshot(agent: Agent) -> Snapshot:
    """Copies of what the page needs from the running agent; cheap, call it on the loop."""
    alerts: list[LiveAlert] = []
    rules: dict[str, tuple[str, dict[str, str]]] = {}
    engine = agent.rules
    if engine is not None:
        rules = {r.alert: (r.metric, dict(r.where)) for r in engine.rules}
        evaluator = engine.evaluator
        for rec in evaluator.alerts() if evaluator is not None else []:
            if rec.state.value in LIVE_STATES:
                alerts.append(LiveAlert(
                    rec.fingerprint, rec.rule, dict(rec.labels), tuple(rec.group), rec.severity,
                    rec.state.value, rec.value, rec.active_since, rec.fired_at,
                    dict(rec.annotations)))
    return Snapshot(
        status=agent.status_snapshot(),
        alerts=alerts,
        rules=rules,
        key_metrics={name: getattr(check, "key_metric", None) or DEFAULT_KEY_METRIC
                     for name, check in agent.scheduler.checks.items()},
        hostname=agent.config.agent.hostname,
        readiness=agent.readiness_problems(),
        alerting=agent.alerting is not None,
        inhibitor=agent.alerting.router.inhibitor if agent.alerting is not None else None,
    )


# -- the page (off the loop) ---------------------------------------------------------------
@dataclass(frozen=True)
class Filters:
    status: str = ""
    type: str = ""

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> Filters:
        status = query.get("status", "")
        return cls(status if status in STATUS_FILTERS else "", query.get("type", "")[:100])

    def keeps(self, row: CheckRow) -> bool:
        if self.type and row.type != self.type:
            return False
        if self.status == "failing":
            return row.status != "OK"
        return not self.status or row.status == self.status

    @property
    def active(self) -> bool:
        return bool(self.status or self.type)


@dataclass(frozen=True)
class CheckRow:
    name: str
    type: str
    scope: str
    status: str
    message: str
    error: str | None
    warnings: list[str]
    interval: float
    last_run: float | None
    last_duration: float | None
    last_ok: float | None
    consecutive_failures: int
    running: bool
    paused_reason: str | None
    key_metric: str
    unit: str
    spark: Spark | None
    chart_url: str
    series_url: str


@dataclass(frozen=True)
class AlertRow:
    alert: LiveAlert
    labels: dict[str, str]  # as routed and silenced: alertname, alert, severity included
    summary: str
    silence: Silence | None
    inhibited: str | None
    ack: Ack | None
    chart_url: str | None
    silence_url: str
    runbook_url: str | None
    dashboard_url: str | None


@dataclass(frozen=True)
class ReceiverRow:
    name: str
    type: str
    target: str
    sent: int
    failed_attempts: int
    dropped: int
    muted: int
    pending: int | None
    oldest_age: float | None
    last_success: float | None
    last_error: str | None
    broken: str | None


@dataclass(frozen=True)
class ExporterRow:
    name: str
    where: str
    state: str
    last_success: float | None
    failures: int
    queue_length: int
    last_error: str | None


@dataclass
class Page:
    now: float
    agent: dict[str, Any]
    readiness: list[str]
    filters: Filters
    checks: list[CheckRow]
    total_checks: int
    counts: dict[str, int]
    types: list[str]
    alerting: bool
    alerts: list[AlertRow]
    silences: list[Silence]
    receivers: list[ReceiverRow]
    exporters: list[ExporterRow]
    pipeline: dict[str, Any]
    store: dict[str, Any]
    leader: dict[str, Any]
    acks_enabled: bool
    problems: dict[str, str] = field(default_factory=dict)  # section -> what failed


class SeriesQuery(Protocol):
    def query(self, metric: str, since: float, until: float | None = None, *,
              tags: Mapping[str, str] | None = None, step: float | None = None,
              agg: str = "avg") -> Any: ...


class SilenceLister(Protocol):
    def list(self, *, now: float, include_expired: bool = False) -> list[Silence]: ...


class BacklogReader(Protocol):
    def pending(self, now: float) -> dict[str, dict[str, Any]]: ...


def build_page(snap: Snapshot, *, now: float, filters: Filters, reader: SeriesQuery | None,
               silences: SilenceLister | None, backlog: BacklogReader | None,
               units: Mapping[str, str] | None = None, acks: AckReader | None = None) -> Page:
    """Everything the template needs (blocking: reads the store)."""
    problems: dict[str, str] = {}
    states = snap.status["checks"]
    rows_all = [_check_row(s, snap, units or {}) for s in states]
    counts = {name: 0 for name in STATUS_ORDER}
    for row in rows_all:
        counts[row.status] = counts.get(row.status, 0) + 1
    shown = sorted((r for r in rows_all if filters.keeps(r)),
                   key=lambda r: (STATUS_ORDER.get(r.status, 9), r.name))
    if reader is not None and shown:
        try:
            sparks = _sparks(reader, shown, snap.hostname, now)
            shown = [_with_spark(r, sparks.get(r.name)) for r in shown]
        except Exception as exc:  # noqa: BLE001 - a broken store costs the trend column only
            problems["sparklines"] = _why(exc)
    live_silences: list[Silence] = []
    if silences is not None:
        try:
            live_silences = silences.list(now=now)
        except Exception as exc:  # noqa: BLE001
            problems["silences"] = _why(exc)
    pending: dict[str, dict[str, Any]] = {}
    if backlog is not None:
        try:
            pending = backlog.pending(now)
        except Exception as exc:  # noqa: BLE001
            problems["receivers"] = _why(exc)
    ack_map: Mapping[str, Ack] = {}
    if acks is not None:
        try:
            ack_map = acks.acks([a.fingerprint for a in snap.alerts])
        except Exception as exc:  # noqa: BLE001
            problems["acknowledgements"] = _why(exc)
    components = snap.status.get("components", {})
    return Page(
        now=now,
        agent=snap.status["agent"],
        readiness=snap.readiness,
        filters=filters,
        checks=shown,
        total_checks=len(rows_all),
        counts=counts,
        types=sorted({r.type for r in rows_all}),
        alerting=snap.alerting,
        alerts=_alert_rows(snap, live_silences, ack_map, now),
        silences=live_silences,
        receivers=_receivers(components.get("alerting", {}),
                             pending if backlog is not None else None, "receivers" in problems),
        exporters=_exporters(components),
        pipeline=snap.status.get("pipeline", {}),
        store=components.get("history", {}),
        leader=components.get("leader", {}),
        acks_enabled=acks is not None,
        problems=problems,
    )


def _why(exc: BaseException) -> str:
    return scrub(f"{type(exc).__name__}: {getattr(exc, 'orig', None) or exc}")[:300]


def _check_row(state: Any, snap: Snapshot, units: Mapping[str, str]) -> CheckRow:
    metric = snap.key_metrics.get(state.name, DEFAULT_KEY_METRIC)
    tags = _instance_tags(state.name, state.scope, snap.hostname)
    return CheckRow(
        name=state.name,
        type=state.type,
        scope=state.scope,
        status=state.status.name if state.status is not None else "PENDING",
        message=state.message,
        error=state.error,
        warnings=list(state.warnings),
        interval=state.interval,
        last_run=state.last_run,
        last_duration=state.last_duration,
        last_ok=state.last_ok,
        consecutive_failures=state.consecutive_failures,
        running=state.running,
        paused_reason=state.paused_reason,
        key_metric=metric,
        unit=units.get(metric, ""),
        spark=None,
        chart_url=chart_url(metric, tags),
        series_url="/ui/series?" + urlencode([("check", state.name)]),
    )


def _instance_tags(name: str, scope: str, hostname: str) -> dict[str, str]:
    # local checks carry this agent's name: agents sharing a database may run instances of
    # the same name (the auto GPU check on every node); cluster ones run wherever the leader is
    return {"check": name, "agent": hostname} if scope == "local" else {"check": name}


def _with_spark(row: CheckRow, spark: Spark | None) -> CheckRow:
    if spark is None:
        return row
    return CheckRow(**{**row.__dict__, "spark": spark})


def _sparks(reader: SeriesQuery, rows: Iterable[CheckRow], hostname: str,
            now: float) -> dict[str, Spark | None]:
    """One store query per key metric (not per check), then each check's series folded
    into one line: the highest value at each minute (the worst model, the busiest GPU)."""
    by_metric: dict[str, list[CheckRow]] = {}
    for row in rows:
        by_metric.setdefault(row.key_metric, []).append(row)
    since = now - SPARK_WINDOW
    out: dict[str, Spark | None] = {}
    for metric, members in by_metric.items():
        wanted = {r.name: _instance_tags(r.name, r.scope, hostname) for r in members}
        result = reader.query(metric, since, now, step=SPARK_STEP, agg="max")
        folded: dict[str, dict[float, float]] = {}
        for tags, points in result.series.items():
            have = dict(tags)
            name = have.get("check")
            want = wanted.get(name or "")
            if want is None or any(have.get(k) != v for k, v in want.items()):
                continue
            acc = folded.setdefault(name or "", {})
            for t, v in points:
                if math.isfinite(v):
                    acc[t] = max(v, acc.get(t, -math.inf))
        for name, acc in folded.items():
            out[name] = sparkline(sorted(acc.items()), since=since, until=now)
    return out


def _alert_rows(snap: Snapshot, silences: Sequence[Silence], acks: Mapping[str, Ack],
                now: float) -> list[AlertRow]:
    firing = [alert_labels(a.rule, a.labels, a.severity) for a in snap.alerts
              if a.state in ("firing", "flapping")]
    rows = []
    for a in snap.alerts:
        labels = alert_labels(a.rule, a.labels, a.severity)
        silence = next((s for s in silences if s.mutes(labels, now)), None)
        inhibited = None
        if snap.inhibitor is not None:
            hit = snap.inhibitor.muted_by(labels, firing)
            if hit is not None:
                inhibited = f"{hit[1].get('alertname', '?')} ({hit[0].describe()})"
        rule = snap.rules.get(a.rule)
        chart = None
        if rule is not None:
            metric, where = rule
            chart = chart_url(metric, {**where, **dict(a.group)})
        prefill = [f'alertname="{a.rule}"'] + [f'{k}="{v}"' for k, v in a.group]
        rows.append(AlertRow(
            alert=a,
            labels=labels,
            summary=a.annotations.get("summary", ""),
            silence=silence,
            inhibited=inhibited,
            ack=acks.get(a.fingerprint),
            chart_url=chart,
            silence_url="/?" + urlencode([("silence", m) for m in prefill]) + "#new-silence",
            runbook_url=safe_link(a.annotations.get("runbook_url", "")),
            dashboard_url=safe_link(a.annotations.get("dashboard_url", "")),
        ))
    order = {"firing": 0, "flapping": 1, "pending": 2}
    sev = {"critical": 0, "warning": 1, "info": 2}
    rows.sort(key=lambda r: (order.get(r.alert.state, 9), sev.get(r.alert.severity, 9),
                             -(r.alert.fired_at or r.alert.active_since or 0.0)))
    return rows


def _receivers(alerting: Mapping[str, Any], pending: Mapping[str, Mapping[str, Any]] | None,
               backlog_failed: bool) -> list[ReceiverRow]:
    rows = []
    for name, r in sorted((alerting.get("receivers") or {}).items()):
        p = (pending or {}).get(name, {"pending": 0, "oldest_age": 0.0})
        known = pending is not None and not backlog_failed
        rows.append(ReceiverRow(
            name=name, type=r.get("type", ""), target=r.get("target", ""),
            sent=r.get("sent", 0), failed_attempts=r.get("failed_attempts", 0),
            dropped=r.get("dropped", 0), muted=r.get("muted", 0),
            pending=p["pending"] if known else None,
            oldest_age=p["oldest_age"] if known and p["pending"] else None,
            last_success=r.get("last_success"), last_error=r.get("last_error"),
            broken=r.get("broken"),
        ))
    return rows


def _exporters(components: Mapping[str, Any]) -> list[ExporterRow]:
    names = (components.get("exporter-health") or {}).get("exporters") or []
    rows = []
    for name in names:
        c = components.get(name) or {}
        where = c.get("destination") or c.get("endpoint") or c.get("url") or c.get("mode") or ""
        rows.append(ExporterRow(
            name=name, where=str(where), state=str(c.get("state", "?")),
            last_success=c.get("last_success"), failures=int(c.get("failures") or 0),
            queue_length=int(c.get("queue_length") or 0), last_error=c.get("last_error"),
        ))
    return rows
