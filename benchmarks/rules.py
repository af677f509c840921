"""How long one evaluation cycle of 200 rules over 10,000 series takes, and the memory held.

A cycle: every series gets its next sample (10,000 samples, in 100 check results of 100
samples, as checks deliver them) and the rules evaluate every (rule, group) the batch
touched; then one timer round. Windows are warm: each series already holds 5 minutes of
15-second samples. Two selectivities are measured side by side:

- typical: each rule selects a quarter of its metric's series (`where: {team: ...}`);
- worst:   every rule selects every series of its metric.

Baseline in the same run, batch by batch: the Prometheus exporter sink consuming the same
results (a dict update per sample), so the ratio says what rules cost next to the cheapest
sink there is, and holds on a busy shared machine where absolute figures wander. Times are
CPU seconds of this process (one core). Memory: tracemalloc of everything the evaluator
allocated while warming up (buffers, groups, alerts, caches), per series held; and the
sample columns alone.

Run: .venv/bin/python benchmarks/rules.py
"""

from __future__ import annotations

import gc
import statistics
import time
import tracemalloc

from agent.export.prometheus import PrometheusExporter
from agent.rules.config import RuleConfig, RulesEngineConfig
from agent.rules.evaluator import RuleEvaluator
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


def run(selective: bool) -> dict:
    rules = make_rules(selective)
    tags_list = series_tags()
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    ev = RuleEvaluator(rules, RulesEngineConfig(), started=0.0)
    t = 0.0
    for step in range(WARM):
        t = step * INTERVAL
        for result in results_at(t, tags_list, step):
            ev.evaluate(ev.ingest(result.samples), t)
        ev.drain()
    held = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    buffer_bytes = sum(buf.nbytes() for buf in ev.buffers.values())
    exporter = PrometheusExporter()
    cycles, ticks, baselines, evaluations = [], [], [], 0
    for step in range(WARM, WARM + 7):
        t = step * INTERVAL
        results = results_at(t, tags_list, step)
        gc.collect()
        # side by side: the exporter sink and the rules take the same batch, one after the other
        start = time.process_time()
        for result in results:
            exporter.consume(result)
        baselines.append(time.process_time() - start)
        start = time.process_time()
        n = 0
        for result in results:
            affected = ev.ingest(result.samples)
            n += len(affected)
            ev.evaluate(affected, t)
        ev.drain()
        cycles.append(time.process_time() - start)
        evaluations = n
        start = time.process_time()
        ev.tick(t + 1)
        ev.drain()
        ticks.append(time.process_time() - start)
    active = sum(1 for r in ev.alerts() if r.state.value in ("pending", "firing"))
    return {
        "cycle": statistics.median(cycles), "tick": statistics.median(ticks),
        "evaluations": evaluations, "series": ev.series_count(), "alerts": active,
        "held": held, "buffers": buffer_bytes, "baseline": statistics.median(baselines),
    }


def main() -> None:
    print(f"{len(METRICS) * RULES_PER_METRIC} rules, {len(METRICS) * SERIES_PER_METRIC} series, "
          f"windows warm with {WARM} samples per series ({WARM * INTERVAL:.0f}s at {INTERVAL:.0f}s)")
    print(f"{'selectivity':<12} {'cycle ms':>9} {'tick ms':>8} {'evals':>7} {'us/eval':>8} "
          f"{'active':>7} {'x exporter':>10} {'bytes/series':>13} {'samples B/series':>17}")
    for selective in (True, False):
        r = run(selective)
        name = "typical" if selective else "worst"
        print(f"{name:<12} {r['cycle'] * 1000:9.1f} {r['tick'] * 1000:8.1f} {r['evaluations']:7d} "
              f"{r['cycle'] / max(r['evaluations'], 1) * 1e6:8.2f} {r['alerts']:7d} "
              f"{r['cycle'] / r['baseline']:10.1f} {r['held'] / r['series']:13.0f} "
              f"{r['buffers'] / r['series']:17.0f}")
    print("aim: one cycle under 100 ms on one core (the `typical` row)")


if __name__ == "__main__":
    main()
