"""A hostile target for the secrets test: every answer is an error whose body repeats the
request's credentials (the Authorization header, decoded basic auth, the request body), so
an agent that puts a server's words into an error message would leak them."""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["EchoCredentials"]


class _Handler(BaseHTTPRequestHandler):
    def _answer(self) -> None:
        if self.path.endswith("/version"):  # lets the client go on to log in (and fail there)
            doc = json.dumps({"version": "3.0.2" if "/v2/" in self.path else "2.10.5",
                              "git_version": None}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(doc)))
            self.end_headers()
            self.wfile.write(doc)
            return
        auth = self.headers.get("Authorization", "")
        decoded = ""
        if auth.startswith("Basic "):
            decoded = base64.b64decode(auth[6:]).decode(errors="replace")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode(errors="replace") if length else ""
        status = 401 if "/api/" in self.path or "/auth/" in self.path else 500
        doc = json.dumps({"detail": f"rejected {auth} ({decoded}) for body {body}",
                          "title": f"bad credentials {decoded}", "status": status}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("WWW-Authenticate", f'Basic realm="{decoded}"')
        self.send_header("Content-Length", str(len(doc)))
        self.end_headers()
        self.wfile.write(doc)

    do_GET = do_POST = _answer  # noqa: N815

    def log_message(self, *args: object) -> None:
        pass


class EchoCredentials:
    def __init__(self) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "EchoCredentials":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
