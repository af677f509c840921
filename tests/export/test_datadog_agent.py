"""Datadog as users run it: ``mlwarden init``'s starter config, Datadog's own environment
variables, a real ``mlwarden run``, read back on the wire.

Only what cannot be shared with other processes on this machine is changed in the starter
(its history file, its listen port, its checks' intervals); its tags are used verbatim. The
environment is a pod's: ``DD_ENV``/``DD_SERVICE``/``DD_VERSION`` (Datadog's unified service
tagging), ``DD_TAGS`` (which also tries to set env, and loses to ``DD_ENV``) and the
DogStatsD destination. Checks: the starter's self-check, a model server that answers but
whose model is unloaded (a service check CRITICAL and a "model not ready" event), and in
DogStatsD mode an
``openmetrics`` scrape of 10 x N tag combinations against a budget of N custom metrics,
with the agent's shipped rule pack loaded.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from aiohttp import web

from tests.dashboards.live_targets import ThreadedTargets
from tests.export.agent_proc import MLWARDEN
from tests.export.dogstatsd_listener import DogStatsdListener
from tests.export.fake_intake import FakeIntake
from tests.support.procs import Proc, free_port, http_get, wait_for, wait_http
from tests.support.targets import Target

pytestmark = [pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]
RULE_PACK = REPO / "agent" / "data" / "rules" / "agent.yaml"
N = 100  # the custom-metrics budget
ENV = {"DD_ENV": "staging", "DD_SERVICE": "ml-platform", "DD_VERSION": "1.4.2",
       "DD_TAGS": "team:ml-platform env:from-dd-tags"}
UNIFIED = {"env": "staging", "service": "ml-platform", "version": "1.4.2", "team": "ml-platform"}


def starter_config(tmp: Path, port: int, datadog: dict, checks: list[dict], **top: object) -> Path:
    """`mlwarden init`'s file with the machine-specific parts changed and checks added."""
    path = tmp / "mlwarden.yaml"
    subprocess.run([str(MLWARDEN), "init", str(path)], check=True, capture_output=True)
    doc = yaml.safe_load(path.read_text())
    assert doc["agent"]["tags"] == {"env": "${DD_ENV:-dev}"}  # verbatim: the starter's tags
    doc["agent"].update(history=f"sqlite:///{tmp}/history.db", listen=f"127.0.0.1:{port}",
                        self_check_interval="1s", log_format="text")
    doc["exporters"]["datadog"] = datadog
    for check in doc["checks"]:
        check["interval"] = "1s"
    doc["checks"] += checks
    doc.update(top)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def run_agent(tmp: Path, config: Path, port: int, env: dict[str, str]) -> Proc:
    proc = Proc("mlwarden-datadog", [MLWARDEN, "run", "--config", config],
                env={**ENV, **env}, log_dir=tmp).start()
    wait_http(f"http://127.0.0.1:{port}/healthz", timeout=30, proc=proc)
    return proc


def unloaded_target() -> Target:
    """An Open Inference (V2) server that is up but no longer serves ``ranker``, as MLServer
    answers after an unload: the model's ready route is 404 with the server's reason."""
    async def ok(request: web.Request) -> web.Response:
        return web.json_response({})

    async def server(request: web.Request) -> web.Response:
        return web.json_response({"name": "mlserver", "version": "1.7.1", "extensions": []})

    async def gone(request: web.Request) -> web.Response:
        return web.json_response({"error": "Model ranker not found"}, status=404)

    return Target({("GET", "/v2/health/live"): ok, ("GET", "/v2/health/ready"): ok,
                   ("GET", "/v2"): server, ("GET", "/v2/models/ranker/ready"): gone})


def unloaded_endpoint(url: str) -> dict:
    return {"type": "model_endpoint", "name": "ranker", "url": url,
            "protocol": "v2", "model": "ranker", "interval": "1s", "request_timeout": "1s"}


def assert_unified_once(tags: tuple[str, ...] | list[str], what: str) -> None:
    """env/service/version (and DD_TAGS' team) exactly once, with the environment's values."""
    for key, value in UNIFIED.items():
        found = [t for t in tags if t.split(":", 1)[0] == key]
        assert found == [f"{key}:{value}"], f"{what}: {key} tags {found} in {tags}"
    names = [t.split(":", 1)[0] for t in tags]
    assert len(names) == len(set(names)), f"{what}: a tag key twice in {tags}"


def flood_target() -> Target:
    """A Prometheus text endpoint with 10 x N series: demo_requests by 10 pods x 10 routes
    (pod is a cardinality tag the budget may drop) and 900 demo_sessions (nothing to drop)."""
    lines = ["# TYPE demo_requests_total counter"]
    lines += [f'demo_requests_total{{pod="pod-{p}",route="r{r}"}} {p + r}'
              for p in range(10) for r in range(10)]
    lines += ["# TYPE demo_sessions gauge"]
    lines += [f'demo_sessions{{session="s{s}"}} 1' for s in range(10 * N - 100)]
    text = "\n".join(lines) + "\n"

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(text=text, content_type="text/plain")
    return Target({("GET", "/metrics"): metrics})


