"""Faults: what the check reports when the target times out, refuses, errs, lies or floods.

Targets are local aiohttp servers whose handlers misbehave on purpose; nothing is faked
on the client side.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import subprocess

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from agent.check import CheckContext
from agent.httptrace import Phases
from agent.samples import Kind, Status
from checks.model_endpoint.check import ModelEndpointCheck
from checks.model_endpoint.probe import ErrorKind, classify
from tests.support.procs import free_port
from tests.support.targets import Target, canned

pytestmark = pytest.mark.unit


@pytest.fixture
async def ctx():
    context = CheckContext()
    yield context
    await context.close()


def make(ctx, **cfg) -> ModelEndpointCheck:
    cfg.setdefault("name", "faulty")
    cfg.setdefault("protocol", "http")
    return ModelEndpointCheck(ModelEndpointCheck.Config(type="model_endpoint", **cfg), ctx)


def error_kind(result) -> str:
    [err] = [s for s in result.samples if s.metric == "mlwarden.endpoint.errors"]
    return err.tag("error_kind")


def up(result) -> float:
    [s] = [s for s in result.samples if s.metric == "mlwarden.endpoint.up"]
    return s.value


async def hang(request: web.Request) -> web.Response:
    await asyncio.sleep(30)  # cancelled when the client gives up and the test server closes
    return web.Response(text="late")


async def test_timeout_is_unknown(ctx):
    async with Target({("GET", "/"): hang}) as t:
        result = await make(ctx, url=t.url + "/", request_timeout="300ms").run()
    assert result.status == Status.UNKNOWN
    assert error_kind(result) == "timeout" and up(result) == 0
    assert "no complete answer within 0.3s (before an answer started)" in result.message


async def test_refused_is_critical(ctx):
    port = free_port()
    result = await make(ctx, url=f"http://127.0.0.1:{port}/", request_timeout="2s").run()
    assert result.status == Status.CRITICAL
    assert error_kind(result) == "refused"
    assert f"cannot connect to 127.0.0.1:{port} (connection refused)" in result.message


async def test_500_is_critical_with_the_servers_words(ctx):
    async with Target({("GET", "/"): canned("Internal Server Error", status=500)}) as t:
        result = await make(ctx, url=t.url + "/").run()
    assert result.status == Status.CRITICAL
    assert error_kind(result) == "http_5xx"
    assert result.message.endswith("answered HTTP 500 (expected 200)")
    [status] = [s for s in result.samples if s.metric == "mlwarden.endpoint.http_status"]
    assert status.value == 500


async def test_invalid_json_is_malformed(ctx):
    body = '{"model_version_status": [{"version": "1", '  # cut short
    routes = {("GET", "/v1/models/m"): canned(body, content_type="application/json")}
    async with Target(routes) as t:
        result = await make(ctx, url=t.url, protocol="tfserving", model="m").run()
    assert result.status == Status.CRITICAL
    assert error_kind(result) == "malformed"
    assert "with a body that is not JSON" in result.message


async def test_100_mb_body_is_cut_off(ctx):
    sent = []

    async def flood(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()  # chunked: no Content-Length to refuse up front
        await resp.prepare(request)
        chunk = b"x" * 65536
        try:
            for _ in range(1600):  # 100 MiB at most
                await resp.write(chunk)
                sent.append(len(chunk))
        except (ConnectionError, RuntimeError):
            pass
        return resp

    async with Target({("GET", "/"): flood}) as t:
        result = await make(ctx, url=t.url + "/", max_body_bytes=1_000_000,
                            request_timeout="5s").run()
    assert result.status == Status.CRITICAL
    assert error_kind(result) == "malformed"
    assert "sent more than 1000000 bytes; cut off" in result.message
    assert sum(sent) < 100 * 2**20, "the client read the whole flood instead of cutting it off"


async def test_announced_huge_body_is_refused_before_reading(ctx):
    async def big(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Length": str(100 * 2**20)})
        await resp.prepare(request)
        await resp.write(b"{")
        return resp
    async with Target({("GET", "/"): big}) as t:
        result = await make(ctx, url=t.url + "/").run()
    assert error_kind(result) == "malformed"
    assert "announced a 104857600-byte answer" in result.message


async def test_slow_drip_body_hits_the_deadline(ctx):
    async def drip(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        try:
            for _ in range(300):
                await resp.write(b"x")
                await asyncio.sleep(0.1)
        except (ConnectionError, RuntimeError):
            pass
        return resp

    async with Target({("GET", "/"): drip}) as t:
        result = await make(ctx, url=t.url + "/", request_timeout="500ms").run()
    assert result.status == Status.UNKNOWN
    assert error_kind(result) == "timeout"
    assert "while the answer was still arriving" in result.message


async def test_a_hanging_endpoint_costs_only_its_own_timeout(ctx):
    order = []

    async def run(check):
        result = await check.run()
        order.append(check.name)
        return result

    routes = {("GET", "/hang"): hang, ("GET", "/ok"): canned("ok")}
    async with Target(routes) as t:
        slow = make(ctx, name="slow", url=t.url + "/hang", request_timeout="2s")
        fast = make(ctx, name="fast", url=t.url + "/ok", request_timeout="2s")
        slow_result, fast_result = await asyncio.gather(run(slow), run(fast))
    assert order == ["fast", "slow"]
    assert fast_result.status == Status.OK and slow_result.status == Status.UNKNOWN


async def test_each_probe_is_one_latency_observation(ctx):
    """Latency is a distribution: one observation per probe, no per-agent percentiles
    (exporters build histograms; rules aggregate the observations over their window)."""
    async with Target({("GET", "/"): canned("ok")}) as t:
        check = make(ctx, url=t.url + "/")
        results = [await check.run() for _ in range(3)]
    for result in results:
        [lat] = [s for s in result.samples if s.metric == "mlwarden.endpoint.latency"]
        assert lat.kind is Kind.DISTRIBUTION and 0 < lat.value < 2
        assert not [s for s in result.samples if s.metric.startswith("mlwarden.endpoint.latency.p")]


# -- TLS ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem")],
                   check=True, capture_output=True, timeout=60)
    return d / "cert.pem", d / "key.pem"


@pytest.fixture
async def tls_url(cert):
    app = web.Application()
    app.router.add_get("/", canned("ok"))
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(*map(str, cert))
    server = TestServer(app, host="127.0.0.1")
    await server.start_server(ssl=server_ctx)
    yield f"https://127.0.0.1:{server.port}/"
    await server.close()


async def test_tls_verification_is_on_by_default(ctx, tls_url):
    result = await make(ctx, url=tls_url).run()
    assert result.status == Status.CRITICAL
    assert error_kind(result) == "tls"
    assert "TLS handshake failed" in result.message


async def test_tls_with_ca_bundle_and_explicit_off(ctx, tls_url, cert):
    with_ca = await make(ctx, url=tls_url, ca_bundle=str(cert[0])).run()
    assert with_ca.status == Status.OK, with_ca.message
    off = await make(ctx, name="off", url=tls_url, tls_verify=False).run()
    assert off.status == Status.OK, off.message


async def test_unreadable_ca_bundle_is_unknown_and_names_the_file(ctx, tmp_path):
    missing = tmp_path / "nope.pem"
    result = await make(ctx, url="https://127.0.0.1:1/", ca_bundle=str(missing)).run()
    assert result.status == Status.UNKNOWN
    assert str(missing) in result.message and "bad config" in result.message


# -- classification of what cannot be provoked on loopback ---------------------------
def test_dns_failure_is_unknown():
    from aiohttp.client_reqrep import ConnectionKey

    key = ConnectionKey("model.invalid", 80, False, True, None, None, None)
    exc = aiohttp.ClientConnectorDNSError(key, socket.gaierror(-2, "Name or service not known"))
    failure = classify(exc, "GET http://model.invalid/", 2.0, Phases())
    assert failure.kind is ErrorKind.DNS and failure.status == Status.UNKNOWN
    assert "cannot resolve 'model.invalid'" in str(failure)


def test_server_disconnect_is_malformed():
    failure = classify(aiohttp.ServerDisconnectedError(), "GET /", 2.0, Phases())
    assert failure.kind is ErrorKind.MALFORMED and failure.status == Status.CRITICAL


async def test_disconnect_mid_answer(ctx):
    async def cut(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Length": "1000"})
        await resp.prepare(request)
        await resp.write(b"{}")
        request.transport.close()
        return resp
    async with Target({("GET", "/"): cut}) as t:
        result = await make(ctx, url=t.url + "/").run()
    assert result.status == Status.CRITICAL
    assert error_kind(result) == "malformed"
