"""Large reports (thousands of samples in one result) are taken in slices, the loop free
between them, and end exactly as if taken in one piece.

The agent's self-check over 5,000 instances reports 10,000 series every 15 s; taken in one
piece by the Prometheus exporter it held the event loop ~40 ms, delaying every due check
(benchmarks/agent_scale.py).
"""

from __future__ import annotations

import asyncio

from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_families

from agent.export.prometheus import SLICE, PrometheusExporter
from agent.pipeline import LARGE, Pipeline
from agent.samples import CheckResult, Kind, Sample, Status, make_tags


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def big_report(n: int, shift: float, keep: int) -> CheckResult:
    """Per-instance gauges of two metrics (``keep`` instances: the rest ended), a counter and
    a histogram each, plus one gauge of a metric with one series."""
    samples = [Sample("mlwarden.agent.pipeline.queue_depth", shift, make_tags({"agent": "a"}))]
    for i in range(keep):
        tags = make_tags({"check": f"c{i}"})
        samples.append(Sample("mlwarden.agent.check.last_duration", 0.001 * i + shift, tags))
        samples.append(Sample("mlwarden.agent.check.consecutive_failures", float((i + n) % 3), tags))
        samples.append(Sample("mlwarden.check.runs", 1.0, tags, kind=Kind.COUNT))
        samples.append(Sample("mlwarden.endpoint.latency", 0.01 * (i % 50) + shift, tags,
                              kind=Kind.DISTRIBUTION))
    return CheckResult("agent", "agent", Status.OK, samples=samples, interval=15.0)


def test_a_large_report_in_slices_renders_byte_for_byte_as_in_one_piece():
    clock = Clock()
    whole, sliced = PrometheusExporter(clock=clock), PrometheusExporter(clock=clock)
    for n, keep in enumerate((1500, 1500, 1200)):  # the last run: 300 instances ended
        report = big_report(n, n / 10, keep)
        assert len(report.samples) > 2 * SLICE
        whole.consume(report)
        asyncio.run(sliced.consume_in_slices(report))
        for openmetrics in (False, True):
            a, b = whole.render(openmetrics), sliced.render(openmetrics)
            assert a == b
        clock.now += 10
    families = {f.name: f for f in om_families(a.decode())}
    duration = families["mlwarden_agent_check_last_duration_seconds"].samples
    assert len(duration) == 1200 and duration[7].value == 0.007 + 0.2
    runs = {s.labels["check"]: s.value for s in families["mlwarden_check_runs"].samples}
    assert runs["c0"] == 3 and runs["c1499"] == 2  # counters stay; the first rise shown after zero


async def test_the_pipeline_lets_other_tasks_run_while_a_sink_takes_a_large_report():
    exporter = PrometheusExporter(clock=Clock())
    used: list[str] = []

    class Recording(PrometheusExporter):
        def consume(self, result: CheckResult) -> None:
            used.append("consume")
            super().consume(result)

        async def consume_in_slices(self, result: CheckResult) -> None:
            used.append("slices")
            await super().consume_in_slices(result)

    recording = Recording(clock=Clock())
    pipeline = Pipeline([exporter, recording])
    pipeline.start()
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:  # a due check would run in these gaps
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    try:
        await asyncio.sleep(0)
        pipeline.submit(big_report(0, 0.0, 2500))  # 10,001 samples
        assert await pipeline.drain(30)
        during = ticks
        pipeline.submit(CheckResult("x", "t", Status.OK, samples=[
            Sample("mlwarden.endpoint.up", 1.0, make_tags({"check": "x"}))] * LARGE))
        assert await pipeline.drain(30)
    finally:
        done.set()
        await task
        await pipeline.stop()
    assert used == ["slices", "consume"]  # LARGE samples exactly: in one piece
    assert during >= 10  # 10,001 samples: at least ten slices, each followed by the loop
    assert exporter.render() == recording.render()
