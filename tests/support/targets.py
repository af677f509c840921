"""Local HTTP targets for tests: handler functions over a real socket on 127.0.0.1.

``serve(routes)`` starts an aiohttp server whose routes map ``(method, path)`` to a handler
or to a canned response; any request to an unknown route fails the test that made it
(recorded in ``server.unknown``), so a test cannot pass by talking to the wrong URL.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

__all__ = ["Target", "canned", "json_response", "FIXTURES", "load_fixture"]

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_response(body: Any, status: int = 200) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response(body, status=status)
    return handler


def canned(body: bytes | str = b"", status: int = 200, content_type: str = "text/plain") -> Handler:
    data = body.encode() if isinstance(body, str) else body

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=data, status=status, content_type=content_type)
    return handler


class Target:
    """A strict local HTTP server; use as ``async with Target({...}) as t: t.url``."""

    def __init__(self, routes: dict[tuple[str, str], Handler]) -> None:
        self.routes = dict(routes)
        self.requests: list[tuple[str, str]] = []
        self.unknown: list[tuple[str, str]] = []
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._server = TestServer(app, host="127.0.0.1")

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        key = (request.method, request.path)
        self.requests.append(key)
        handler = self.routes.get(key)
        if handler is None:
            self.unknown.append(key)
            return web.Response(status=599, text=f"unexpected request {key}")
        return await handler(request)

    @property
    def url(self) -> str:
        return str(self._server.make_url("")).rstrip("/")

    async def __aenter__(self) -> "Target":
        await self._server.start_server()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._server.close()
        assert not self.unknown, f"requests to routes the test did not declare: {self.unknown}"


def load_fixture(*parts: str) -> Any:
    path = FIXTURES.joinpath(*parts)
    text = path.read_text()
    return json.loads(text) if path.suffix == ".json" else text
