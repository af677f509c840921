"""The cost report: per model, per node and per pipeline, from the ``mlwarden.cost.*`` history.

Sums (money, GPU-seconds, predictions) come from hourly rollups, which add counts exactly;
percentiles of utilisation and memory from one-minute means, counted per value in the
database (to 0.1 % and 64 MiB), so a week of a model is at most a few thousand rows. The
period is whole hours, ``[since, until)``. Nothing is computed that the history does not
hold: a model without request counters has "no request data", and any GPU time without a
price makes the totals it belongs to unknown rather than short.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from agent.cost.config import CostConfig
from agent.cost.rightsizing import ModelFigures, Recommendation, recommend
from agent.history.query import HistoryReader
from agent.samples import Tags

__all__ = ["CostReport", "ModelRow", "NodeRow", "PipelineRow", "build_report", "percentile", "hour_window"]

C = "mlwarden.cost."
HOUR = 3600.0
UTIL_QUANTUM = 0.001        # percentiles of utilisation to 0.1 %
MEMORY_QUANTUM = 2.0**26    # of memory to 64 MiB (at most 1,280 values on an 80 GiB card)
_EPS = 1e-3  # the window is [since, until): the reader's bounds are inclusive


@dataclass
class ModelRow:
    model: str
    gpu_seconds: float = 0.0
    spend: float | None = 0.0          # None: unknown (GPU time without a price)
    predictions: float | None = None   # None: no request data
    coverage: float = 0.0              # seconds (whole hours) with GPU time
    utilization_p50: float | None = None
    utilization_p95: float | None = None
    memory_p95: float | None = None
    memory_total: float | None = None
    recommendation: Recommendation | None = None
    days: float = 1.0

    @property
    def on_gpu(self) -> bool:
        return self.gpu_seconds > 0

    @property
    def cost_per_day(self) -> float | None:
        return None if self.spend is None or not self.on_gpu else self.spend / self.days

    @property
    def requests_per_second(self) -> float | None:
        return None if self.predictions is None else self.predictions / (self.days * 86400.0)

    @property
    def per_1k(self) -> float | None:
        if self.spend is None or not self.predictions or not self.on_gpu:
            return None
        return self.spend / self.predictions * 1000.0


@dataclass
class NodeRow:
    node: str
    capacity: str = ""
    gpu_seconds: float = 0.0
    spend: float | None = 0.0
    idle_seconds: float = 0.0
    idle_spend: float | None = 0.0


@dataclass
class PipelineRow:
    dag_id: str
    runs: int = 0
    gpu_seconds: float = 0.0
    cost: float | None = 0.0
    first_half: list[float] = field(default_factory=list)   # cost (or GPU-seconds) per run
    second_half: list[float] = field(default_factory=list)
    trend_of: str = "cost"

    @property
    def cost_per_run(self) -> float | None:
        return None if self.cost is None or not self.runs else self.cost / self.runs

    @property
    def gpu_hours_per_run(self) -> float | None:
        return self.gpu_seconds / HOUR / self.runs if self.runs else None

    @property
    def trend(self) -> float | None:
        """Change of the mean per run from the first half of the period to the second."""
        if not self.first_half or not self.second_half:
            return None
        before = sum(self.first_half) / len(self.first_half)
        after = sum(self.second_half) / len(self.second_half)
        return None if before <= 0 else after / before - 1.0


@dataclass
class CostReport:
    since: float
    until: float
    currency: str
    models: list[ModelRow]
    nodes: list[NodeRow]
    pipelines: list[PipelineRow]

    @property
    def days(self) -> float:
        return (self.until - self.since) / 86400.0

    @property
    def total(self) -> float | None:
        return _sum_known(n.spend for n in self.nodes)

    @property
    def idle(self) -> float | None:
        return _sum_known(n.idle_spend for n in self.nodes)

    @property
    def models_total(self) -> float | None:
        return _sum_known(m.spend for m in self.models if m.on_gpu)

    @property
    def empty(self) -> bool:
        return not (self.models or self.nodes or self.pipelines)


def _sum_known(values: Iterable[float | None]) -> float | None:
    total = 0.0
    for v in values:
        if v is None:
            return None
        total += v
    return total


def percentile(counts: Mapping[float, int], q: float) -> float | None:
    """The q-quantile of values given with how often each occurred: linear interpolation
    between closest ranks (numpy's default), as if every occurrence were listed."""
    total = sum(counts.values())
    if total <= 0:
        return None
    pos = q * (total - 1)
    lo_rank = math.floor(pos)
    hi_rank = min(lo_rank + 1, total - 1)
    lo = hi = None
    seen = 0
    for value, n in sorted(counts.items()):
        if lo is None and seen + n > lo_rank:
            lo = value
        if seen + n > hi_rank:
            hi = value
            break
        seen += n
    assert lo is not None and hi is not None
    return lo + (hi - lo) * (pos - lo_rank)


def hour_window(until: float, period: float) -> tuple[float, float]:
    """``[since, until)`` in whole hours: until rounded down, the period rounded up."""
    end = math.floor(until / HOUR) * HOUR
    return end - math.ceil(period / HOUR) * HOUR, end


class _Reads:
    """The few history reads a report makes, grouped by one tag."""

    def __init__(self, reader: HistoryReader, since: float, until: float) -> None:
        self.reader, self.since, self.until = reader, since, until - _EPS
        self._cache: dict[tuple[str, str], dict[Tags, list[tuple[float, float]]]] = {}

    def hourly(self, metric: str, agg: str = "sum") -> dict[Tags, list[tuple[float, float]]]:
        key = (metric, agg)
        if key not in self._cache:  # a metric serves several columns: read it once
            self._cache[key] = self.reader.query(metric, self.since, self.until, step=HOUR, agg=agg).series
        return self._cache[key]

    def sums(self, metric: str, by: str, where: Mapping[str, str] | None = None) -> dict[str, float]:
        out: dict[str, float] = {}
        for tags, points in self.hourly(metric).items():
            t = dict(tags)
            if where and any(t.get(k) != v for k, v in where.items()):
                continue
            key = t.get(by, "")
            out[key] = out.get(key, 0.0) + sum(v for _, v in points if not math.isnan(v))
        return out

    def distribution(self, metric: str, by: str, quantum: float) -> dict[str, dict[float, int]]:
        """One-minute means, counted per value, merged per ``by`` tag (percentiles read them)."""
        out: dict[str, dict[float, int]] = {}
        found = self.reader.distribution(metric, self.since, self.until + _EPS, quantum=quantum)
        for tags, pairs in found.items():
            acc = out.setdefault(dict(tags).get(by, ""), {})
            for value, n in pairs:
                acc[value] = acc.get(value, 0) + n
        return out


def build_report(reader: HistoryReader, config: CostConfig, since: float, until: float) -> CostReport:
    """The report over ``[since, until)`` (blocking: it reads history)."""
    reads = _Reads(reader, since, until)
    days = (until - since) / 86400.0
    return CostReport(since, until, config.currency, _models(reads, config, days), _nodes(reads),
                      _pipelines(reader, since, until))


def _models(reads: _Reads, config: CostConfig, days: float) -> list[ModelRow]:
    seconds = reads.sums(C + "model.gpu_seconds", "model")
    spend = reads.sums(C + "model.spend", "model")
    unpriced = reads.sums(C + "unpriced.gpu_seconds", "model", {"use": "model"})
    predictions = reads.sums(C + "model.predictions", "model")
    coverage: dict[str, set[float]] = {}
    for tags, points in reads.hourly(C + "model.gpu_seconds").items():
        hours = coverage.setdefault(dict(tags).get("model", ""), set())
        hours.update(t for t, v in points if v > 0)
    util = reads.distribution(C + "model.utilization", "model", UTIL_QUANTUM)
    memory = reads.distribution(C + "model.memory.used", "model", MEMORY_QUANTUM)
    totals: dict[str, float] = {}
    for tags, points in reads.hourly(C + "model.memory.total", "max").items():
        model = dict(tags).get("model", "")
        values = [v for _, v in points if not math.isnan(v)]
        if values:
            totals[model] = max(totals.get(model, values[0]), *values)
    rows = []
    for model in sorted(set(seconds) | set(predictions)):
        if not model:
            continue
        row = ModelRow(model, gpu_seconds=seconds.get(model, 0.0), days=days,
                       predictions=predictions.get(model),
                       coverage=len(coverage.get(model, ())) * HOUR,
                       utilization_p50=percentile(util.get(model, {}), 0.50),
                       utilization_p95=percentile(util.get(model, {}), 0.95),
                       memory_p95=percentile(memory.get(model, {}), 0.95),
                       memory_total=totals.get(model))
        row.spend = None if unpriced.get(model, 0.0) > 0 else spend.get(model, 0.0)
        if row.on_gpu:
            gpus = row.gpu_seconds / row.coverage if row.coverage else 0.0
            price = row.spend / row.gpu_seconds * HOUR if row.spend is not None else None
            row.recommendation = recommend(ModelFigures(
                model, row.coverage, gpus, row.utilization_p95, row.memory_p95, row.memory_total,
                price), config)
        rows.append(row)
    rows.sort(key=lambda r: (-(r.cost_per_day or 0.0), -r.gpu_seconds, r.model))
    return rows


def _nodes(reads: _Reads) -> list[NodeRow]:
    seconds = reads.sums(C + "node.gpu_seconds", "node")
    spend = reads.sums(C + "node.spend", "node")
    idle_seconds = reads.sums(C + "node.idle.gpu_seconds", "node")
    idle_spend = reads.sums(C + "node.idle.spend", "node")
    unpriced = reads.sums(C + "unpriced.gpu_seconds", "node")
    unpriced_idle = reads.sums(C + "unpriced.gpu_seconds", "node", {"use": "idle"})
    capacity = {dict(t).get("node", ""): dict(t).get("capacity", "")
                for t in reads.hourly(C + "node.gpu_seconds")}
    rows = []
    for node in sorted(seconds):
        rows.append(NodeRow(node, capacity.get(node, ""), seconds[node],
                            None if unpriced.get(node, 0.0) > 0 else spend.get(node, 0.0),
                            idle_seconds.get(node, 0.0),
                            None if unpriced_idle.get(node, 0.0) > 0 else idle_spend.get(node, 0.0)))
    rows.sort(key=lambda r: (-(r.idle_spend or 0.0), -r.idle_seconds, r.node))
    return rows


def _pipelines(reader: HistoryReader, since: float, until: float) -> list[PipelineRow]:
    """One point per finished run (its run_id keeps each its own series)."""
    runs: dict[tuple[str, str], dict[str, float]] = {}
    for metric in ("dag_run.gpu_seconds", "dag_run.cost"):
        for tags, points in reader.read_series(C + metric, since, until - _EPS).items():
            t = dict(tags)
            for ts, value in points:
                run = runs.setdefault((t.get("dag_id", ""), t.get("run_id", "")), {"t": ts})
                run[metric] = run.get(metric, 0.0) + value
    by_dag: dict[str, list[tuple[float, float, float | None]]] = {}
    for (dag_id, _), run in sorted(runs.items()):
        by_dag.setdefault(dag_id, []).append(
            (run["t"], run.get("dag_run.gpu_seconds", 0.0), run.get("dag_run.cost")))
    middle = (since + until) / 2.0
    rows = []
    for dag_id, items in by_dag.items():
        row = PipelineRow(dag_id, runs=len(items), gpu_seconds=sum(g for _, g, _ in items))
        unknown = any(c is None and g > 0 for _, g, c in items)
        row.cost = None if unknown else sum(c or 0.0 for _, _, c in items)
        row.trend_of = "GPU time" if unknown else "cost"
        for t, gpu_seconds, cost in items:
            value = gpu_seconds if unknown else (cost or 0.0)
            (row.first_half if t < middle else row.second_half).append(value)
        rows.append(row)
    return sorted(rows, key=lambda r: (-(r.cost or 0.0), -r.gpu_seconds, r.dag_id))
