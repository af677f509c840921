"""model_endpoint against strict fakes of the servers that cannot run here.

Why fakes: TorchServe needs Java and a model archive, TF Serving is not on PyPI, KServe's
V1 server needs its Kubernetes-oriented stack and MLflow's scoring server pulls a large
dependency tree; MLServer (V2) is tested for real in test_model_endpoint_mlserver.py.
Each fake answers only the routes and shapes its project documents (TorchServe
management_api.md / inference_api.md / token_authorization_api.md, TF Serving's
api_rest.md, KServe's V1 protocol page, MLflow's scoring-server docs), checks what the
agent sends (auth headers, JSON bodies) and fails the test on any other route (Target).
"""

from __future__ import annotations

import logging

import pytest
from aiohttp import web

from agent.check import CheckContext
from agent.config import parse_config
from agent.samples import Status
from checks.model_endpoint.check import ModelEndpointCheck
from tests.support.targets import Target, canned, json_response, load_fixture

pytestmark = pytest.mark.unit


@pytest.fixture
async def ctx():
    context = CheckContext()
    yield context
    await context.close()


def make(ctx: CheckContext, **cfg) -> ModelEndpointCheck:
    cfg.setdefault("name", "probe")
    return ModelEndpointCheck(ModelEndpointCheck.Config(type="model_endpoint", **cfg), ctx)


def samples(result, metric):
    return [s for s in result.samples if s.metric == metric]


def value(result, metric):
    [s] = samples(result, metric)
    return s.value


# -- TorchServe ---------------------------------------------------------------------
INFERENCE_KEY, MANAGEMENT_KEY = "inf-Key-4f1c2a", "mgmt-Key-9b7e3d"
INVALID_KEY = {"code": 400, "type": "InvalidKeyException",
               "message": "Token Authorization failed. Token either incorrect, expired, or not "
                          "provided correctly"}


def torchserve_description(model: str, version: str, statuses: list[str]) -> list[dict]:
    """The management API's `GET /models/{name}` answer (management_api.md, Describe model)."""
    return [{
        "modelName": model, "modelVersion": version, "modelUrl": f"{model}.mar",
        "runtime": "python", "minWorkers": len(statuses), "maxWorkers": len(statuses),
        "batchSize": 1, "maxBatchDelay": 100, "loadedAtStartup": True,
        "workers": [{"id": str(9000 + i), "startTime": "2026-11-28T10:00:00.000Z",
                     "status": s, "memoryUsage": 89247744, "pid": 4000 + i, "gpu": False,
                     "gpuUsage": "N/A"} for i, s in enumerate(statuses)],
        "jobQueueStatus": {"remainingCapacity": 100, "pendingRequests": 0},
    }]


