"""Start the real daemon (``tests/faults/runner.py run``) and read its /status and log."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from tests.support.procs import REPO, Proc, free_port, http_get, wait_http

__all__ = ["Daemon", "RUNNER"]

RUNNER = REPO / "tests" / "faults" / "runner.py"


class Daemon:
    """One ``mlwarden run`` subprocess on a free port with its config in ``dir``."""

    def __init__(self, dir: Path, body: str, *, port: int | None = None, token: str | None = None) -> None:
        self.dir = dir
        self.port = port or free_port()
        self.token = token
        self.config = dir / "agent.yaml"
        self.db = dir / "history.db"
        self.config.write_text(body.format(port=self.port, db=self.db, dir=dir))
        self.proc: Proc | None = None

    def start(self, ready: str = "/healthz", timeout: float = 30) -> "Daemon":
        self.proc = Proc("agent", [sys.executable, str(RUNNER), "run", "--config", str(self.config)],
                         cwd=self.dir, log_dir=self.dir).start()
        wait_http(self.url(ready), timeout=timeout, proc=self.proc)
        return self

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def status(self) -> dict[str, Any]:
        code, body = http_get(self.url("/status"), timeout=5, headers=self._headers())
        assert code == 200, (code, body[:300])
        return json.loads(body)

    def metrics(self) -> str:
        code, body = http_get(self.url("/metrics"), timeout=5, headers=self._headers())
        assert code == 200, code
        return body.decode()

    def check(self, name: str) -> dict[str, Any]:
        return next(c for c in self.status()["checks"] if c["name"] == name)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        path = self.dir / "agent.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def log_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log().splitlines() if line.startswith("{")]

    def stop(self) -> int | None:
        return self.proc.stop() if self.proc is not None else None

    def __enter__(self) -> "Daemon":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
