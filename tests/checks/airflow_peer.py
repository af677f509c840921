"""A real Airflow (3.x or 2.10) on loopback for the integration tests.

SQLite metadata DB in a temporary home, the test DAGs from ``tests/peers/airflow_dags``,
free ports, every process started in its own session and stopped by it (task processes leave
their parent's process group). Installed by ``tests/peers/install-airflow.sh``; a missing
install fails the test with how to install it. Facts behind the settings: Airflow 3 needs
all its processes to share the JWT secret and the execution API URL; Airflow 2 needs the
basic-auth backend, its roles after ``sync-perm`` and its venv on PATH.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from checks.airflow.times import parse_ts
from tests.support.procs import PEERS, REPO, Proc, free_port, http_get, require_peer, wait_for

__all__ = ["AirflowPeer", "start_airflow", "USER", "PASSWORD", "TEST_DAGS"]

DAGS = REPO / "tests" / "peers" / "airflow_dags"
INSTALL = "bash tests/peers/install-airflow.sh"
USER, PASSWORD = "admin", "mlwarden-" + secrets.token_hex(6)
TEST_DAGS = {"mlw_succeeds", "mlw_fails", "mlw_flaky", "mlw_sleeps"}


@dataclass
class AirflowPeer:
    major: str  # "3" or "2"
    url: str
    home: Path
    procs: list[Proc] = field(default_factory=list)
    token: str | None = None
    startup_seconds: float = 0.0

    @property
    def api(self) -> str:
        return f"{self.url}/api/v{'2' if self.major == '3' else '1'}"

    def _auth(self) -> dict[str, str]:
        if self.major == "2":
            raw = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
            return {"Authorization": f"Basic {raw}"}
        if self.token is None:
            body = json.dumps({"username": USER, "password": PASSWORD}).encode()
            req = urllib.request.Request(f"{self.url}/auth/token", data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - loopback
                self.token = json.loads(resp.read())["access_token"]
        return {"Authorization": f"Bearer {self.token}"}

    def request(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.api}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json", **self._auth()})
        with urllib.request.urlopen(req, timeout=20) as resp:  # noqa: S310 - loopback
            return json.loads(resp.read() or b"null")

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        body: dict[str, Any] = {"conf": conf or {}}
        if self.major == "3":
            body["logical_date"] = None  # an empty body is a 422 on Airflow 3
        return str(self.request("POST", f"/dags/{dag_id}/dagRuns", body)["dag_run_id"])

    def run_state(self, dag_id: str, run_id: str) -> str:
        return str(self.request("GET", f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}")["state"])

    def wait_run(self, dag_id: str, run_id: str, states: tuple[str, ...],
                 timeout: float = 120) -> str:
        def reached() -> str | None:
            state = self.run_state(dag_id, run_id)
            return state if state in states else None

        return str(wait_for(reached, timeout, 1.0, f"{dag_id} run {run_id} to reach {states}"))

    def dags(self) -> set[str]:
        return {d["dag_id"] for d in self.request("GET", "/dags?limit=100")["dags"]}

    def rss_bytes(self) -> int:
        """Resident memory of every process in the peer's process sessions."""
        import psutil

        sessions = {p.pid for p in self.procs if p.poll() is None}
        total = 0
        for proc in psutil.process_iter(["pid"]):
            try:
                if os.getsid(proc.pid) in sessions:
                    total += proc.memory_info().rss
            except (psutil.Error, ProcessLookupError, PermissionError):
                continue
        return total

    def log_tails(self, lines: int = 15) -> str:
        return "\n".join(f"--- {p.name}\n{p.log_tail(lines)}" for p in self.procs)

    def stop(self) -> None:
        # SIGTERM every session first so they shut down in parallel, then reap each
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in reversed(self.procs):
            proc.stop(timeout=10)


