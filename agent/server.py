"""The agent's HTTP server: /healthz, /readyz, /status, /metrics.

Bound to loopback by default. When ``agent.auth_token`` is set, /status and /metrics
need ``Authorization: Bearer <token>`` (health probes stay open for kubelets).
/status and /metrics are serialized in a worker thread: at 1,000 checks either takes tens
of milliseconds, which on the event loop would make every check due meanwhile run late.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from typing import TYPE_CHECKING, Any

from aiohttp import web

from agent.secrets import scrub

if TYPE_CHECKING:
    from agent.app import Agent

__all__ = ["AgentServer", "render_status"]

log = logging.getLogger(__name__)
PROM_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class AgentServer:
    def __init__(self, agent: Agent, host: str, port: int) -> None:
        self.agent = agent
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None
        self.bound_port: int | None = None

    def _app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth])
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/status", self.status)
        app.router.add_get("/metrics", self.metrics)
        return app

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        token = self.agent.config.agent.auth_token
        if token is not None and request.path not in ("/healthz", "/readyz"):
            expected = f"Bearer {token.get_secret_value()}"
            got = request.headers.get("Authorization", "")
            if not hmac.compare_digest(got.encode(), expected.encode()):
                return web.json_response({"error": "a bearer token is required"}, status=401)
        return await handler(request)

    async def start(self) -> None:
        self._runner = web.AppRunner(self._app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        self.bound_port = sockets[0].getsockname()[1] if sockets else self.port
        log.info("serving /healthz /readyz /status /metrics on http://%s:%s", self.host, self.bound_port)

    @property
    def address(self) -> str:
        """host:port the server listens on (the bound port, once started)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.bound_port or self.port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        problems = self.agent.readiness_problems()
        if problems:
            return web.json_response({"status": "not ready", "problems": problems}, status=503)
        return web.json_response({"status": "ready"})

    async def status(self, request: web.Request) -> web.Response:
        body = await asyncio.to_thread(render_status, self.agent.status_snapshot())
        return web.Response(body=body, content_type="application/json", charset="utf-8")

    async def metrics(self, request: web.Request) -> web.Response:
        exporter = self.agent.prometheus
        if exporter is None:
            return web.json_response({"error": "the Prometheus exporter is disabled"}, status=404)
        body = await exporter.render_async()
        return web.Response(body=body, headers={"Content-Type": PROM_CONTENT_TYPE})


def render_status(doc: dict[str, Any]) -> bytes:
    """The /status body: indented JSON with every registered secret masked."""
    return scrub(json.dumps(doc, default=_plain, indent=2)).encode()


def _plain(obj: Any) -> Any:
    as_dict = getattr(obj, "as_dict", None)  # the check states of Agent.status_snapshot()
    return as_dict() if callable(as_dict) else str(obj)
