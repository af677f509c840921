"""Datadog events for per-run facts: a failed run or task, an import error, an XID, a model
that stops being ready.

A counter says how many runs failed; an event says *which* one, with its run id, try and
log link, without turning each run into a billed custom metric. The catalog's ``event``
column names the metrics worth one and Datadog's alert type; the semantics:

- **count** (a failed DAG run, a failed task, XID errors): every sample above 0 is one
  event, at the sample's time. Checks report each failure once (their cursors survive
  restarts), so each failure is one event.
- **gauge** (an import error, a model's readiness): an event when the series *enters* its
  trigger state (any non-zero value, or the value after ``@``: ``warning@0`` fires when
  ``ready`` drops to 0), with the catalog's alert type; a ``success`` event when it leaves
  it. Staying in a state sends nothing. The first reading of a series in the trigger state
  counts as entering it (an agent that starts while a DAG file is broken says so once);
  a first reading outside it sets the baseline silently. State is per process, so a
  restart announces a still-broken file once more.

Every event carries the series' tags (never its facts) plus an aggregation key, the same
for every event of one series, so Datadog's event stream groups the failures of one DAG
or one task; the facts (run id, try, error text, log link) go in the text as Markdown,
scrubbed of registered secrets like every other message the agent sends.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from agent.catalog import Catalog
from agent.samples import CheckResult, Kind, Sample, SeriesKey, Tags
from agent.secrets import scrub

__all__ = ["DatadogEvent", "EventDetector", "aggregation_key"]

SOURCE = "mlwarden"
MAX_TEXT = 4000  # what /api/v1/events accepts
MAX_KEY = 100  # aggregation_key limit

# Titles of the shipped event metrics; other metrics get a generic one. Fields are the
# sample's tags and facts; a missing field leaves the placeholder's name.
TITLES: dict[str, tuple[str, str]] = {  # metric -> (entering, leaving)
    "mlwarden.airflow.dag_run.failed": ("Airflow DAG run failed: {dag_id}", ""),
    "mlwarden.airflow.task_instance.failed": ("Airflow task failed: {dag_id}.{task_id}", ""),
    "mlwarden.airflow.import_error": ("DAG file fails to import: {filename}",
                                      "DAG file imports again: {filename}"),
    "mlwarden.gpu.xid.errors": ("GPU XID {xid} ({xid_meaning}) on {node} GPU {gpu}", ""),
    "mlwarden.endpoint.ready": ("Model not ready: {model} at {endpoint}",
                                "Model ready again: {model} at {endpoint}"),
}


@dataclass(frozen=True, slots=True)
class DatadogEvent:
    """One event, independent of how it is sent (DogStatsD ``_e`` or ``/api/v1/events``)."""

    title: str
    text: str
    alert_type: str
    aggregation_key: str
    timestamp: int
    tags: Tags  # series tags plus `metric`: facts removed, unified tags not yet applied
    metric: str
    identity: str  # stable per occurrence (the API outbox's dedup key)

    @property
    def priority(self) -> str:
        return "normal" if self.alert_type in ("error", "warning") else "low"


@dataclass(frozen=True, slots=True)
class _Rule:
    alert_type: str
    trigger: float | None  # gauges: the value that triggers (None: any non-zero)

    def triggered(self, value: float) -> bool:
        return value != 0 if self.trigger is None else value == self.trigger


class EventDetector:
    """Turns a check result's samples into events, following the catalog."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._rules: dict[str, _Rule] = {}
        for spec in catalog:
            if spec.event:
                alert, _, trigger = spec.event.partition("@")
                self._rules[spec.name] = _Rule(alert, float(trigger) if trigger else None)
        self._state: dict[SeriesKey, bool] = {}  # gauge series -> in its trigger state

    @property
    def metrics(self) -> frozenset[str]:
        return frozenset(self._rules)

    def events(self, result: CheckResult, samples: Iterable[Sample] | None = None) -> list[DatadogEvent]:
        """The events of one result (usually none: one dict lookup per sample); ``samples``:
        only these of its samples (a caller that already knows which are event metrics)."""
        rules = self._rules
        out: list[DatadogEvent] = []
        for sample in result.samples if samples is None else samples:
            rule = rules.get(sample.metric)
            if rule is not None:
                event = self._event(sample, rule, result)
                if event is not None:
                    out.append(event)
        return out

    def forget(self, check: str) -> None:
        for key in [k for k in self._state if ("check", check) in k[1]]:
            del self._state[key]

    def _event(self, sample: Sample, rule: _Rule, result: CheckResult) -> DatadogEvent | None:
        series = self.catalog.series_tags(sample.metric, sample.tags)
        if sample.kind is Kind.GAUGE:
            key = (sample.metric, series)
            now = rule.triggered(sample.value)
            before = self._state.get(key)
            self._state[key] = now
            if now == bool(before):
                return None
            entering = now
        elif sample.kind is Kind.COUNT:
            if sample.value <= 0:
                return None
            entering = True
        else:
            return None
        when = int(round(sample.timestamp or result.started))
        fields = {**dict(sample.tags), "value": _number(sample.value)}
        titles = TITLES.get(sample.metric)
        if titles is not None and (titles[0] if entering else titles[1]):
            title = _fill(titles[0] if entering else titles[1], fields)
        else:
            state = "" if sample.kind is Kind.COUNT else (" (entered)" if entering else " (cleared)")
            title = f"{sample.metric} = {fields['value']}{state}: {_identity(series)}"
        facts = [(k, v) for k, v in sample.tags if (k, v) not in series]
        text = _text(sample, series, facts, result.check, entering)
        alert = rule.alert_type if entering else "success"
        identity = hashlib.sha1(repr((sample.metric, sample.tags, when, entering, sample.value))
                                .encode()).hexdigest()
        # a `metric:` tag lets a dashboard's event stream pick these events (render.py)
        tags = tuple(sorted({**dict(series), "metric": sample.metric}.items()))
        return DatadogEvent(title=scrub(title)[:200], text=text, alert_type=alert,
                            aggregation_key=aggregation_key(sample.metric, series),
                            timestamp=when, tags=tags, metric=sample.metric, identity=identity)


