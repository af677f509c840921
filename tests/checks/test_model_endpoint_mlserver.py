"""The model_endpoint (protocol v2) and openmetrics checks against a real MLServer 1.7.1.

MLServer runs from its own virtualenv (tests/peers/install-mlserver.sh) on loopback,
serving a scikit-learn iris model that this module trains at test time.
"""

from __future__ import annotations

import json
import textwrap
import time
import urllib.request

import pytest

from agent.check import CheckContext
from agent.samples import Kind, Status
from checks.model_endpoint.check import ModelEndpointCheck
from checks.openmetrics.check import OpenMetricsCheck
from tests.support.procs import PEERS, Proc, free_port, require_peer, wait_http
from tests.support.targets import load_fixture

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODEL = "iris-sklearn"
TRAIN = textwrap.dedent("""
    import sys, joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    X, y = load_iris(return_X_y=True)
    joblib.dump(LogisticRegression(max_iter=500).fit(X, y), sys.argv[1])
""")


@pytest.fixture(scope="module")
def mlserver(tmp_path_factory):
    root = require_peer(PEERS / "mlserver" / "bin" / "mlserver",
                        "bash tests/peers/install-mlserver.sh").parent
    work = tmp_path_factory.mktemp("mlserver")
    model_dir = work / MODEL
    model_dir.mkdir()
    import subprocess

    subprocess.run([str(root / "python"), "-c", TRAIN, str(model_dir / "model.joblib")],
                   check=True, timeout=120)
    (model_dir / "model-settings.json").write_text(json.dumps({
        "name": MODEL, "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": "./model.joblib", "version": "v1"},
    }))
    http, grpc, metrics = free_port(), free_port(), free_port()
    (work / "settings.json").write_text(json.dumps({
        "host": "127.0.0.1", "http_port": http, "grpc_port": grpc, "metrics_port": metrics,
        "parallel_workers": 0, "debug": False,
    }))
    proc = Proc("mlserver", [root / "mlserver", "start", str(work)], cwd=work, log_dir=work)
    proc.start()
    try:
        wait_http(f"http://127.0.0.1:{http}/v2/models/{MODEL}/ready", timeout=90, proc=proc)
        yield proc, f"http://127.0.0.1:{http}", f"http://127.0.0.1:{metrics}/metrics"
    finally:
        proc.stop()


def _endpoint_check(url: str, ctx: CheckContext, **extra) -> ModelEndpointCheck:
    cfg = ModelEndpointCheck.Config(
        type="model_endpoint", name="iris", url=url, protocol="v2", model=MODEL,
        version="v1", request_timeout="3s",
        canary={"interval": "1h", "request": load_fixture("mlserver", "infer_request_body.json"),
                "expect": [{"path": "model_name", "equals": MODEL},
                           {"path": "outputs[0].shape", "equals": [3, 1]}]},
        **extra)
    return ModelEndpointCheck(cfg, ctx)


def _values(result, metric):
    return [s for s in result.samples if s.metric == metric]


async def test_unknown_model_is_reported_not_found(mlserver):
    proc, url, _ = mlserver
    if proc.poll() is not None:
        pytest.fail("MLServer was stopped by an earlier test; module order changed")
    ctx = CheckContext()
    try:
        cfg = ModelEndpointCheck.Config(type="model_endpoint", name="ghost", url=url,
                                        protocol="v2", model="no-such-model")
        result = await ModelEndpointCheck(cfg, ctx).run()
        assert result.status == Status.CRITICAL
        assert result.message.startswith(
            "model no-such-model: NOT FOUND: Model no-such-model not found"), result.message
    finally:
        await ctx.close()


async def test_openmetrics_scrapes_mlserver(mlserver):
    proc, _, metrics_url = mlserver
    if proc.poll() is not None:
        pytest.fail("MLServer was stopped by an earlier test; module order changed")
    ctx = CheckContext()
    try:
        cfg = OpenMetricsCheck.Config(
            type="openmetrics", name="mlserver-metrics", url=metrics_url,
            metrics=[{"name": "rest_server_requests_total", "rename": "mlserver.rest_requests"},
                     {"regex": "process_(resident|virtual)_memory_bytes"}],
            label_map={"method": "http_method"})
        result = await OpenMetricsCheck(cfg, ctx).run()
        assert result.status == Status.OK, result.message
        names = {s.metric for s in result.samples}
        assert {"mlwarden.openmetrics.mlserver.rest_requests",
                "mlwarden.openmetrics.process_resident_memory_bytes",
                "mlwarden.openmetrics.process_virtual_memory_bytes",
                "mlwarden.openmetrics.up"} <= names
        rest = _values(result, "mlwarden.openmetrics.mlserver.rest_requests")
        assert rest and all(s.tag("http_method") for s in rest)
    finally:
        await ctx.close()


