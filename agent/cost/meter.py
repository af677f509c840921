"""The cost meter: a pipeline sink that turns what the checks report into ``mlwarden.cost.*``.

From a gpu check's result it charges each GPU's time since its previous reading (at most
``max_gap``; the first reading after a start or a gap charges nothing) to the models, idle
or other use that :mod:`~agent.cost.attribution` finds, at the price the table gives its
model and node. From request counters it counts predictions per model. From Airflow task
instances it charges the task's GPUs, reading them back from history off the event loop
(:mod:`~agent.cost.tasks`). Its samples go back into the pipeline as results of an instance
``cost:<source check>``, so they reach the history store and the exporters like any check's.

A GPU without a price is still metered (GPU-seconds) and its time is counted in
``mlwarden.cost.unpriced.gpu_seconds``, so the report says "unknown" instead of a total that
silently leaves it out.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.cost.attribution import attribute
from agent.cost.config import DEFAULT_REQUESTS, CostConfig
from agent.cost.models import ModelMatcher
from agent.cost.prices import PriceTable
from agent.cost.tasks import TaskInstance, charge_task, task_instances, TI_METRIC
from agent.cost.usage import GPU_METRICS, gpu_uses
from agent.history.protocol import SeriesReader
from agent.samples import CheckResult, Kind, Sample, Status, Tags, make_tags
from agent.tasks import cancel_and_wait

__all__ = ["CostMeter"]

log = logging.getLogger(__name__)
C = "mlwarden.cost."
MAX_SERIES = 100_000  # bounded memory of counter baselines and GPU clocks


@dataclass
class _ModelAcc:
    gpu_seconds: float = 0.0
    spend: float = 0.0
    unpriced: bool = False
    gpus: float = 0.0
    rate: float = 0.0
    util_weighted: float = 0.0
    util_weight: float = 0.0
    memory_used: float | None = None
    memory_total: float | None = None


@dataclass
class _NodeAcc:
    gpu_seconds: float = 0.0
    spend: float = 0.0
    idle_seconds: float = 0.0
    idle_spend: float = 0.0
    rate: float = 0.0
    capacity: str = ""  # on_demand or spot, from the price table ("" without a price)
    unpriced: dict[tuple[str, str, str], float] = field(default_factory=dict)  # (gpu_model, use, model)


class CostMeter:
    """Component and pipeline sink; ``submit`` feeds its results back to the pipeline."""

    name = "cost"

    def __init__(self, config: CostConfig, submit: Callable[[CheckResult], None], *,
                 reader: SeriesReader | None = None, tags: Mapping[str, str] | None = None) -> None:
        self.config = config
        self.submit = submit
        self.reader = reader
        self.prices = PriceTable(config.prices)
        self.matcher = ModelMatcher(config.models)
        self._requests = _request_labels(config)
        self._tags = dict(tags or {})
        self._last_seen: dict[str, float] = {}          # physical GPU uuid -> last reading
        self._counters: dict[tuple[str, Tags], float] = {}
        self._window: dict[str, deque[tuple[float, float, float]]] = {}  # model -> (t, spend, predictions)
        self._pending: set[asyncio.Task[None]] = set()
        self.results = 0
        self.tasks_charged = 0
        self.errors = 0
        self.last_error: str | None = None

    def reconfigure(self, config: CostConfig) -> None:
        """A reload: new prices, rules and counters; GPU clocks, baselines and learnt pods stay."""
        self.config = config
        self.prices = PriceTable(config.prices)
        learnt = self.matcher.learnt
        self.matcher = ModelMatcher(config.models)
        self.matcher.learnt = learnt
        self._requests = _request_labels(config)

    # -- component ----------------------------------------------------------------------
    async def start(self) -> None:
        log.info("cost meter on: %d prices, %d model rules, %d request counters",
                 len(self.config.prices), len(self.config.models), len(self._requests))

    async def stop(self) -> None:
        for task in list(self._pending):
            await cancel_and_wait(task)

    def status(self) -> dict[str, Any]:
        return {"results": self.results, "tasks_charged": self.tasks_charged,
                "gpus_tracked": len(self._last_seen), "models_learnt": len(self.matcher.learnt),
                "errors": self.errors, "last_error": self.last_error}

    # -- sink ---------------------------------------------------------------------------
    def consume(self, result: CheckResult) -> None:
        if result.check_type == "cost":
            return
        gpu, requests, tis = [], [], False
        for s in result.samples:
            metric = s.metric
            if metric in GPU_METRICS:
                gpu.append(s)
            elif metric in self._requests:
                requests.append(s)
            elif metric == TI_METRIC:
                tis = True
            elif metric.startswith("mlwarden.endpoint."):
                self._learn(s)
        now = result.started
        out: list[Sample] = []
        if requests:
            out += self._predictions(requests, now)
        if gpu:
            out += self._gpus(gpu, now)
        if out:
            self._emit(result.check, now, out)
        if tis and self.reader is not None:
            self._charge_tasks(result.check, task_instances(result.samples), now)

    # -- helpers --------------------------------------------------------------------------
    def _emit(self, source: str, now: float, samples: list[Sample]) -> None:
        name = f"cost:{source}"
        base = make_tags(self._tags, {"check": name})
        tagged = [Sample(s.metric, s.value, make_tags(base, s.tags), now, s.kind) for s in samples]
        self.results += 1
        self.submit(CheckResult(check=name, check_type="cost", status=Status.OK,
                                message="", samples=tagged, started=now))

    def _learn(self, s: Sample) -> None:
        pod, model = s.tag("pod"), s.tag("model")
        if pod and model:
            self.matcher.learn(pod, model)

    def _predictions(self, samples: list[Sample], now: float) -> list[Sample]:
        per_model: dict[str, float] = {}
        for s in samples:
            model = s.tag(self._requests[s.metric])
            if not model:
                continue
            self.matcher.learn(s.tag("pod") or "", model)  # endpoint labels: this pod serves it
            if s.kind is Kind.COUNT:  # already a delta
                delta = s.value
            else:
                key = s.key
                previous = self._counters.get(key)
                if len(self._counters) >= MAX_SERIES and previous is None:
                    self._counters.clear()
                self._counters[key] = s.value
                if previous is None:
                    continue  # a baseline: what came before the agent is not counted
                delta = s.value - previous if s.value >= previous else s.value  # a reset
            per_model[model] = per_model.get(model, 0.0) + delta
        out = []
        for model, n in sorted(per_model.items()):
            out.append(Sample(C + "model.predictions", n, make_tags({"model": model}), now, Kind.COUNT))
            self._remember(model, now, 0.0, n)
        return out

    def _remember(self, model: str, now: float, spend: float,
                  predictions: float) -> deque[tuple[float, float, float]]:
        window = self._window.get(model)
        if window is None:
            if len(self._window) >= 10_000:
                self._window.clear()
            window = self._window[model] = deque()
        window.append((now, spend, predictions))
        horizon = now - self.config.window
        while window and window[0][0] <= horizon:
            window.popleft()
        return window

    def _elapsed(self, uuid: str, now: float) -> float:
        last = self._last_seen.get(uuid)
        if last is None and len(self._last_seen) >= MAX_SERIES:
            horizon = now - self.config.max_gap
            self._last_seen = {u: t for u, t in self._last_seen.items() if t >= horizon}
        if last is None or now < last:
            self._last_seen[uuid] = now
            return 0.0
        self._last_seen[uuid] = now
        gap = now - last
        return gap if gap <= self.config.max_gap else 0.0

    def _gpus(self, samples: list[Sample], now: float) -> list[Sample]:
        models: dict[str, _ModelAcc] = {}
        nodes: dict[str, _NodeAcc] = {}
        for gpu, shares in attribute(gpu_uses(samples), self.matcher):
            dt = self._elapsed(gpu.uuid, now)
            entry = self.prices.entry(gpu.gpu_model, gpu.node)
            price = entry.price_per_hour if entry is not None else None
            node = nodes.setdefault(gpu.node, _NodeAcc())
            node.capacity = node.capacity or (entry.capacity if entry is not None else "")
            node.gpu_seconds += dt
            node.rate = math.nan if price is None else node.rate + price
            if price is not None:
                node.spend += price * dt / 3600.0
            for share in shares:
                seconds = share.share * dt
                if price is None and seconds > 0:
                    key = (gpu.gpu_model, share.use, share.model)
                    node.unpriced[key] = node.unpriced.get(key, 0.0) + seconds
                if share.use == "idle":
                    node.idle_seconds += seconds
                    if price is not None:
                        node.idle_spend += price * seconds / 3600.0
                if share.use != "model":
                    continue
                acc = models.setdefault(share.model, _ModelAcc())
                acc.gpu_seconds += seconds
                acc.gpus += share.share
                if price is None:
                    acc.unpriced = True
                else:
                    acc.spend += price * seconds / 3600.0
                    acc.rate += price * share.share
                if gpu.utilization is not None:
                    acc.util_weighted += gpu.utilization * share.share
                    acc.util_weight += share.share
                acc.memory_used = _max(acc.memory_used, share.memory_used)
                acc.memory_total = _max(acc.memory_total, share.memory_total)
        return self._model_samples(models, now) + _node_samples(nodes, now)

    def _model_samples(self, models: dict[str, _ModelAcc], now: float) -> list[Sample]:
        out = []

        def add(metric: str, value: float, tags: dict[str, str], kind: Kind = Kind.GAUGE) -> None:
            out.append(Sample(C + metric, value, make_tags(tags), now, kind))

        for model, acc in sorted(models.items()):
            tags = {"model": model}
            add("model.gpus", acc.gpus, tags)
            if acc.gpu_seconds > 0:
                add("model.gpu_seconds", acc.gpu_seconds, tags, Kind.COUNT)
                if not acc.unpriced:
                    add("model.spend", acc.spend, tags, Kind.COUNT)
            if not acc.unpriced:
                add("model.rate", acc.rate, tags)
            if acc.util_weight > 0:
                add("model.utilization", acc.util_weighted / acc.util_weight, tags)
            if acc.memory_used is not None:
                add("model.memory.used", acc.memory_used, tags)
            if acc.memory_total is not None:
                add("model.memory.total", acc.memory_total, tags)
            per_1k = self._per_1k(model, now, math.nan if acc.unpriced else acc.spend)
            if per_1k is not None:
                add("model.per_1k_predictions", per_1k, tags)
        return out

    def _per_1k(self, model: str, now: float, spend: float) -> float | None:
        """Cost per 1,000 predictions over the trailing window, when both are known."""
        window = self._remember(model, now, spend, 0.0)
        money = sum(w[1] for w in window)
        predictions = sum(w[2] for w in window)
        if predictions <= 0 or math.isnan(money):
            return None
        return money / predictions * 1000.0

    def _charge_tasks(self, source: str, tis: list[TaskInstance], now: float) -> None:
        reader = self.reader
        assert reader is not None

        def work() -> list[Sample]:
            return _task_samples(reader, tis, self.prices, self.config.max_gap, now)

        async def run() -> None:
            try:
                samples = await asyncio.get_running_loop().run_in_executor(None, work)
            except Exception as exc:  # noqa: BLE001 - history unreadable: say so, go on
                self.errors += 1
                self.last_error = f"charging {len(tis)} task instance(s) of {source}: {exc}"
                log.warning("cost meter: %s", self.last_error)
                return
            self.tasks_charged += len(tis)
            if samples:
                self._emit(source, now, samples)

        task = asyncio.get_running_loop().create_task(run(), name="cost-tasks")
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)


def _request_labels(config: CostConfig) -> dict[str, str]:
    """Forwarded counter name -> the label naming the model: the built-ins, then the config's."""
    return {r.metric: r.model_label for r in (*DEFAULT_REQUESTS, *config.requests)}


