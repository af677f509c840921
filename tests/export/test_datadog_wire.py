"""Datadog on the wire: distributions, batched service checks, metric metadata, and the
environment's tags with one precedence.

Against a UDP DogStatsD listener that parses the datagram format and the strict fake
intake (payloads validated with datadog-api-client's models: ``DistributionPointsPayload``,
``ServiceCheck`` lists, ``MetricMetadata``; see fake_intake.py for why a fake).
"""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from agent.catalog import Catalog, MetricSpec, load_catalog
from agent.export.config import DatadogConfig
from agent.export.datadog_api import METADATA_KIND, DatadogApiExporter
from agent.export.datadog_statsd import DogStatsdExporter
from agent.export.unified import UnifiedTags, parse_dd_tags
from agent.history.db import create_schema, make_engine
from agent.history.outbox import Outbox
from agent.samples import CheckResult, Kind, Sample, Status, make_tags
from tests.export.dogstatsd_listener import DogStatsdListener
from tests.export.fake_intake import FakeIntake
from tests.support.procs import wait_for

LATENCY = MetricSpec("mlwarden.test.probe.latency", Kind.DISTRIBUTION, "seconds",
                     "One probe's latency (a test metric)", "test", ("model",))
CATALOG = Catalog([*load_catalog(), LATENCY])
OBSERVATIONS = [0.011, 0.012, 0.250, 0.013, 0.9]