def test_dogstatsd_starter_config_unified_tags_and_the_budget_under_ten_times_n(tmp_path):
    port = free_port()
    with DogStatsdListener() as listener, ThreadedTargets(flood=flood_target,
                                                          ranker=unloaded_target) as targets:
        config = starter_config(
            tmp_path, port,
            {"mode": "dogstatsd", "custom_metrics_budget": N, "cardinality_tags": ["pod"]},
            [unloaded_endpoint(targets["ranker"].url),
             {"type": "openmetrics", "name": "flood", "url": targets["flood"].url + "/metrics",
              "interval": "1s", "metrics": [{"regex": "demo_.*"}]}],
            rule_files=[str(RULE_PACK)], rules_engine={"evaluation_interval": "1s"})
        agent = run_agent(tmp_path, config, port, {"DD_AGENT_HOST": "127.0.0.1",
                                                   "DD_DOGSTATSD_PORT": str(listener.port)})
        base = f"http://127.0.0.1:{port}"
        try:
            def datadog() -> dict:
                return json.loads(http_get(base + "/status")[1])["components"]["datadog"]

            def decided() -> set[str]:
                return {d["action"] for d in datadog()["custom_metrics"]["decisions"]}

            # demo_requests is a counter: its first scrape only seeds it, the second is sent
            wait_for(lambda: decided() == {"hold_back", "drop_tag"} and listener.snapshot_events()
                     and len(listener.checks) >= 3, 30, 0.3,
                     "both budget decisions, an event and service checks")
            wire = {(m.name, m.tags) for m in listener.ours()}
            status = datadog()
            wait_for(lambda: b"DatadogCustomMetricsBudgetLimiting" in subprocess.run(
                [str(MLWARDEN), "alerts", "list", "--state", "firing", "--config", str(config)],
                capture_output=True).stdout, 20, 0.5, "the rule pack's budget alert to fire")
            cli = subprocess.run([str(MLWARDEN), "status", "--url", base], capture_output=True,
                                 text=True, check=True).stdout
            exposition = http_get(base + "/metrics")[1].decode()
        finally:
            agent.stop()
    assert listener.problems == []
    # every metric line, service check and event: env/service/version once, the environment's
    metrics, checks = listener.snapshot()
    for m in metrics:
        if m.name.startswith("mlwarden."):
            assert_unified_once(m.tags, m.name)
    for c in checks:
        assert_unified_once(c.tags, c.name)
    events = listener.snapshot_events()
    for e in events:
        assert_unified_once(e.tags, e.title)
    assert any(e.title.startswith("Model not ready: ranker") and e.alert_type == "warning"
               and "Model ranker not found" in e.text for e in events), events  # the server's why
    assert any(c.name == "mlwarden.model_endpoint.status" and c.status == 2 for c in checks)
    # the budget held, and says so everywhere a user looks
    cm = status["custom_metrics"]
    assert cm["budget"] == N and cm["active"] <= N
    assert len(wire) <= cm["count"] <= N + cm["retired_by_decisions"], (len(wire), cm)
    assert cm["tags_dropped"] == {"mlwarden.openmetrics.demo_requests": ["pod"]}, json.dumps(cm)
    assert "mlwarden.openmetrics.demo_requests" not in cm["held_back_points"]  # merged, kept
    held = [d["metric"] for d in cm["decisions"] if d["action"] == "hold_back"]
    assert "mlwarden.openmetrics.demo_sessions" in held
    assert status["dropped_points"]["over_budget"] > 0
    assert f"of a budget of {N}" in cli
    assert "decision: dropped tag `pod` from mlwarden.openmetrics.demo_requests" in cli
    assert "decision: holding back new series of mlwarden.openmetrics.demo_sessions" in cli
    assert 'mlwarden_exporter_custom_metrics{' in exposition
    assert 'metric="mlwarden.openmetrics.demo_sessions"' in exposition
    assert 'decision="hold_back"' in exposition
    # the starter reads DD_ENV too, so Prometheus and Datadog agree on env
    assert 'env="staging"' in exposition and 'env="dev"' not in exposition


def test_api_starter_config_unified_tags_batched_checks_and_a_quiet_log(tmp_path):
    port = free_port()
    flush = 0.5
    with FakeIntake() as intake, ThreadedTargets(ranker=unloaded_target) as targets:
        config = starter_config(tmp_path, port, {"mode": "api", "api_url": intake.url,
                                                 "flush_interval": f"{flush}s"},
                                [unloaded_endpoint(targets["ranker"].url)])
        agent = run_agent(tmp_path, config, port, {"DD_API_KEY": intake.api_key})
        try:
            wait_for(lambda: intake.events and len(intake.checks) >= 6 and intake.points, 30, 0.3,
                     "series, service checks and an event")
            started = time.monotonic()
            before = intake.requests_to("/api/v1/check_run")
            time.sleep(3)
            rounds = (time.monotonic() - started) / flush
            during = intake.requests_to("/api/v1/check_run") - before
        finally:
            agent.stop()
        assert intake.problems == []
        series = [s for p in intake.series_payloads for s in p["series"]]
        checks, events = list(intake.checks), list(intake.events)
    for s in series:
        assert_unified_once(s["tags"], s["metric"])
    for c in checks:
        assert_unified_once(c["tags"], c["check"])
    for e in events:
        assert_unified_once(e["tags"], e["title"])
    assert {c["check"] for c in checks} >= {"mlwarden.agent.status", "mlwarden.model_endpoint.status"}
    # at most one check_run request per flush, however many checks ran in it
    assert 1 <= during <= rounds + 1, (during, rounds)
    log = (tmp_path / "mlwarden-datadog.log").read_text()
    # the datadog package's per-request INFO lines stay out of the agent's log
    assert "/api/v1/check_run" not in log and "/api/v2/series" not in log, log[-2000:]
