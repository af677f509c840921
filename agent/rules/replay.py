"""Replaying recorded samples through rules: the engine of ``mlwarden rules test``.

The replay drives the same :class:`RuleEvaluator` the daemon runs: each distinct sample
time is a batch evaluated at that time, and the timer runs every
``evaluation_interval`` between batches (so ``absent`` rules and ``for`` timers behave as
they would live). Nothing reads a clock; time is the data's.

The CSV has a header with ``timestamp``, ``metric`` and ``value``; every other column is a
tag (an empty cell means the series does not carry that tag). Timestamps are UNIX seconds
or ISO 8601 (``2026-11-28T10:00:00Z``).
"""

from __future__ import annotations

import csv
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from agent.catalog import load_catalog
from agent.errors import DataError
from agent.rules.config import RuleConfig, RulesEngineConfig
from agent.rules.evaluator import RuleEvaluator
from agent.samples import Sample, make_tags

__all__ = ["ReplayedTransition", "read_samples_csv", "replay"]


@dataclass(frozen=True)
class ReplayedTransition:
    at: float
    rule: str
    labels: dict[str, str]
    previous: str
    state: str
    value: float | None
    summary: str
    flap_count: int = 0
    annotations: dict[str, str] = field(default_factory=dict)


def parse_time(text: str) -> float:
    """UNIX seconds or ISO 8601 (naive times are UTC)."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def read_samples_csv(path: str | Path) -> list[Sample]:
    """Samples from a recorded CSV; DataError naming the file and line of every bad row."""
    source = str(path)
    catalog = load_catalog()
    problems: list[str] = []
    samples: list[Sample] = []
    try:
        fh = Path(path).open(newline="", encoding="utf-8")
    except OSError as exc:
        raise DataError(source, [f"cannot read the file: {exc.strerror or exc}"]) from None
    with fh:
        reader = csv.DictReader(fh)
        missing = {"timestamp", "metric", "value"} - set(reader.fieldnames or ())
        if missing:
            raise DataError(source, [f"line 1: the header needs columns timestamp, metric, value "
                                       f"(missing: {', '.join(sorted(missing))})"])
        tag_columns = [c for c in reader.fieldnames or () if c not in ("timestamp", "metric", "value")]
        for lineno, row in enumerate(reader, start=2):
            metric = (row.get("metric") or "").strip()
            spec = catalog.get(metric)
            if spec is None:
                problems.append(f"line {lineno}: metric {metric!r} is not in the metric catalog")
                continue
            try:
                ts = parse_time(row.get("timestamp") or "")
            except ValueError:
                problems.append(f"line {lineno}: timestamp {row.get('timestamp')!r} is neither "
                                "UNIX seconds nor ISO 8601")
                continue
            raw = (row.get("value") or "").strip()
            try:
                value = float(raw) if raw else math.nan  # an empty cell is a missing sample
            except ValueError:
                problems.append(f"line {lineno}: value {raw!r} is not a number")
                continue
            tags = make_tags({c: row[c] for c in tag_columns if row.get(c)})
            samples.append(Sample(metric, value, tags, ts, spec.kind))
    if problems:
        raise DataError(source, problems[:20] + ([f"... and {len(problems) - 20} more"]
                                                   if len(problems) > 20 else []))
    return samples


def replay(rules: Sequence[RuleConfig], samples: Sequence[Sample],
           settings: RulesEngineConfig | None = None,
           until: float | None = None,
           checkpoints: Sequence[float] = ()) -> list[ReplayedTransition]:
    """Every public transition the rules make over ``samples`` (and the quiet time after,
    up to ``until``), in order. ``checkpoints`` are extra evaluation times (a test's
    ``eval_time``s), run between the regular timer ticks."""
    settings = settings or RulesEngineConfig()
    ordered = sorted(samples, key=lambda s: s.timestamp)
    if not ordered:
        return []
    start = ordered[0].timestamp
    evaluator = RuleEvaluator(rules, settings, started=start)
    interval = settings.evaluation_interval
    out: list[ReplayedTransition] = []
    next_tick = start + interval
    extra = sorted(t for t in checkpoints if t > start)

    def ticks_until(limit: float, inclusive: bool) -> None:
        nonlocal next_tick
        while True:
            due = [t for t in (next_tick, extra[0] if extra else math.inf)
                   if t < limit or (inclusive and t == limit)]
            if not due:
                return
            at = min(due)
            evaluator.tick(at)
            collect()
            if at == next_tick:
                next_tick += interval
            while extra and extra[0] <= at:
                extra.pop(0)

    def collect() -> None:
        changes, _ = evaluator.drain()
        for c in changes:
            rec = c.record
            out.append(ReplayedTransition(c.at, rec.rule, dict(rec.labels), c.previous.value,
                                          c.state.value, rec.value,
                                          rec.annotations.get("summary", ""), rec.flap_count,
                                          dict(rec.annotations)))

    for ts, batch in itertools.groupby(ordered, key=lambda s: s.timestamp):
        ticks_until(ts, inclusive=True)
        evaluator.evaluate(evaluator.ingest(batch), ts)
        collect()
    end = until if until is not None else ordered[-1].timestamp
    ticks_until(end, inclusive=True)
    return out