def keyed(key: str, handler):
    """TorchServe's token check: the right key or a 400 InvalidKeyException."""
    async def checked(request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {key}":
            return web.json_response(INVALID_KEY, status=400)
        return await handler(request)
    return checked


async def predictions(request: web.Request) -> web.Response:
    assert request.content_type == "application/json"
    body = await request.json()
    assert body == {"data": [[5.1, 3.5, 1.4, 0.2]]}
    return web.json_response({"prediction": "setosa", "score": 0.97})


def torchserve(statuses, healthy=True, version="2.0"):
    ping = json_response({"status": "Healthy" if healthy else "Unhealthy"},
                         status=200 if healthy else 500)
    inference = Target({("GET", "/ping"): ping,
                        ("POST", f"/predictions/ranker/{version}"):
                            keyed(INFERENCE_KEY, predictions)})
    management = Target({("GET", f"/models/ranker/{version}"): keyed(
        MANAGEMENT_KEY, json_response(torchserve_description("ranker", version, statuses)))})
    return inference, management


async def test_torchserve_ready_with_workers_and_canary(ctx, catalog_check):
    inference, management = torchserve(["READY", "READY"])
    async with inference, management:
        check = make(ctx, url=inference.url, protocol="torchserve", model="ranker", version="2.0",
                     management_url=management.url, bearer_token=INFERENCE_KEY,
                     management_token=MANAGEMENT_KEY,
                     canary={"request": {"data": [[5.1, 3.5, 1.4, 0.2]]},
                             "expect": [{"path": "prediction", "equals": "setosa"}]})
        result = await check.run()
    assert result.status == Status.OK, result.message
    assert result.message.startswith("model ranker 2.0: READY"), result.message
    assert value(result, "mlwarden.endpoint.workers") == 2
    assert value(result, "mlwarden.endpoint.workers.ready") == 2
    assert value(result, "mlwarden.endpoint.canary.success") == 1
    assert samples(result, "mlwarden.endpoint.model.info")[0].tag("version") == "2.0"
    assert ("POST", "/predictions/ranker/2.0") in inference.requests
    catalog_check(result)


async def test_torchserve_no_ready_worker_is_critical_in_words(ctx):
    inference, management = torchserve(["UNLOADING"])
    async with inference, management:
        result = await make(ctx, url=inference.url, protocol="torchserve", model="ranker",
                            version="2.0", management_url=management.url,
                            management_token=MANAGEMENT_KEY).run()
    assert result.status == Status.CRITICAL
    assert result.message.startswith("model ranker 2.0: UNLOADING"), result.message
    assert value(result, "mlwarden.endpoint.ready") == 0
    assert value(result, "mlwarden.endpoint.up") == 1


async def test_torchserve_unhealthy_ping(ctx):
    inference, management = torchserve(["READY"], healthy=False)
    async with inference, management:
        result = await make(ctx, url=inference.url, protocol="torchserve", model="ranker",
                            version="2.0", management_url=management.url,
                            management_token=MANAGEMENT_KEY).run()
    assert result.status == Status.CRITICAL
    assert result.message.startswith("model ranker 2.0: UNHEALTHY"), result.message


async def test_torchserve_wrong_key_names_the_option_never_the_secret(ctx, caplog):
    caplog.set_level(logging.DEBUG)
    inference, management = torchserve(["READY"])
    wrong = "wrong-Key-1234567"
    async with inference, management:
        config = parse_config(f"""
checks:
  - type: model_endpoint
    name: ts
    url: {inference.url}
    protocol: torchserve
    model: ranker
    version: "2.0"
    management_url: {management.url}
    management_token: {wrong}
""")
        check = ModelEndpointCheck(config.checks[0], ctx)
        result = await check.run()
    assert result.status == Status.CRITICAL
    assert "`management_token`" in result.message and "refused the key" in result.message
    [err] = samples(result, "mlwarden.endpoint.errors")
    assert err.tag("error_kind") == "http_4xx"
    everything = result.message + repr(result.warnings) + caplog.text + repr(config)
    assert wrong not in everything


# -- TF Serving ---------------------------------------------------------------------
def tf_status(**states: str) -> dict:
    """`GET /v1/models/{name}` (TF Serving api_rest.md, Model status API)."""
    return {"model_version_status": [
        {"version": v, "state": s,
         "status": {"error_code": "OK", "error_message": ""}} for v, s in states.items()]}


async def test_tfserving_newest_available_version(ctx, catalog_check):
    body = tf_status(**{"2": "AVAILABLE", "3": "LOADING", "1": "END"})
    async with Target({("GET", "/v1/models/ranker"): json_response(body)}) as t:
        result = await make(ctx, url=t.url, protocol="tfserving", model="ranker").run()
    assert result.status == Status.OK
    assert result.message.startswith("model ranker 2: AVAILABLE"), result.message
    assert value(result, "mlwarden.endpoint.versions_ready") == 1
    catalog_check(result)


async def test_tfserving_configured_version_loading(ctx):
    body = tf_status(**{"3": "LOADING"})
    async with Target({("GET", "/v1/models/ranker/versions/3"): json_response(body)}) as t:
        result = await make(ctx, url=t.url, protocol="tfserving", model="ranker", version="3").run()
    assert result.status == Status.CRITICAL
    assert result.message.startswith("model ranker 3: LOADING"), result.message
    assert value(result, "mlwarden.endpoint.http_status") == 200


async def test_tfserving_unknown_model(ctx):
    body = {"error": "Servable not found for request: Latest(ranker)"}
    async with Target({("GET", "/v1/models/ranker"): json_response(body, status=404)}) as t:
        result = await make(ctx, url=t.url, protocol="tfserving", model="ranker").run()
    assert result.status == Status.CRITICAL
    assert result.message.startswith(
        "model ranker: NOT FOUND: Servable not found for request: Latest(ranker)"), result.message


async def test_tfserving_status_without_versions_is_malformed(ctx):
    async with Target({("GET", "/v1/models/ranker"): json_response({"model": "x"})}) as t:
        result = await make(ctx, url=t.url, protocol="tfserving", model="ranker").run()
    assert result.status == Status.CRITICAL
    assert samples(result, "mlwarden.endpoint.errors")[0].tag("error_kind") == "malformed"
    assert "model_version_status" in result.message


# -- KServe V1 ----------------------------------------------------------------------
async def kserve_predict(request: web.Request) -> web.Response:
    body = await request.json()
    if not isinstance(body, dict) or not ({"instances", "inputs"} & body.keys()):
        return web.json_response({"error": "Expected \"instances\" or \"inputs\""}, status=400)
    return web.json_response({"predictions": [1 for _ in body.get("instances", [])]})


async def test_kserve_v1_ready_and_canary(ctx, catalog_check):
    routes = {("GET", "/v1/models/sk"): json_response({"name": "sk", "ready": True}),
              ("POST", "/v1/models/sk:predict"): kserve_predict}
    async with Target(routes) as t:
        result = await make(ctx, url=t.url, protocol="kserve-v1", model="sk",
                            canary={"request": {"instances": [[1, 2], [3, 4]]},
                                    "expect": [{"path": "predictions[1]", "equals": 1}]}).run()
    assert result.status == Status.OK, result.message
    assert value(result, "mlwarden.endpoint.canary.success") == 1
    catalog_check(result)


async def test_kserve_v1_503_is_not_ready(ctx):
    body = {"error": "Model with name sk is not ready."}
    async with Target({("GET", "/v1/models/sk"): json_response(body, status=503)}) as t:
        result = await make(ctx, url=t.url, protocol="kserve-v1", model="sk").run()
    assert result.status == Status.CRITICAL
    assert result.message.startswith("model sk: NOT READY"), result.message
    assert value(result, "mlwarden.endpoint.ready") == 0
    [ready] = samples(result, "mlwarden.endpoint.ready")
    assert ready.tag("reason") == "Model with name sk is not ready.", "the server's own words"
    assert not samples(result, "mlwarden.endpoint.errors"), "not ready is an answer, not an error"


async def test_kserve_v1_failed_canary_shape(ctx):
    routes = {("GET", "/v1/models/sk"): json_response({"name": "sk", "ready": True}),
              ("POST", "/v1/models/sk:predict"): kserve_predict}
    async with Target(routes) as t:
        result = await make(ctx, url=t.url, protocol="kserve-v1", model="sk",
                            canary={"request": {"rows": [[1, 2]]}}).run()
    assert result.status == Status.CRITICAL
    assert result.message.startswith("canary inference for model sk: http_4xx"), result.message
    assert value(result, "mlwarden.endpoint.canary.success") == 0
    assert value(result, "mlwarden.endpoint.ready") == 1


# -- MLflow -------------------------------------------------------------------------
async def mlflow_invocations(request: web.Request) -> web.Response:
    if request.content_type != "application/json":
        return web.json_response({"error_code": "BAD_REQUEST",
                                  "message": "Content-Type must be application/json"}, status=415)
    body = await request.json()
    keys = {"dataframe_split", "dataframe_records", "instances", "inputs"}
    if not isinstance(body, dict) or len(keys & body.keys()) != 1:
        return web.json_response({"error_code": "BAD_REQUEST",
                                  "message": f"The input must be a JSON dictionary with exactly "
                                             f"one of the input fields {keys}"}, status=400)
    return web.json_response({"predictions": [0]})


async def test_mlflow_ready_version_and_canary(ctx):
    routes = {("GET", "/ping"): canned("\n"), ("GET", "/version"): canned("2.17.2"),
              ("POST", "/invocations"): mlflow_invocations}
    async with Target(routes) as t:
        result = await make(ctx, url=t.url, protocol="mlflow",
                            canary={"request": {"dataframe_split": {"columns": ["a"],
                                                                    "data": [[1]]}}}).run()
    assert result.status == Status.OK, result.message
    assert "mlflow 2.17.2" in result.message
    assert value(result, "mlwarden.endpoint.canary.success") == 1


async def test_mlflow_404_ping_is_model_not_loaded(ctx):
    routes = {("GET", "/ping"): canned("", status=404), ("GET", "/version"): canned("2.17.2")}
    async with Target(routes) as t:
        result = await make(ctx, url=t.url, protocol="mlflow").run()
    assert result.status == Status.CRITICAL
    assert ": NOT LOADED: the scoring server has no model loaded" in result.message


# -- V2 from MLServer's captured answers -------------------------------------------
def v2_routes(ready_status: int, ready_body: bytes = b"", server_ready: int = 200) -> dict:
    return {
        ("GET", "/v2/health/live"): canned(""),
        ("GET", "/v2/health/ready"): canned("", status=server_ready),
        ("GET", "/v2"): json_response(load_fixture("mlserver", "server_metadata.json")),
        ("GET", "/v2/models/iris-sklearn/ready"): canned(ready_body, status=ready_status),
        ("GET", "/v2/models/iris-sklearn"):
            json_response(load_fixture("mlserver", "model_metadata.json")),
    }


async def test_v2_400_empty_body_means_not_ready(ctx):
    async with Target(v2_routes(400)) as t:
        result = await make(ctx, url=t.url, protocol="v2", model="iris-sklearn").run()
    assert result.status == Status.CRITICAL
    assert result.message.startswith("model iris-sklearn: NOT READY (mlserver 1.7.1"), \
        result.message


async def test_v2_server_not_ready(ctx):
    async with Target(v2_routes(400, server_ready=400)) as t:
        result = await make(ctx, url=t.url, protocol="v2", model="iris-sklearn").run()
    assert result.status == Status.CRITICAL
    assert result.message.startswith(
        "model iris-sklearn: NOT READY: the server says it is not ready"), result.message


async def test_v2_kserve_ready_false_body(ctx):
    routes = v2_routes(200, b'{"name": "iris-sklearn", "ready": false}')
    routes[("GET", "/v2/models/iris-sklearn/ready")] = json_response(
        {"name": "iris-sklearn", "ready": False})
    async with Target(routes) as t:
        result = await make(ctx, url=t.url, protocol="v2", model="iris-sklearn").run()
    assert result.status == Status.CRITICAL
    assert "NOT READY" in result.message


# -- plain HTTP ---------------------------------------------------------------------
async def test_http_expected_status_and_json_assertions(ctx, catalog_check):
    routes = {("GET", "/healthz"): json_response({"status": "ok", "model": {"version": "7"}})}
    async with Target(routes) as t:
        good = await make(ctx, url=t.url + "/healthz", protocol="http",
                          expect=[{"path": "model.version", "equals": "7"}]).run()
        bad = await make(ctx, name="p2", url=t.url + "/healthz", protocol="http",
                         expect=[{"path": "model.version", "equals": "8"},
                                 {"path": "status", "exists": False}]).run()
    assert good.status == Status.OK, good.message
    catalog_check(good)
    for sample in good.samples:  # no model configured, no platform: no empty tags
        assert all(v != "" for _, v in sample.tags), (sample.metric, sample.tags)
        assert "model" not in sample.tag_dict and "platform" not in sample.tag_dict
    assert bad.status == Status.CRITICAL
    assert "model.version is '7', expected '8'; status should be absent" in bad.message


async def test_a_failed_health_probe_reports_down_with_its_reason_and_no_readiness(ctx):
    async with Target({("GET", "/healthz"): canned("overloaded", status=503)}) as t:
        result = await make(ctx, url=t.url + "/healthz", protocol="http").run()
    assert result.status == Status.CRITICAL
    [up] = samples(result, "mlwarden.endpoint.up")
    assert up.value == 0 and up.tag("reason").startswith("http_5xx: "), up.tags
    assert "503" in up.tag("reason")
    assert not samples(result, "mlwarden.endpoint.ready"), "a down server is not 'not ready'"


async def test_http_unexpected_status(ctx):
    async with Target({("GET", "/"): canned("moved", status=204)}) as t:
        result = await make(ctx, url=t.url + "/", protocol="http", expected_status=[200]).run()
    assert result.status == Status.CRITICAL
    assert "answered HTTP 204, expected 200" in result.message


async def test_basic_auth_header_is_sent(ctx):
    async def needs_basic(request: web.Request) -> web.Response:
        assert request.headers.get("Authorization") == "Basic dXNlcjpzM2NyZXQtcHc="
        return web.Response(text="ok")
    async with Target({("GET", "/"): needs_basic}) as t:
        result = await make(ctx, url=t.url + "/", protocol="http", username="user",
                            password="s3cret-pw").run()
    assert result.status == Status.OK, result.message