def probes(now: float) -> list[CheckResult]:
    """Five probes of one model, two seconds apart-ish: every observation matters to a p99."""
    tags = make_tags({"check": "ranker", "model": "ranker"})
    return [CheckResult("ranker", "test", Status.OK, started=now + i // 3, samples=[
        Sample(LATENCY.name, v, tags, now + i // 3, Kind.DISTRIBUTION)]) for i, v in enumerate(OBSERVATIONS)]


@pytest.fixture
def engine(tmp_path):
    eng = make_engine(f"sqlite:///{tmp_path}/history.db")
    create_schema(eng)
    yield eng
    eng.dispose()


# -- the environment over the file, each key once ------------------------------------------------
@pytest.mark.parametrize("environ,sample,expected", [
    # DD_ENV over the file's env (agent.tags or a check's tags)
    ({"DD_ENV": "staging"}, {"env": "dev", "model": "m"}, {"env": "staging", "model": "m"}),
    # DD_ENV over DD_TAGS' env; DD_TAGS adds what the sample lacks
    ({"DD_ENV": "prod", "DD_TAGS": "env:qa team:ml"}, {"model": "m"},
     {"env": "prod", "team": "ml", "model": "m"}),
    # DD_TAGS' env when DD_ENV is unset
    ({"DD_TAGS": "env:qa,service:x"}, {"env": "dev"}, {"env": "qa", "service": "x"}),
    # DD_TAGS over agent.tags (the file's global tags: `cluster` is one here) ...
    ({"DD_TAGS": "cluster:eu-1"}, {"cluster": "us-1"}, {"cluster": "eu-1"}),
    # ... but never over a check's own tag (`node` is not in agent.tags)
    ({"DD_TAGS": "node:from-env"}, {"node": "gpu-7"}, {"node": "gpu-7"}),
    # DATADOG_TAGS (the DogStatsD client's variable) below DD_TAGS
    ({"DATADOG_TAGS": "team:a,region:x", "DD_TAGS": "team:b"}, {}, {"team": "b", "region": "x"}),
    # no environment: the sample as it is
    ({}, {"env": "dev"}, {"env": "dev"}),
])
def test_environment_overrides_the_file_once_per_key(environ, sample, expected):
    unified = UnifiedTags(environ, file_keys=("env", "cluster"))
    assert dict(unified.apply(make_tags(sample))) == expected


def test_dd_tags_are_read_the_way_datadog_reads_them():
    assert parse_dd_tags("env:prod team:ml,canary  region:eu-west-1") == [
        ("env", "prod"), ("team", "ml"), ("canary", ""), ("region", "eu-west-1")]


# -- distributions ---------------------------------------------------------------------------------
async def test_dogstatsd_sends_every_observation_as_a_distribution():
    with DogStatsdListener() as listener:
        exporter = DogStatsdExporter(DatadogConfig(host="127.0.0.1", port=listener.port),
                                     catalog=CATALOG, environ={"DD_ENV": "staging"})
        for result in probes(time.time()):
            exporter.consume(result)
        exporter.flush()
        wait_for(lambda: len(listener.ours()) >= 5, 5, 0.05, "five observations")
        await exporter.stop()
    assert listener.problems == []
    lines = [m for m in listener.ours() if m.name == LATENCY.name]
    assert [(m.type, m.value) for m in lines] == [("d", v) for v in OBSERVATIONS]
    assert set(lines[0].tags) == {"check:ranker", "model:ranker", "env:staging"}


async def test_api_sends_distribution_points_grouped_by_second(engine):
    with FakeIntake() as intake:
        exporter = DatadogApiExporter(DatadogConfig(mode="api", api_key=intake.api_key,
                                                    api_url=intake.url), engine, hostname="node-1",
                                      catalog=CATALOG, environ={})
        exporter._configure_client()
        now = float(int(time.time()))
        for result in probes(now):
            exporter.consume(result)
        exporter.cycle(time.time(), exporter._take())
        assert intake.problems == []
        points = list(intake.distributions)
        payloads = list(intake.distribution_payloads)
    assert points == [(LATENCY.name, ("check:ranker", "model:ranker"), int(now), OBSERVATIONS[:3]),
                      (LATENCY.name, ("check:ranker", "model:ranker"), int(now) + 1, OBSERVATIONS[3:])]
    assert len(payloads) == 1 and payloads[0]["series"][0]["host"] == "node-1"


# -- service checks: one request per flush ------------------------------------------------------------
def test_service_checks_of_a_flush_go_in_one_request(engine):
    """The issue's case: 4 check instances, several flushes: one check_run call per flush
    (it was one per check)."""
    with FakeIntake() as intake:
        exporter = DatadogApiExporter(DatadogConfig(mode="api", api_key=intake.api_key,
                                                    api_url=intake.url), engine, hostname="node-1",
                                      environ={})
        exporter._configure_client()
        now = time.time()
        for flush in range(5):
            for name in ("ranker", "scorer", "airflow", "gpus"):
                exporter.consume(CheckResult(name, "model_endpoint", Status.WARNING if flush else Status.OK,
                                             message=f"run {flush}", started=now + flush))
            exporter.cycle(now + flush, exporter._take())
        assert intake.problems == []
        assert intake.requests_to("/api/v1/check_run") == 5
        assert len(intake.checks) == 20
        assert {c["check"] for c in intake.checks} == {"mlwarden.model_endpoint.status"}


def test_checks_queued_one_per_row_by_an_older_agent_are_still_sent(engine):
    with FakeIntake() as intake:
        exporter = DatadogApiExporter(DatadogConfig(mode="api", api_key=intake.api_key,
                                                    api_url=intake.url), engine, hostname="node-1",
                                      environ={})
        exporter._configure_client()
        now = time.time()
        old = {"check": "mlwarden.agent.status", "host_name": "node-1", "status": 0,
               "timestamp": round(now), "tags": ["check:agent"]}
        Outbox(engine).enqueue("datadog_check", intake.url, old, now=now)  # the former shape
        exporter.cycle(now)
        assert intake.problems == [] and intake.checks == [old]


# -- the package's own log ------------------------------------------------------------------------
async def test_the_datadog_packages_request_log_stays_out_at_info(engine, caplog):
    caplog.set_level(logging.INFO)
    logging.getLogger("datadog.api").setLevel(logging.NOTSET)
    with FakeIntake() as intake:
        exporter = DatadogApiExporter(DatadogConfig(mode="api", api_key=intake.api_key,
                                                    api_url=intake.url, flush_interval=0.1),
                                      engine, hostname="node-1", environ={})
        await exporter.start()
        exporter.consume(CheckResult("a", "agent", Status.OK, started=time.time()))
        for _ in range(100):  # the exporter's task runs on this loop: wait without blocking it
            if intake.checks:
                break
            await asyncio.sleep(0.05)
        await exporter.stop()
        assert intake.checks
    assert not [r for r in caplog.records if r.name.startswith("datadog")]
    assert any(r.name == "agent.export.datadog_api" for r in caplog.records)  # ours still log


# -- metric metadata --------------------------------------------------------------------------------
def metadata_exporter(engine, intake, catalog=CATALOG, **over) -> DatadogApiExporter:
    config = DatadogConfig(mode="api", api_key=intake.api_key, api_url=intake.url,
                           send_metadata=True, app_key=over.pop("app_key", intake.app_key), **over)
    exporter = DatadogApiExporter(config, engine, hostname="node-1", catalog=catalog, environ={})
    exporter._configure_client()
    return exporter


def test_metadata_is_set_once_per_metric_and_again_when_the_catalog_changes(engine):
    with FakeIntake() as intake:
        exporter = metadata_exporter(engine, intake)
        for result in probes(time.time()):
            exporter.consume(result)
        exporter.consume(CheckResult("a", "agent", Status.OK, started=time.time(), samples=[
            Sample("mlwarden.gpu.idle.cost_rate", 4.1, make_tags({"check": "a"}), time.time()),
            Sample("mlwarden.check.runs", 1, make_tags({"check": "a"}), time.time(), Kind.COUNT)]))
        exporter.cycle(time.time(), exporter._take())
        assert intake.metadata == {
            LATENCY.name: [{"type": "distribution", "description": LATENCY.description, "unit": "second"}],
            "mlwarden.gpu.idle.cost_rate": [{"type": "gauge", "unit": "dollar", "per_unit": "hour",
                                             "description": "Price per hour of an idle GPU (0 when busy)"}],
            "mlwarden.check.runs": [{"type": "count", "description": "Completed runs of a check instance"}],
        }
        # a restart on the same store: nothing is sent again
        again = metadata_exporter(engine, intake)
        for result in probes(time.time()):
            again.consume(result)
        again.cycle(time.time(), again._take())
        assert len(intake.metadata[LATENCY.name]) == 1
        # a release that changes the description sends the new body, once
        changed = MetricSpec(LATENCY.name, Kind.DISTRIBUTION, "seconds", "A new description",
                             "test", ("model",))
        newer = metadata_exporter(engine, intake, Catalog([*load_catalog(), changed]))
        for result in probes(time.time()) + probes(time.time()):
            newer.consume(result)
        newer.cycle(time.time(), newer._take())
        assert [b["description"] for b in intake.metadata[LATENCY.name]] == [
            LATENCY.description, "A new description"]
        assert intake.problems == []


def test_a_refused_application_key_stops_only_the_metadata_lane(engine, caplog):
    caplog.set_level(logging.ERROR, logger="agent.export.datadog_api")
    with FakeIntake() as intake:
        exporter = metadata_exporter(engine, intake, app_key="not-the-application-key-0000000000000000")
        for result in probes(time.time()):
            exporter.consume(result)
        exporter.cycle(time.time(), exporter._take())
        status = exporter.status()
        assert intake.distributions and intake.metadata == {}
    assert status["lanes"]["datadog_metadata"]["rejected"] is True
    assert status["lanes"]["datadog_distribution"]["rejected"] is False
    assert "app_key" in status["lanes"]["datadog_metadata"]["last_error"]
    assert "not-the-application-key" not in caplog.text
    assert Outbox(engine).pending_count(METADATA_KIND) == 1  # sent once the key is fixed