def aggregation_key(metric: str, series: Tags) -> str:
    """One key per series, readable when it fits Datadog's 100 characters, else hashed.
    env, service and version are left out: the environment may override them."""
    readable = metric + "," + ",".join(f"{k}:{v}" if v else k for k, v in series
                                       if k not in ("env", "service", "version"))
    if len(readable) <= MAX_KEY and "|" not in readable:
        return readable
    digest = hashlib.sha1(readable.encode()).hexdigest()[:20]
    return f"{metric[:MAX_KEY - 21]},{digest}"


def _identity(series: Tags) -> str:
    return ", ".join(f"{k}={v}" for k, v in series if k not in ("env", "service", "version"))


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


class _Default(dict):  # type: ignore[type-arg]
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _fill(template: str, fields: Mapping[str, Any]) -> str:
    return template.format_map(_Default(fields))


def _text(sample: Sample, series: Tags, facts: list[tuple[str, str]], check: str,
          entering: bool) -> str:
    """Markdown: what happened, the facts, then a link to the log when there is one."""
    lines = [f"**{sample.metric}** = {_number(sample.value)}"
             + ("" if sample.kind is Kind.COUNT else (" (entered its alert state)" if entering
                                                      else " (back to normal)"))
             + f", reported by check `{check}`.", ""]
    link = None
    for key, value in facts:
        if key.endswith("_url") and value.startswith(("http://", "https://")):
            link = (key, value)
            continue
        lines.append(f"- {key}: `{value}`" if value else f"- {key}")
    lines.append(f"- series: {_identity(series)}")
    if link is not None:
        label = "Open the log" if link[0] == "log_url" else link[0]
        lines += ["", f"[{label}]({link[1]})"]
    body = scrub("\n".join(lines))
    room = MAX_TEXT - len("%%% \n\n %%%")
    if len(body) > room:  # keep the link: it is what the on-call clicks
        tail = "" if link is None else scrub(f"\n\n[Open the log]({link[1]})")
        body = body[:max(0, room - len(tail) - 3)] + "..." + tail
    return f"%%% \n{body}\n %%%"
