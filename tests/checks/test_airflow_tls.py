"""TLS options of the airflow check, against a real TLS listener on 127.0.0.1 serving the
recorded Airflow 3 responses with a certificate made for the test by openssl."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

import pytest
from aiohttp import web

from agent.check import CheckContext, MemoryState
from agent.samples import Status
from checks.airflow.check import AirflowCheck
from checks.airflow.config import AirflowConfig
from tests.support.targets import load_fixture

pytestmark = pytest.mark.unit


@pytest.fixture
def cert(tmp_path: Path) -> tuple[Path, Path]:
    crt, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(crt)], check=True, capture_output=True)
    return crt, key


async def serve_tls(crt: Path, key: Path, require_client_cert: bool = False
                    ) -> tuple[web.AppRunner, str]:
    async def version(request: web.Request) -> web.Response:
        return web.json_response(load_fixture("airflow3", "version.json"))

    async def token(request: web.Request) -> web.Response:
        return web.json_response({"access_token": "a.b.c"}, status=201)

    app = web.Application()
    app.router.add_get("/api/v2/version", version)
    app.router.add_post("/auth/token", token)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(crt), str(key))
    if require_client_cert:  # mutual TLS: the same self-signed certificate is the client's CA
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(str(crt))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"https://127.0.0.1:{port}"


async def connect(url: str, **tls: object) -> tuple[Status, str, str | None]:
    config = AirflowConfig(type="airflow", name="tls", url=url, username="admin",
                           password="pw12345", timeout=10, **tls)  # type: ignore[arg-type]
    ctx = CheckContext(state=MemoryState())
    check = AirflowCheck(config, ctx)
    try:
        await check.client.connect()
        return Status.OK, "", check.client.airflow_version
    except Exception as exc:  # noqa: BLE001 - the test reads the message
        return Status.CRITICAL, str(exc), None
    finally:
        await ctx.close()


async def test_an_untrusted_certificate_is_refused_and_a_ca_file_trusts_it(
        cert: tuple[Path, Path]) -> None:
    runner, url = await serve_tls(*cert)
    try:
        status, message, _ = await connect(url)
        assert status == Status.CRITICAL and "cannot reach Airflow" in message
        assert "certificate" in message.lower()
        status, message, version = await connect(url, ca_bundle=str(cert[0]))
        assert status == Status.OK and version == "3.3.2", message
        status, message, version = await connect(url, tls_verify=False)
        assert status == Status.OK and version == "3.3.2", message
    finally:
        await runner.cleanup()


async def test_an_unreadable_ca_file_is_a_clear_error(tmp_path: Path) -> None:
    config = AirflowConfig(type="airflow", name="tls", url="https://127.0.0.1:1",
                           token="tok-123456", ca_bundle=tmp_path / "missing.pem")
    result = await AirflowCheck(config, CheckContext()).run()
    assert result.status in (Status.CRITICAL, Status.UNKNOWN)
    assert "TLS files" in result.message and "missing.pem" in result.message


async def test_mutual_tls_presents_the_client_certificate(cert: tuple[Path, Path]) -> None:
    runner, url = await serve_tls(*cert, require_client_cert=True)
    try:
        status, message, _ = await connect(url, ca_bundle=str(cert[0]))
        assert status == Status.CRITICAL and "cannot reach Airflow" in message
        status, message, version = await connect(url, ca_bundle=str(cert[0]),
                                                 client_cert=str(cert[0]), client_key=str(cert[1]))
        assert status == Status.OK and version == "3.3.2", message
    finally:
        await runner.cleanup()