def _env(peer_dir: Path, home: Path, port: int, major: str) -> dict[str, str]:
    env = {
        "AIRFLOW_HOME": str(home),
        "PATH": f"{peer_dir / 'bin'}:/usr/bin:/bin",
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        "NO_PROXY": "*",
    }
    if major == "3":
        env.update({
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(16),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        })
    else:
        env.update({
            "AIRFLOW__CORE__EXECUTOR": "SequentialExecutor",
            "AIRFLOW__API__AUTH_BACKENDS":
                "airflow.api.auth.backend.basic_auth,airflow.api.auth.backend.session",
            "AIRFLOW__WEBSERVER__SECRET_KEY": secrets.token_hex(16),
            "AIRFLOW__WEBSERVER__BASE_URL": f"http://127.0.0.1:{port}",
            "AIRFLOW__SCHEDULER__DAG_DIR_LIST_INTERVAL": "5",
        })
    return env


def start_airflow(major: str, workdir: Path, timeout: float = 180) -> AirflowPeer:
    """Airflow ``major`` ("3" or "2") running, its scheduler heartbeat newer than its start."""
    peer_dir = require_peer(PEERS / f"airflow{major}" / "bin" / "airflow", INSTALL).parents[1]
    started = time.monotonic()
    home = workdir / f"airflow{major}-home"
    shutil.rmtree(home, ignore_errors=True)
    shutil.copytree(DAGS, home / "dags")
    port = free_port()
    env = _env(peer_dir, home, port, major)
    if major == "3":
        (home / "passwords.json").write_text(json.dumps({USER: PASSWORD}))
    airflow = str(peer_dir / "bin" / "airflow")

    def setup(*args: str) -> None:
        done = subprocess.run([airflow, *args], env=env, capture_output=True, text=True,  # noqa: S603
                              timeout=240, cwd=home, start_new_session=True)
        if done.returncode != 0:
            raise RuntimeError(f"airflow {' '.join(args)} failed:\n{done.stdout[-2000:]}\n"
                               f"{done.stderr[-3000:]}")

    setup("db", "migrate")
    if major == "2":
        setup("sync-perm")
        setup("users", "create", "--username", USER, "--password", PASSWORD, "--role", "Admin",
              "--email", "admin@example.invalid", "--firstname", "a", "--lastname", "b")
        commands = {
            "webserver": ["webserver", "--hostname", "127.0.0.1", "--port", str(port),
                          "--workers", "1"],
            "scheduler": ["scheduler", "--skip-serve-logs"],
            "triggerer": ["triggerer", "--skip-serve-logs"],
        }
    else:
        commands = {
            "api-server": ["api-server", "--host", "127.0.0.1", "--port", str(port),
                           "--workers", "1"],
            "scheduler": ["scheduler", "--skip-serve-logs"],
            "dag-processor": ["dag-processor"],
            "triggerer": ["triggerer", "--skip-serve-logs"],
        }
    peer = AirflowPeer(major, f"http://127.0.0.1:{port}", home)
    try:
        wall_start = time.time()
        for name, args in commands.items():
            peer.procs.append(Proc(f"airflow{major}-{name}", [airflow, *args], env=env, cwd=home,
                                   log_dir=home / "proc-logs").start())
        health_path = "/api/v2/monitor/health" if major == "3" else "/api/v1/health"

        def healthy() -> bool:
            for proc in peer.procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"{proc.name} exited: {proc.log_tail()}")
            status, body = http_get(peer.url + health_path, timeout=3)
            if status != 200:
                return False
            scheduler = json.loads(body).get("scheduler") or {}
            beat = parse_ts(scheduler.get("latest_scheduler_heartbeat"))
            return scheduler.get("status") == "healthy" and beat is not None and beat > wall_start

        wait_for(healthy, timeout, 0.5, f"Airflow {major} at {peer.url} to report a fresh scheduler")
        wait_for(lambda: TEST_DAGS <= peer.dags(), 90, 1.0, f"Airflow {major} to parse the test DAGs")
    except BaseException:
        tails = peer.log_tails(30)
        peer.stop()
        raise RuntimeError(f"Airflow {major} did not start:\n{tails}") from None
    peer.startup_seconds = time.monotonic() - started
    return peer
