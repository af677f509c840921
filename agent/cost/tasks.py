"""GPU time of an Airflow task instance, read back from history once the run has finished.

The airflow check (``task_instances: true``) reports each task instance that ran with the
worker's host name and the task's start and end. The GPUs charged for it are, in order:

1. the GPUs its pod was seen on during the window: a GPU process whose ``pod`` is the task's
   host name (with KubernetesExecutor or KubernetesPodOperator the host name is the pod's
   name), or a dcgm-exporter GPU labelled with that pod;
2. else every GPU of the node of that name (``node`` tag; ``gpu-3.example.com`` also matches
   node ``gpu-3``): a Celery or local worker on a GPU node uses the node.

Each GPU is charged for the part of the window in which it was reporting: between two of its
readings at most ``max_gap`` apart. A task on a MIG instance is charged the whole GPU. History
is read rather than memory, so the agent running the airflow check (an elected leader) can
charge GPUs that other agents read, through a shared PostgreSQL store.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from agent.cost.prices import PriceTable
from agent.history.protocol import SeriesReader
from agent.samples import Sample

__all__ = ["TaskInstance", "TaskCharge", "charge_task", "covered", "task_instances", "TI_METRIC"]

TI_METRIC = "mlwarden.airflow.task_instance.duration"


@dataclass(frozen=True)
class TaskInstance:
    dag_id: str
    task_id: str
    run_id: str
    try_number: str
    hostname: str
    start: float
    end: float


@dataclass
class TaskCharge:
    gpu_seconds: float = 0.0
    cost: float | None = 0.0       # None: a charged GPU has no price
    gpus: list[str] = field(default_factory=list)  # uuids charged
    matched_by: str = ""           # "pod", "node" or "" (no GPU found)


def task_instances(samples: Iterable[Sample]) -> list[TaskInstance]:
    out = []
    for s in samples:
        if s.metric != TI_METRIC:
            continue
        tags = dict(s.tags)
        try:
            start, end = float(tags["start"]), float(tags["end"])
        except (KeyError, ValueError):
            continue
        if not tags.get("hostname") or end < start:
            continue
        out.append(TaskInstance(tags.get("dag_id", ""), tags.get("task_id", ""), tags.get("run_id", ""),
                                tags.get("try_number", ""), tags["hostname"], start, end))
    return out


def covered(points: Iterable[tuple[float, float]], start: float, end: float, max_gap: float) -> float:
    """Seconds of [start, end] between consecutive readings no more than ``max_gap`` apart."""
    times = sorted(t for t, v in points if v >= 1)
    total = 0.0
    for a, b in zip(times, times[1:]):
        if b - a > max_gap:
            continue
        lo, hi = max(a, start), min(b, end)
        if hi > lo:
            total += hi - lo
    return total


def _pod_gpus(reader: SeriesReader, pod: str, since: float, until: float) -> set[str]:
    found: set[str] = set()
    for metric in ("mlwarden.gpu.process.memory.used", "mlwarden.gpu.utilization"):
        for tags, points in reader.read_series(metric, since, until, {"pod": pod}).items():
            if points:
                t = dict(tags)
                found.add(t.get("parent_uuid") or t.get("uuid", ""))
    found.discard("")
    return found


def charge_task(reader: SeriesReader, ti: TaskInstance, prices: PriceTable,
                max_gap: float) -> TaskCharge:
    """What the task's GPUs cost over its window (blocking: it reads history)."""
    since, until = ti.start - max_gap, ti.end + max_gap
    charge = TaskCharge()
    uuids = _pod_gpus(reader, ti.hostname, ti.start, ti.end)
    series: Mapping[tuple[tuple[str, str], ...], list[tuple[float, float]]]
    if uuids:
        charge.matched_by = "pod"
        series = {}
        for uuid in sorted(uuids):
            series.update(reader.read_series("mlwarden.gpu.up", since, until, {"uuid": uuid}))
    else:
        series = {}
        for node in dict.fromkeys((ti.hostname, ti.hostname.split(".")[0])):
            series = reader.read_series("mlwarden.gpu.up", since, until, {"node": node})
            if series:
                charge.matched_by = "node"
                break
    by_uuid: dict[str, tuple[dict[str, str], list[tuple[float, float]]]] = {}
    for tags, points in series.items():  # a GPU's labels (its pod) may change: one GPU, many series
        t = dict(tags)
        uuid = t.get("uuid", "")
        if uuid and not t.get("parent_uuid"):  # MIG instances are charged through their GPU
            by_uuid.setdefault(uuid, (t, []))[1].extend(points)
    for uuid, (t, points) in sorted(by_uuid.items()):
        seconds = covered(points, ti.start, ti.end, max_gap)
        if seconds <= 0:
            continue
        charge.gpus.append(uuid)
        charge.gpu_seconds += seconds
        price = prices.price(t.get("gpu_model", ""), t.get("node", ""))
        if price is None or charge.cost is None:
            charge.cost = None
        else:
            charge.cost += price * seconds / 3600.0
    return charge
