"""How long one evaluation cycle of 200 rules over 10,000 series takes, and the memory held.

A cycle, as the agent runs it: every series gets its next sample (10,000 samples, in 100
check results of 100 samples, as checks deliver them) and the rules component
(:class:`RulesEngine`, the pipeline sink) evaluates every (rule, group) each result
touched and saves the alerts whose state moved; then one timer round (``tick``: expiry,
``for`` timers, absent rules) with its own saves. Alert state goes to a SQLite store on
disk, as the agent's does; the saves run in a worker thread and their CPU is counted
(process CPU time: every thread). Windows are warm: each series already holds 5 minutes
of 15-second samples. Two selectivities are measured side by side:

- typical: each rule selects a quarter of its metric's series (`where: {team: ...}`);
- worst:   every rule selects every series of its metric.

Baseline in the same run, batch by batch: the Prometheus exporter sink consuming the same
results (a dict update per sample), so the ratio says what rules cost next to the cheapest
sink there is, and holds on a busy shared machine where absolute figures wander. The
columns split the cycle into the results' part, the timer round and the state saves (part
of both). Memory: tracemalloc of everything the evaluator allocated while warming up
(buffers, groups, alerts, caches), per series held; and the sample columns alone.

Run: .venv/bin/python benchmarks/rules.py
"""

from __future__ import annotations

import asyncio
import gc
import os
import statistics
import tempfile
import time
import tracemalloc

from agent.export.prometheus import PrometheusExporter
from agent.rules.state import AlertStateStore
from agent.history.db import create_schema, make_engine
from agent.rules.config import RuleConfig, RulesEngineConfig
from agent.rules.engine import RulesEngine
from agent.samples import CheckResult, Kind, Sample, Status, make_tags

GAUGES = ["mlwarden.check.status", "mlwarden.check.duration", "mlwarden.agent.cpu.utilization",
          "mlwarden.agent.memory.rss", "mlwarden.agent.open_fds", "mlwarden.agent.threads",
          "mlwarden.agent.pipeline.queue_depth", "mlwarden.agent.check.last_duration"]
COUNTERS = [("mlwarden.check.runs", Kind.COUNT), ("mlwarden.agent.cpu.time", Kind.MONOTONIC_COUNT)]
METRICS = [(m, Kind.GAUGE) for m in GAUGES] + COUNTERS          # 10 metrics
SERIES_PER_METRIC = 1000                                         # 10,000 series
RULES_PER_METRIC = 20                                            # 200 rules
TEAMS = ["a", "b", "c", "d"]
INTERVAL = 15.0
WARM = 20                                                        # 5 minutes of samples


def make_rules(selective: bool) -> list[RuleConfig]:
    rules = []
    level_aggs = ["last", "avg", "max", "min", "p95"]
    windows = ["0s", "1m", "5m"]
    for metric, kind in METRICS:
        for i in range(RULES_PER_METRIC):
            where = {"team": TEAMS[i % 4]} if selective else {}
            if kind is Kind.GAUGE:
                agg = level_aggs[i % len(level_aggs)]
                window = windows[i % 3] if agg != "last" else "0s"
                if agg != "last" and window == "0s":
                    window = "1m"
            else:
                agg, window = ("rate", "5m") if i % 2 else ("increase", "1m")
            rules.append(RuleConfig.model_validate({
                "alert": f"R{len(rules)}", "metric": metric, "where": where, "aggregate": agg,
                "window": window, "op": ">", "threshold": 0.9 + i, "for": "1m",
                "summary": "{check} is {value:.2f}"}))
    return rules


def series_tags() -> list:
    return [make_tags({"check": f"c{n}", "team": TEAMS[n % 4], "node": f"node-{n % 50}"})
            for n in range(SERIES_PER_METRIC)]


