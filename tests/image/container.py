"""Run a built image the way a container engine does, with buildah and util-linux only.

No container engine runs here, and none is needed: buildah builds the image and mounts its root
file system (``buildah from`` + ``buildah mount``), and :class:`Container` then does what
``docker run`` / the kubelet do with it:

- a network namespace of its own with only loopback, so the image's fixed port 9464 never meets
  another process; tests reach it through ``nsenter --net``, as a probe reaches a pod's address;
- a PID namespace of its own: the entrypoint is PID 1, so a signal it does not handle is
  ignored, as in a pod (``docker stop`` and a pod's termination only work if the agent handles
  SIGTERM itself);
- a mount namespace of its own: /proc, a minimal /dev, /etc/hosts, the mounts a manifest gives
  (a ConfigMap read-only, emptyDir volumes as tmpfs) and, with ``read_only_root``, everything
  else read-only, as ``readOnlyRootFilesystem: true`` makes it;
- the image's own User (a non-root uid keeps no capability, as with ``drop: [ALL]``), Env,
  WorkingDir, Entrypoint and Cmd, read from the built image's config, never restated here.

Not reproduced: cgroup limits, seccomp, a hostname of its own. Needs root (as buildah does here).
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from tests.support.procs import Proc

__all__ = ["Container", "ImageConfig", "buildah", "image_config", "started"]

DEV_NODES = ("null", "zero", "full", "random", "urandom", "tty")
HOSTS = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"


def buildah(*args: str, timeout: float = 120) -> str:
    """Run buildah with the storage of this test session (CONTAINERS_STORAGE_CONF); its stdout."""
    done = subprocess.run(["buildah", *args], capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"buildah {' '.join(args)} exited {done.returncode}: {done.stderr.strip()}")
    return done.stdout.strip()


@dataclass(frozen=True)
class ImageConfig:
    """What the built image says about how to run it (Docker format: it keeps HEALTHCHECK)."""

    user: str
    env: dict[str, str]
    entrypoint: list[str]
    cmd: list[str]
    workdir: str
    healthcheck: list[str]
    exposed: list[str]

    @property
    def uid_gid(self) -> tuple[int, int]:
        uid, _, gid = self.user.partition(":")
        return int(uid), int(gid or uid)


def image_config(image: str) -> ImageConfig:
    doc = json.loads(buildah("inspect", "--type", "image", image))
    cfg = doc["Docker"]["config"]
    test = (cfg.get("Healthcheck") or {}).get("Test") or []
    return ImageConfig(
        user=cfg.get("User") or "0",
        env=dict(item.split("=", 1) for item in cfg.get("Env") or []),
        entrypoint=list(cfg.get("Entrypoint") or []),
        cmd=list(cfg.get("Cmd") or []),
        workdir=cfg.get("WorkingDir") or "/",
        healthcheck=test[1:] if test[:1] == ["CMD"] else (["/bin/sh", "-c", test[1]] if test else []),
        exposed=sorted(cfg.get("ExposedPorts") or {}),
    )


class Container:
    """One container of ``image``; ``start()`` runs it, ``stop()`` removes everything it made.

    ``command`` replaces Entrypoint + Cmd (``docker run --entrypoint``); ``env`` adds to or
    overrides the image's Env; ``mounts`` maps a path in the container to a host file or folder,
    bound read-only; ``tmpfs`` lists writable scratch folders (emptyDir volumes).
    """

    def __init__(self, image: str, name: str, log_dir: Path, *, command: list[str] | None = None,
                 env: dict[str, str] | None = None, mounts: dict[str, Path] | None = None,
                 tmpfs: tuple[str, ...] = (), read_only_root: bool = False) -> None:
        self.image = image
        self.name = name
        self.log_dir = log_dir
        self.config = image_config(image)
        self.command = command or [*self.config.entrypoint, *self.config.cmd]
        self.env = {**self.config.env, **(env or {})}
        self.mounts = dict(mounts or {})
        self.tmpfs = tmpfs
        self.read_only_root = read_only_root
        self.proc: Proc | None = None
        self.root: str | None = None

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> Container:
        with_prefix = f"mlwarden-test-{self.name}-{os.getpid()}"
        subprocess.run(["buildah", "rm", with_prefix], capture_output=True, timeout=60)  # a leftover
        self.ctr = buildah("from", "--pull=never", "--quiet", "--name", with_prefix, self.image)
        self.root = buildah("mount", self.ctr)
        hosts = self.log_dir / f"{self.name}.hosts"
        hosts.write_text(HOSTS)
        self.started_at = time.monotonic()  # the container exists: from here it is `docker start`
        self.proc = Proc(self.name, ["unshare", "--mount", "--net", "--pid", "--fork", "--kill-child",
                                     "--", "sh", "-c", self._script(hosts)], log_dir=self.log_dir).start()
        return self

    def _script(self, hosts: Path) -> str:
        """The shell that sets the namespaces up and ends by exec-ing the entrypoint as PID 1."""
        q = shlex.quote
        root = q(self.root or "")
        lines = ["set -eu", "ip link set lo up", f"mount --bind {root} {root}",
                 f"mount -t proc proc {root}/proc",
                 f"mount -t tmpfs -o nosuid,mode=755 tmpfs {root}/dev"]
        for node in DEV_NODES:
            lines += [f": > {root}/dev/{node}", f"mount --bind /dev/{node} {root}/dev/{node}"]
        lines += [f"mkdir {root}/dev/shm {root}/dev/pts",
                  f"mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs {root}/dev/shm",
                  f"ln -s /proc/self/fd {root}/dev/fd",
                  f"touch {root}/etc/hosts", f"mount --bind -o ro {q(str(hosts))} {root}/etc/hosts"]
        for target, source in self.mounts.items():
            dest = f"{root}{q(target)}"
            make = f"mkdir -p {dest}" if Path(source).is_dir() else f"mkdir -p $(dirname {dest}) && touch {dest}"
            lines.append(make)
            lines += [f"mount --bind {q(str(source))} {dest}", f"mount -o remount,bind,ro {dest}"]
        for target in self.tmpfs:
            lines.append(f"mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs {root}{q(target)}")
        if self.read_only_root:
            lines.append(f"mount -o remount,bind,ro {root}")
        uid, gid = self.config.uid_gid
        lines.append(f"exec chroot --userspec={uid}:{gid} {root} " + self._env_argv(self.command))
        return "\n".join(lines)

    def _env_argv(self, argv: list[str]) -> str:
        """``env -i`` with the container's environment and working directory, then ``argv``."""
        env = " ".join(shlex.quote(f"{k}={v}") for k, v in self.env.items())
        return (f"/usr/bin/env -i -C {shlex.quote(self.config.workdir)} {env} "
                + " ".join(shlex.quote(a) for a in argv))

    @property
    def pid(self) -> int:
        """The entrypoint's PID on the host (PID 1 in the container)."""
        assert self.proc is not None
        children = psutil.Process(self.proc.pid).children()
        assert children, f"{self.name}: nothing runs in the container; log:\n{self.proc.log_tail()}"
        return children[0].pid

    def wait_ready(self, port: int, path: str = "/readyz", timeout: float = 90) -> None:
        """Until ``path`` answers 200; fails at once, with the log, if the container exits."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited {self.proc.poll()}; log:\n{self.proc.log_tail()}")
            try:
                last = self.http(port, path, timeout=2)
                if last[0] == 200:
                    return
            except (ConnectionError, AssertionError, psutil.Error, subprocess.TimeoutExpired) as exc:
                last = exc
            time.sleep(0.3)
        raise AssertionError(f"{self.name}: {path} on :{port} not ready after {timeout:.0f}s "
                             f"(last: {last!r}); log:\n{self.proc.log_tail()}")

    def terminate(self, timeout: float = 30) -> int:
        """SIGTERM to PID 1, from outside, as ``docker stop`` and the kubelet send it; the exit code."""
        assert self.proc is not None
        os.kill(self.pid, signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def wait(self, timeout: float = 120) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def output(self) -> str:
        assert self.proc is not None
        return self.proc.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop(timeout=10)
        if getattr(self, "ctr", None):
            subprocess.run(["buildah", "rm", self.ctr], capture_output=True, timeout=60)
            self.ctr = None

    def __enter__(self) -> Container:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- reaching in ---------------------------------------------------------------------
    def http(self, port: int, path: str, timeout: float = 5,
             headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        """GET ``http://127.0.0.1:port/path`` from inside the container's network."""
        code = ("import sys, json, urllib.request, urllib.error\n"
                "req = urllib.request.Request(sys.argv[1], headers=json.loads(sys.argv[3]))\n"
                "try:\n"
                "    r = urllib.request.urlopen(req, timeout=float(sys.argv[2])); s, b = r.status, r.read()\n"
                "except urllib.error.HTTPError as e:\n"
                "    s, b = e.code, e.read()\n"
                "sys.stdout.buffer.write(str(s).encode() + b'\\n' + b)\n")
        done = subprocess.run(["nsenter", f"--target={self.pid}", "--net", "--", sys.executable, "-c", code,
                               f"http://127.0.0.1:{port}{path}", str(timeout), json.dumps(headers or {})],
                              capture_output=True, timeout=timeout + 30)
        if done.returncode != 0:
            raise ConnectionError(done.stderr.decode(errors="replace").strip().splitlines()[-1:])
        status, _, body = done.stdout.partition(b"\n")
        return int(status), body

    def exec(self, argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside the running container (``docker exec``): its namespaces, root,
        working directory, user and environment."""
        uid, gid = self.config.uid_gid
        cmd = ["nsenter", f"--target={self.pid}", "--net", "--mount", "--pid", "--root", "--wd",
               f"--setuid={uid}", f"--setgid={gid}", "--", "/bin/sh", "-c", self._env_argv(argv)]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def started(*containers: Container, port: int, timeout: float = 120) -> None:
    """Start several containers at once and wait until each is ready (start-ups overlap)."""
    for c in containers:
        c.start()
    deadline = time.monotonic() + timeout
    for c in containers:
        c.wait_ready(port, timeout=max(1.0, deadline - time.monotonic()))