def _max(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    return a if b is None else max(a, b)


def _node_samples(nodes: dict[str, _NodeAcc], now: float) -> list[Sample]:
    out = []
    for node, acc in sorted(nodes.items()):
        tags = make_tags({"node": node}, {"capacity": acc.capacity} if acc.capacity else None)
        if not math.isnan(acc.rate):
            out.append(Sample(C + "node.rate", acc.rate, tags, now))
        if acc.gpu_seconds <= 0:
            continue
        out.append(Sample(C + "node.gpu_seconds", acc.gpu_seconds, tags, now, Kind.COUNT))
        out.append(Sample(C + "node.idle.gpu_seconds", acc.idle_seconds, tags, now, Kind.COUNT))
        if not acc.unpriced:
            out.append(Sample(C + "node.spend", acc.spend, tags, now, Kind.COUNT))
            out.append(Sample(C + "node.idle.spend", acc.idle_spend, tags, now, Kind.COUNT))
        for (gpu_model, use, model), seconds in sorted(acc.unpriced.items()):
            extra = {"model": model} if model else {}
            out.append(Sample(C + "unpriced.gpu_seconds", seconds,
                              make_tags({"node": node, "gpu_model": gpu_model, "use": use}, extra),
                              now, Kind.COUNT))
    return out


def _task_samples(reader: SeriesReader, tis: list[TaskInstance], prices: PriceTable,
                  max_gap: float, now: float) -> list[Sample]:
    out: list[Sample] = []
    runs: dict[tuple[str, str], list[float | None]] = {}
    for ti in tis:
        charge = charge_task(reader, ti, prices, max_gap)
        tags = make_tags({"dag_id": ti.dag_id, "task_id": ti.task_id, "run_id": ti.run_id,
                          "try_number": ti.try_number, "hostname": ti.hostname})
        out.append(Sample(C + "task_instance.gpu_seconds", charge.gpu_seconds, tags, now))
        if charge.cost is not None:
            out.append(Sample(C + "task_instance.cost", charge.cost, tags, now))
        acc = runs.setdefault((ti.dag_id, ti.run_id), [0.0, 0.0])
        acc[0] = (acc[0] or 0.0) + charge.gpu_seconds
        acc[1] = None if acc[1] is None or charge.cost is None else acc[1] + charge.cost
    for (dag_id, run_id), (seconds, cost) in sorted(runs.items()):
        tags = make_tags({"dag_id": dag_id, "run_id": run_id})
        dag = make_tags({"dag_id": dag_id})
        out.append(Sample(C + "dag_run.gpu_seconds", seconds or 0.0, tags, now))
        out.append(Sample(C + "dag.gpu_seconds", seconds or 0.0, dag, now, Kind.COUNT))
        if cost is not None:
            out.append(Sample(C + "dag_run.cost", cost, tags, now))
            out.append(Sample(C + "dag.spend", cost, dag, now, Kind.COUNT))
    return out
