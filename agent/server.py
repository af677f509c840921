"""The agent's HTTP server: /healthz, /readyz, /status, /metrics, and the status page at /.

Bound to loopback by default. When ``agent.auth_token`` is set, /status and /metrics
need ``Authorization: Bearer <token>`` (health probes stay open for kubelets). The page
(``/`` and ``/ui/``) applies the same token rule itself, also accepting it as a Basic-auth
password so a browser can send it, and is refused on a non-loopback bind without a token
(see agent/web/access.py).
/status is serialized in a worker thread and /metrics rendered on the loop in ~2 ms slices
(see PrometheusExporter.render_async): at 1,000 checks either takes tens of milliseconds,
which in one piece on the event loop would make every check due meanwhile run late.

``exporters.prometheus.listen`` adds a second listener that serves /metrics only and
asks for no token: scrapers that cannot send one (``prometheus.io/scrape`` annotations)
reach the metrics on the pod network while /status, which names targets and errors,
stays behind the token. /metrics speaks OpenMetrics to scrapers that ask for it and
gzip to those that accept it (:mod:`agent.export.exposition`).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from typing import TYPE_CHECKING, Any

from aiohttp import web

from agent.export.exposition import negotiate, wants_gzip
from agent.secrets import scrub
from agent.web import StatusPage

if TYPE_CHECKING:
    from agent.app import Agent

__all__ = ["AgentServer", "render_status"]

log = logging.getLogger(__name__)


class AgentServer:
    def __init__(self, agent: Agent, host: str, port: int,
                 metrics_listen: tuple[str, int] | None = None) -> None:
        self.agent = agent
        self.host = host
        self.port = port
        self.metrics_listen = metrics_listen
        self._runners: list[web.AppRunner] = []
        self.bound_port: int | None = None
        self.page = StatusPage(agent, listen=lambda: f"{self.host}:{self.port}")
        self.metrics_port: int | None = None

    def _app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth])
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/status", self.status)
        app.router.add_get("/metrics", self.metrics)
        app.router.add_routes(self.page.routes())
        return app

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        token = self.agent.config.agent.auth_token
        # health probes are open; the page applies the token rule itself (it also takes Basic)
        exempt = request.path in ("/healthz", "/readyz") or self.page.owns(request.path)
        if token is not None and not exempt:
            expected = f"Bearer {token.get_secret_value()}"
            got = request.headers.get("Authorization", "")
            if not hmac.compare_digest(got.encode(), expected.encode()):
                return web.json_response({"error": "a bearer token is required"}, status=401)
        return await handler(request)

    def _metrics_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metrics", self.metrics)
        return app

    async def _serve(self, app: web.Application, host: str, port: int, setting: str) -> int:
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        self._runners.append(runner)
        site = web.TCPSite(runner, host, port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            raise OSError(exc.errno, f"{setting} {host}:{port}: {exc.strerror or exc}") from None
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        return int(sockets[0].getsockname()[1]) if sockets else port

    async def start(self) -> None:
        self.bound_port = await self._serve(self._app(), self.host, self.port, "agent.listen")
        log.info("serving /healthz /readyz /status /metrics and the status page on http://%s:%s",
                 self.host, self.bound_port)
        if self.metrics_listen is not None:
            host, port = self.metrics_listen
            self.metrics_port = await self._serve(self._metrics_app(), host, port,
                                                  "exporters.prometheus.listen")
            log.info("serving /metrics without a token on http://%s:%s", host, self.metrics_port)

    @property
    def address(self) -> str:
        """host:port the server listens on (the bound port, once started)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.bound_port or self.port}"

    async def stop(self) -> None:
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners = []

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
        openmetrics = negotiate(request.headers.get("Accept"))
        gzip = wants_gzip(request.headers.get("Accept-Encoding"))
        body = await exporter.render_async(openmetrics, gzip)
        headers = {"Content-Type": exporter.content_type(openmetrics), "Vary": "Accept, Accept-Encoding"}
        if gzip:
            headers["Content-Encoding"] = "gzip"
        return web.Response(body=body, headers=headers)


_CHECKS = "\0mlwarden-checks\0"  # where the check rows go (a string no state can be)


def render_status(doc: dict[str, Any]) -> bytes:
    """The /status body: indented JSON, one line per check instance, every registered
    secret masked.

    Indenting goes through json's pure-Python encoder: at 5,000 instances that took
    ~100 ms of a worker thread that shares the GIL with the event loop, and halved the
    loop's pace meanwhile (benchmarks/agent_scale.py). Each check's row is encoded by the
    C encoder instead: a third of the time, and still one instance per line.
    """
    checks = doc.get("checks")
    if not isinstance(checks, list) or not checks:
        return scrub(json.dumps(doc, default=_plain, indent=2)).encode()
    head = json.dumps({**doc, "checks": _CHECKS}, default=_plain, indent=2)
    rows = ",\n    ".join([json.dumps(_plain(c) if not isinstance(c, dict) else c, default=_plain)
                           for c in checks])
    return scrub(head.replace(json.dumps(_CHECKS), "[\n    " + rows + "\n  ]", 1)).encode()


def _plain(obj: Any) -> Any:
    as_dict = getattr(obj, "as_dict", None)  # the check states of Agent.status_snapshot()
    return as_dict() if callable(as_dict) else str(obj)
