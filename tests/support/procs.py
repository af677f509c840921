"""Start and stop real peer processes on loopback, bounded in time, stopped by PID.

Every process is started in its own session (``start_new_session``) so that stopping it
ends everything it spawned (Airflow task runners leave their parent's process group).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

__all__ = ["Proc", "free_port", "wait_for", "wait_http", "REPO", "PEERS"]

REPO = Path(__file__).resolve().parents[2]
PEERS = Path(os.environ.get("MLWARDEN_PEERS", REPO / ".peers"))


def free_port() -> int:
    """A TCP port nothing listens on right now (the kernel picks it)."""
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate: Callable[[], object], timeout: float, interval: float = 0.1,
             what: str = "condition") -> object:
    """Poll ``predicate`` until truthy; AssertionError naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - keep polling, report the last one
            last_exc = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}"
                         + (f" (last error: {last_exc!r})" if last_exc else ""))


def http_get(url: str, timeout: float = 2.0, headers: Mapping[str, str] | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - loopback only
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_http(url: str, timeout: float = 30.0, status: int = 200, proc: "Proc | None" = None) -> None:
    def ok() -> bool:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.name} exited with {proc.poll()}; log:\n{proc.log_tail()}")
        return http_get(url, timeout=2.0)[0] == status

    wait_for(ok, timeout, 0.2, f"{url} to answer {status}")


class Proc:
    """A peer process with its log in a file; ``stop()`` ends its whole session."""

    def __init__(self, name: str, cmd: Sequence[str], *, env: Mapping[str, str] | None = None,
                 cwd: str | os.PathLike[str] | None = None, log_dir: Path | None = None) -> None:
        self.name = name
        self.cmd = [str(c) for c in cmd]
        self.env = {**os.environ, **(env or {})}
        self.cwd = cwd
        log_dir = Path(log_dir or os.environ.get("TMPDIR", "/tmp"))
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{name}.log"
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> "Proc":
        log = self.log_path.open("ab")
        self.popen = subprocess.Popen(  # noqa: S603 - test peers only
            self.cmd, env=self.env, cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def poll(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    def signal(self, sig: int) -> None:
        if self.popen is not None and self.popen.poll() is None:
            os.kill(self.popen.pid, sig)

    def wait(self, timeout: float) -> int:
        assert self.popen is not None
        return self.popen.wait(timeout=timeout)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM the process session, SIGKILL what is left after ``timeout``."""
        if self.popen is None:
            return None
        pgid = self.popen.pid
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGTERM)
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=5)
        return self.popen.returncode

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> "Proc":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def running(proc: Proc) -> Iterator[Proc]:
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


def require_peer(path: Path, install_hint: str) -> Path:
    """The path of an installed peer, or a test failure (never a skip) saying how to install it."""
    import pytest

    if not path.exists():
        pytest.fail(f"test peer missing: {path} (install it with `{install_hint}`; `make test` does)",
                    pytrace=False)
    return path