async def test_ready_version_and_canary(mlserver, catalog_check):
    proc, url, _ = mlserver
    if proc.poll() is not None:
        pytest.fail("MLServer was stopped by an earlier test; module order changed")
    ctx = CheckContext()
    try:
        check = _endpoint_check(url, ctx)
        result = await check.run()
        assert result.status == Status.OK, result.message
        assert result.message.startswith(f"model {MODEL} v1: READY (mlserver 1.7.1"), result.message
        catalog_check(result)
        [up] = _values(result, "mlwarden.endpoint.up")
        [ready] = _values(result, "mlwarden.endpoint.ready")
        [info] = _values(result, "mlwarden.endpoint.model.info")
        [canary] = _values(result, "mlwarden.endpoint.canary.success")
        assert (up.value, ready.value, canary.value) == (1.0, 1.0, 1.0)
        assert info.tag("version") == "v1" and info.tag("server") == "mlserver 1.7.1"
        assert up.tag_dict | {"model": MODEL, "protocol": "v2", "endpoint": url,
                              "check": "iris"} == up.tag_dict
        assert _values(result, "mlwarden.endpoint.latency.connect"), "a first probe connects"
        [probe] = _values(result, "mlwarden.endpoint.latency")
        assert probe.kind is Kind.DISTRIBUTION and 0 < probe.value < 3
        [lat] = _values(result, "mlwarden.endpoint.canary.latency")
        assert 0 < lat.value < 3
    finally:
        await ctx.close()


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def _post(url: str) -> int:
    req = urllib.request.Request(url, data=b"{}", method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - loopback
        return resp.status


# last in the module: it stops the shared server
async def test_unload_says_why_and_a_stopped_server_is_only_down(mlserver, tmp_path,
                                                                 catalog_check):
    """The shipped endpoint rules, verbatim, over what the real MLServer answers on a
    simulated clock (their `for:` is minutes): unloading the model fires EndpointNotReady
    with the server's own reason in the Slack message; stopping the server fires
    EndpointDown and never EndpointNotReady ("up but not ready"): Slack gets only "down"."""
    from agent.alerting.config import AlertingConfig
    from agent.alerting.dispatch import Dispatcher
    from agent.rules.engine import RulesEngine
    from agent.rules.files import load_rule_file
    from tests.alerting.helpers import store
    from tests.notify.fake_slack import TOKEN, FakeSlack
    from tests.support.procs import REPO, http_get

    proc, url, _ = mlserver
    if proc.poll() is not None:
        pytest.fail("MLServer was stopped by an earlier test; module order changed")
    problems: list[str] = []
    rules = load_rule_file(REPO / "agent" / "data" / "rules" / "endpoints.yaml", problems)
    assert not problems, problems
    clock = Clock()
    slack = await FakeSlack().start()
    slack.ts_base = int(clock.now)
    alerting = Dispatcher(AlertingConfig.model_validate({
        "slack": {"token": TOKEN, "base_url": slack.base_url, "charts": False},
        "group_wait": 0, "group_interval": 10,
        # as the builtin:endpoints pack recommends: failed probes of a down server are
        # the outage itself
        "inhibit_rules": [{"source_match": {"alertname": "EndpointDown"},
                           "target_match": {"alertname": "EndpointErrors"},
                           "equal": ["check"]}]}), store(tmp_path), clock=clock)
    engine = RulesEngine(rules, sinks=[alerting], clock=clock)
    ctx = CheckContext(clock=clock)
    cfg = ModelEndpointCheck.Config(type="model_endpoint", name="iris", url=url, protocol="v2",
                                    model=MODEL, request_timeout="3s")
    check = ModelEndpointCheck(cfg, ctx)
    seen: list[tuple[str, str]] = []  # (rule, state) of every change the engine reported

    class Seen:
        def alerts_changed(self, events, now):
            seen.extend((e.alert.rule, e.state.value) for e in events)

    engine.sinks.append(Seen())

    async def run_for(seconds: float):
        end, last = clock.now + seconds, None
        while clock.now < end:
            last = await check.run()
            await engine.consume(last)
            await alerting.tick(clock.now)
            clock.now += 10
        return last

    await engine.start()
    try:
        ready = await run_for(60)
        assert ready.status == Status.OK, ready.message

        assert _post(f"{url}/v2/repository/models/{MODEL}/unload") == 200
        _, body = http_get(f"{url}/v2/models/{MODEL}/ready")
        said = json.loads(body)["error"]  # the server's own words: "Model iris-sklearn not found"
        unloaded = await run_for(6 * 60 + 30)
        assert unloaded.status == Status.CRITICAL
        [why] = _values(unloaded, "mlwarden.endpoint.ready")
        assert why.value == 0 and why.tag("reason") == said
        catalog_check(unloaded)
        assert ("EndpointNotReady", "firing") in seen and ("EndpointDown", "firing") not in seen

        assert _post(f"{url}/v2/repository/models/{MODEL}/load") == 200
        wait_http(f"{url}/v2/models/{MODEL}/ready", timeout=30, proc=proc)
        await run_for(60)
        assert ("EndpointNotReady", "resolved") in seen
        before_stop = len(seen)

        proc.stop()
        down = await run_for(3 * 60)
        assert down.status == Status.CRITICAL, down.message
        [err] = _values(down, "mlwarden.endpoint.errors")
        assert err.tag("error_kind") == "refused" and err.tag("probe") == "health"
        [up] = _values(down, "mlwarden.endpoint.up")
        assert up.value == 0 and up.tag("reason").startswith("refused: ")
        assert not _values(down, "mlwarden.endpoint.ready"), "down is down, not 'not ready'"
        assert "refused" in down.message and MODEL in down.message
        catalog_check(down)
        after_stop = seen[before_stop:]
        assert ("EndpointDown", "firing") in after_stop, after_stop
        assert all(rule != "EndpointNotReady" for rule, _ in after_stop), after_stop
        assert all(a.rule != "EndpointNotReady" for a in engine.evaluator.alerts()
                   if a.state.value in ("pending", "firing"))
        for _ in range(3):
            await alerting.tick(clock.now)
            clock.now += 1
    finally:
        await engine.stop()
        await alerting.stop()
        await ctx.close()
        await slack.stop()
    top = [m.text for m in slack.top_level()]
    assert len(top) == 2, "\n".join(top)
    assert top[0].startswith("[FIRING:1] EndpointNotReady: iris is up but not ready to serve "
                             f"for 5m: {said}"), top[0]
    assert top[1].startswith("[FIRING:1] EndpointDown: iris is down: refused: "), top[1]
    assert not slack.refused, slack.refused
