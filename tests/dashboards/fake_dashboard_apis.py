"""Strict local fakes of Datadog's and Grafana's dashboard APIs.

They are fakes because neither service can run here (Datadog is SaaS; Grafana is not in
Debian's archive). Each accepts only what the real API documents and answers in its shape:

- Datadog v1 dashboards (``GET/POST /api/v1/dashboard``, ``PUT /api/v1/dashboard/{id}``):
  both key headers required (403 ``{"errors": ["Forbidden"]}`` otherwise, as Datadog
  answers), every body validated strictly against datadog-api-client's Dashboard model
  (400 with the reason otherwise), an unknown id is 404.
- Grafana ``POST /api/dashboards/db`` (HTTP API reference, "Create / Update dashboard"):
  bearer token required (401 ``{"message": "Invalid API key"}``), only the documented
  request fields, ``dashboard.title`` required, a uid that exists without ``overwrite`` is
  412 ``name-exists``; answers ``{id, uid, url, status, version, slug}``.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.dashboards.strict_datadog import validate_dashboard

__all__ = ["FakeDatadog", "FakeGrafana"]


class _Server:
    def __init__(self) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # quiet test output
                pass

            def _reply(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self) -> None:
                # self.headers stays a Message: case-insensitive, as HTTP header names are
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                outer.requests.append((self.command, self.path))
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    self._reply(400, {"errors": ["body is not JSON"]})
                    return
                status, answer = outer.handle(self.command, self.path, self.headers, body)
                self._reply(status, answer)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        self.requests: list[tuple[str, str]] = []
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def handle(self, method: str, path: str, headers: Message, body: Any) -> tuple[int, Any]:
        raise NotImplementedError

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


class FakeDatadog(_Server):
    def __init__(self, api_key: str, app_key: str) -> None:
        super().__init__()
        self.keys = (api_key, app_key)
        self.dashboards: dict[str, dict[str, Any]] = {}
        self._ids = (f"abc-{n:03d}-xyz" for n in itertools.count(1))

    def handle(self, method: str, path: str, headers: Message, body: Any) -> tuple[int, Any]:
        if (headers.get("DD-API-KEY"), headers.get("DD-APPLICATION-KEY")) != self.keys:
            return 403, {"errors": ["Forbidden"]}
        if method == "GET" and path == "/api/v1/dashboard":
            return 200, {"dashboards": [
                {"id": i, "title": d["title"], "layout_type": d["layout_type"]}
                for i, d in self.dashboards.items()]}
        if method == "POST" and path == "/api/v1/dashboard":
            return self._store(next(self._ids), body)
        m = re.fullmatch(r"/api/v1/dashboard/([\w-]+)", path)
        if method == "PUT" and m:
            if m.group(1) not in self.dashboards:
                return 404, {"errors": ["Dashboard not found"]}
            return self._store(m.group(1), body)
        return 404, {"errors": [f"no route {method} {path}"]}

    def _store(self, dash_id: str, body: Any) -> tuple[int, Any]:
        try:
            validate_dashboard(body)
        except Exception as exc:  # noqa: BLE001 - the reason goes back as Datadog's 400 would
            return 400, {"errors": [f"Invalid dashboard: {exc}"]}
        self.dashboards[dash_id] = body
        return 200, {**body, "id": dash_id, "url": f"/dashboard/{dash_id}"}


class FakeGrafana(_Server):
    REQUEST_FIELDS = {"dashboard", "folderId", "folderUid", "message", "overwrite"}

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token
        self.dashboards: dict[str, dict[str, Any]] = {}
        self.versions: dict[str, int] = {}
        self.folders: dict[str, str | None] = {}
        self._ids = itertools.count(1)
        self._db_ids: dict[str, int] = {}

    def handle(self, method: str, path: str, headers: Message, body: Any) -> tuple[int, Any]:
        if headers.get("Authorization") != f"Bearer {self.token}":
            return 401, {"message": "Invalid API key"}
        if (method, path) != ("POST", "/api/dashboards/db"):
            return 404, {"message": "Not found"}
        if not isinstance(body, dict) or set(body) - self.REQUEST_FIELDS or "dashboard" not in body:
            return 400, {"message": f"bad request fields: {sorted(body or {})}"}
        dash = body["dashboard"]
        if not isinstance(dash, dict) or not dash.get("title"):
            return 400, {"message": "Dashboard title cannot be empty", "status": "empty-name"}
        uid = dash.get("uid")
        if not isinstance(uid, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", uid):
            return 400, {"message": "Invalid dashboard uid", "status": "invalid-uid"}
        if dash.get("id") not in (None, self._db_ids.get(uid)):
            return 404, {"message": "Dashboard not found", "status": "not-found"}
        if uid in self.dashboards and not body.get("overwrite"):
            return 412, {"message": "A dashboard with the same uid already exists",
                         "status": "name-exists"}
        if uid not in self._db_ids:
            self._db_ids[uid] = next(self._ids)
        self.versions[uid] = self.versions.get(uid, 0) + 1
        self.dashboards[uid] = dash
        self.folders[uid] = body.get("folderUid")
        slug = re.sub(r"[^a-z0-9]+", "-", dash["title"].lower()).strip("-")
        return 200, {"id": self._db_ids[uid], "uid": uid, "url": f"/d/{uid}/{slug}",
                     "status": "success", "version": self.versions[uid], "slug": slug}
