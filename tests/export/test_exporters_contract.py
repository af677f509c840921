"""One contract, every exporter (STYLE.md example 11).

Each exporter is driven through the same sink/component interface and observed through
its real wire format: the Prometheus text exposition (parsed by prometheus_client's
parser), DogStatsD datagrams (a UDP listener) and Datadog API payloads (the strict fake
intake). The contract: a gauge's latest value arrives under its catalog name, counts add
up as counters (never gauges), a monotonic total counts what happened between totals,
tags arrive, and health is reported with catalog metrics and a /status dict.
"""

from __future__ import annotations

import time
from collections import defaultdict

import pytest
from prometheus_client.parser import text_string_to_metric_families

from agent.catalog import load_catalog
from agent.export.config import DatadogConfig
from agent.export.datadog_api import DatadogApiExporter
from agent.export.datadog_statsd import DogStatsdExporter
from agent.export.prometheus import PrometheusExporter
from agent.history.db import create_schema, make_engine
from agent.samples import CheckResult, Kind, Sample, Status, make_tags
from tests.export.dogstatsd_listener import DogStatsdListener
from tests.export.fake_intake import FakeIntake

TAGS = make_tags({"check": "ranker", "model": "ranker"})


class PrometheusHarness:
    def __init__(self, tmp_path):
        self.exporter = PrometheusExporter()

    def observe(self) -> dict[str, dict[str, float]]:
        """kind -> catalog metric -> value, with counters as totals."""
        out: dict[str, dict[str, float]] = defaultdict(dict)
        by_prom = {s.prometheus: s.name for s in load_catalog()}
        self.exporter.render()  # Prometheus scrapes again and again: new counters show 0 first
        for fam in text_string_to_metric_families(self.exporter.render().decode()):
            for sample in fam.samples:
                if not sample.labels.get("check") == "ranker" or sample.labels.get("model") != "ranker":
                    continue
                kind = "count" if fam.type == "counter" else "gauge"
                out[kind][by_prom[sample.name]] = sample.value
        return out

    def close(self):
        pass


class DogStatsdHarness:
    def __init__(self, tmp_path):
        self.listener = DogStatsdListener().__enter__()
        self.exporter = DogStatsdExporter(DatadogConfig(host="127.0.0.1", port=self.listener.port))

    def observe(self):
        self.exporter.flush()
        time.sleep(0.2)
        out: dict[str, dict[str, float]] = defaultdict(dict)
        for m in self.listener.ours():
            if "check:ranker" not in m.tags or "model:ranker" not in m.tags:
                continue
            if m.type == "c":
                out["count"][m.name] = out["count"].get(m.name, 0.0) + m.value
            else:
                out["gauge"][m.name] = m.value
        return out

    def close(self):
        self.listener.__exit__()


class DatadogApiHarness:
    def __init__(self, tmp_path):
        self.intake = FakeIntake().__enter__()
        engine = make_engine(f"sqlite:///{tmp_path}/h.db")
        create_schema(engine)
        self.exporter = DatadogApiExporter(
            DatadogConfig(mode="api", api_key=self.intake.api_key, api_url=self.intake.url),
            engine, hostname="node-1")
        self.exporter._configure_client()

    def observe(self):
        self.exporter.cycle(time.time(), self.exporter._take())
        assert self.intake.problems == []
        out: dict[str, dict[str, float]] = defaultdict(dict)
        for payload in self.intake.series_payloads:
            for s in payload["series"]:
                if "check:ranker" not in s["tags"] or "model:ranker" not in s["tags"]:
                    continue
                for p in s["points"]:
                    if s["type"] == 1:
                        out["count"][s["metric"]] = out["count"].get(s["metric"], 0.0) + p["value"]
                    else:
                        out["gauge"][s["metric"]] = p["value"]
        return out

    def close(self):
        self.intake.__exit__()


@pytest.fixture(params=[PrometheusHarness, DogStatsdHarness, DatadogApiHarness],
                ids=["prometheus", "dogstatsd", "datadog-api"])
def harness(request, tmp_path):
    h = request.param(tmp_path)
    yield h
    h.close()


def run(i: int, total: float, ts: float) -> CheckResult:
    return CheckResult("ranker", "model_endpoint", Status.OK, started=ts, samples=[
        Sample("mlwarden.check.duration", 0.5 + i, TAGS, ts),
        Sample("mlwarden.check.runs", 1.0, TAGS, ts, Kind.COUNT),
        Sample("mlwarden.agent.cpu.time", total, TAGS, ts, Kind.MONOTONIC_COUNT),
    ])


def test_gauges_counts_and_monotonic_totals(harness):
    now = time.time()
    harness.exporter.consume(run(0, 100.0, now - 2))
    harness.exporter.consume(run(1, 103.0, now - 1))
    harness.exporter.consume(run(2, 104.5, now))
    seen = harness.observe()
    assert seen["gauge"]["mlwarden.check.duration"] == 2.5  # the latest value
    assert seen["count"]["mlwarden.check.runs"] == 3.0  # counted, not a gauge
    assert "mlwarden.check.runs" not in seen["gauge"]
    cpu = seen["count"]["mlwarden.agent.cpu.time"]
    if isinstance(harness, PrometheusHarness):
        assert cpu == 104.5  # a Prometheus counter is the running total itself
    else:
        assert cpu == 4.5  # Datadog counts what happened after the first total


def test_health_is_reported_with_catalog_metrics(harness):
    harness.exporter.consume(run(0, 1.0, time.time()))
    harness.observe()
    status = harness.exporter.status()
    assert status["state"] == "ok" and status["last_error"] is None
    assert status["last_success"] is not None
    catalog = load_catalog()
    samples = harness.exporter.health.samples(make_tags({"check": "exporters"}), time.time())
    for sample in samples:
        spec = catalog.get(sample.metric)
        assert spec is not None and spec.kind == sample.kind, sample.metric
        assert sample.tag("exporter") == harness.exporter.health.exporter
