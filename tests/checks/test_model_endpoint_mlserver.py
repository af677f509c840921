"""The model_endpoint (protocol v2) and openmetrics checks against a real MLServer 1.7.1.

MLServer runs from its own virtualenv (tests/peers/install-mlserver.sh) on loopback,
serving a scikit-learn iris model that this module trains at test time.
"""

from __future__ import annotations

import json
import textwrap

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


# last in the module: it stops the shared server
async def test_ready_version_canary_then_refused_after_stop(mlserver, catalog_check):
    proc, url, _ = mlserver
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

        proc.stop()
        down = await check.run()
        assert down.status == Status.CRITICAL, down.message
        [err] = _values(down, "mlwarden.endpoint.errors")
        assert err.tag("error_kind") == "refused" and err.tag("probe") == "health"
        assert [s.value for s in _values(down, "mlwarden.endpoint.up")] == [0.0]
        assert "refused" in down.message and MODEL in down.message
        catalog_check(down)
    finally:
        await ctx.close()
