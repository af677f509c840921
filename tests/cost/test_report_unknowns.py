"""What the report says when it cannot know: no price, no request counter, too little data."""

from __future__ import annotations

import pytest

from agent.cost.config import CostConfig
from agent.cost.format import as_csv, as_table
from agent.cost.report import build_report
from agent.samples import CheckResult, Kind, Sample, Status, make_tags
from tests.cost.test_meter import Clock, gpu_check, pods
from tests.checks.gpu_fake_nvml import FakeGpu, FakeNvml
from tests.cost.harness import Harness

pytestmark = pytest.mark.unit

GiB = 2**30
T0 = 1_796_342_400.0


async def test_no_price_is_unknown_and_a_short_period_gives_no_recommendation(tmp_path):
    pods(tmp_path, {100: "ranker-0"})
    lib = FakeNvml([FakeGpu(uuid="GPU-0", name="NVIDIA L4", util_gpu=3, processes=[(100, GiB)]),
                    FakeGpu(uuid="GPU-1", name="NVIDIA L4", bus_id="00000000:19:00.0")])
    clock = Clock(T0 - 600)
    config = CostConfig(prices=[{"gpu_model": "*H100*", "price_per_hour": 4.1}],
                        models=[{"model": "ranker", "pod": "ranker-*"}], max_gap="15m")
    h = Harness(str(tmp_path / "history.db"), config, clock)
    check = gpu_check(lib, clock, tmp_path, interval=600)
    try:
        for minute in range(0, 3 * 60 + 10, 10):  # T0 - 10 min .. T0 + 3 h
            await h.feed(await check.run())
            if minute % 60 == 0:  # iris-sklearn's counter on a CPU pod: requests, no GPU
                tags = make_tags({"check": "cpu-tier", "model": "iris-sklearn", "version": "v1"})
                await h.feed(CheckResult("cpu-tier", "openmetrics", Status.OK, started=clock.t, samples=[
                    Sample("mlwarden.openmetrics.model_infer_request_success", 10.0 * minute, tags,
                           clock.t, Kind.MONOTONIC_COUNT)]))
            clock.t += 600
        await check.close()
        h.finish()
        report = build_report(h.store.reader, config, T0, T0 + 3 * 3600)
    finally:
        h.close()
    ranker, iris = (next(m for m in report.models if m.model == name) for name in ("ranker", "iris-sklearn"))
    assert ranker.gpu_seconds == 3 * 3600
    assert ranker.spend is None and ranker.cost_per_day is None and ranker.per_1k is None
    assert ranker.predictions is None
    assert ranker.recommendation.rule == "not-enough-data"
    assert ranker.recommendation.text == "3 h of GPU readings (the rules need 1 day): no recommendation yet"
    assert not iris.on_gpu and iris.predictions == 3 * 600  # three hourly scrapes after the baseline
    (node,) = report.nodes
    assert node.spend is None and node.idle_spend is None and node.idle_seconds == 3 * 3600
    assert report.total is None and report.idle is None
    text = as_table(report)
    assert text.splitlines()[0].endswith(": unknown (models unknown, idle unknown, other unknown)")
    row = next(line for line in text.splitlines() if line.startswith("ranker"))
    assert "unknown" in row and "no request data" in row and "$0" not in row
    iris_row = next(line for line in text.splitlines() if line.startswith("iris-sklearn"))
    assert "not on a GPU" in iris_row
    csv_ranker = next(line for line in as_csv(report).splitlines() if line.startswith("model,ranker"))
    assert ",,," in csv_ranker  # unknown cost: empty, never 0