def results_at(t: float, tags_list: list, step: int) -> list[CheckResult]:
    samples = []
    for m, (metric, kind) in enumerate(METRICS):
        for n, tags in enumerate(tags_list):
            if kind is Kind.MONOTONIC_COUNT:
                value = float(step * 10 + n)
            elif kind is Kind.COUNT:
                value = 1.0
            else:
                value = ((n * 7 + step * 3 + m) % 100) / 100.0   # about 10% above 0.9
            samples.append(Sample(metric, value, tags, t, kind))
    return [CheckResult(f"check{i}", "bench", Status.OK, samples=samples[i * 100:(i + 1) * 100])
            for i in range(len(samples) // 100)]


class TimedState(AlertStateStore):
    """The real state store, timing its saves (they run in a worker thread)."""

    cpu = 0.0
    rows = 0

    def save(self, rows, transitions):  # noqa: ANN001, ANN201
        start = time.thread_time()
        super().save(rows, transitions)
        self.cpu += time.thread_time() - start
        self.rows += len(rows) + len(transitions)


async def run(selective: bool, folder: str) -> dict:
    rules = make_rules(selective)
    tags_list = series_tags()
    engine = make_engine(f"sqlite:///{folder}/rules-{'typical' if selective else 'worst'}.db")
    create_schema(engine)
    state = TimedState(engine, agent="bench")
    clock = [0.0]
    component = RulesEngine(rules, RulesEngineConfig(), state=state, clock=lambda: clock[0])
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    await component.start()
    component._timer.cancel()  # noqa: SLF001 - the benchmark runs the timer rounds itself
    for step in range(WARM):
        clock[0] = step * INTERVAL
        for result in results_at(clock[0], tags_list, step):
            await component.consume(result)
        clock[0] += 1
        await component.tick()
        await component.saved()
    held = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    ev = component.evaluator
    buffer_bytes = sum(buf.nbytes() for buf in ev.buffers.values())
    exporter = PrometheusExporter()
    cycles, consumes, ticks, saves, baselines, saved = [], [], [], [], [], []
    for step in range(WARM, WARM + 7):
        clock[0] = step * INTERVAL
        results = results_at(clock[0], tags_list, step)
        gc.collect()
        # side by side: the exporter sink and the rules take the same batch, one after the other
        start = time.process_time()
        for result in results:
            exporter.consume(result)
        baselines.append(time.process_time() - start)
        state.cpu, state.rows, evals0 = 0.0, 0, component.evaluations
        start = time.process_time()
        for result in results:
            await component.consume(result)
        await component.saved()  # the background save of what the results changed
        consumes.append(time.process_time() - start)
        clock[0] += 1
        start = time.process_time()
        await component.tick()
        await component.saved()
        ticks.append(time.process_time() - start)
        cycles.append(consumes[-1] + ticks[-1])
        saves.append(state.cpu)
        saved.append(state.rows)
        evaluations = component.evaluations - evals0
    active = sum(1 for r in ev.alerts() if r.state.value in ("pending", "firing"))
    await component.stop()
    engine.dispose()
    med = statistics.median
    return {
        "cycle": med(cycles), "consume": med(consumes), "tick": med(ticks), "saves": med(saves),
        "saved": int(med(saved)), "evaluations": evaluations, "series": ev.series_count(),
        "alerts": active, "held": held, "buffers": buffer_bytes, "baseline": med(baselines),
    }


def main() -> None:
    print(f"{len(METRICS) * RULES_PER_METRIC} rules, {len(METRICS) * SERIES_PER_METRIC} series, "
          f"windows warm with {WARM} samples per series ({WARM * INTERVAL:.0f}s at {INTERVAL:.0f}s); "
          f"CPU ms per cycle, median of 7; load average {'/'.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'selectivity':<12} {'cycle':>7} {'results':>8} {'timer':>7} {'saves':>7} {'rows':>6} "
          f"{'evals':>7} {'us/eval':>8} {'active':>7} {'x exporter':>10} {'bytes/series':>13} "
          f"{'samples B/series':>17}")
    with tempfile.TemporaryDirectory(prefix="bench-rules-") as folder:
        for selective in (True, False):
            r = asyncio.run(run(selective, folder))
            name = "typical" if selective else "worst"
            print(f"{name:<12} {r['cycle'] * 1000:7.1f} {r['consume'] * 1000:8.1f} {r['tick'] * 1000:7.1f} "
                  f"{r['saves'] * 1000:7.1f} {r['saved']:6d} {r['evaluations']:7d} "
                  f"{r['consume'] / max(r['evaluations'], 1) * 1e6:8.2f} {r['alerts']:7d} "
                  f"{r['cycle'] / r['baseline']:10.1f} {r['held'] / r['series']:13.0f} "
                  f"{r['buffers'] / r['series']:17.0f}")
    print("cycle = results + timer round, each with its state saves (saves: CPU of the worker "
          "thread, rows: alert rows and transitions written); aim: cycle under 60 ms (typical)")


if __name__ == "__main__":
    main()
