"""Which container and pod a GPU process runs in, from ``/proc/<pid>/cgroup``.

The cgroup path names the container runtime and ID (cgroup v1 and v2, systemd and cgroupfs
drivers): Docker ``/docker/<id>`` or ``docker-<id>.scope``, containerd/CRI
``cri-containerd-<id>.scope``, CRI-O ``crio-<id>.scope``, Podman ``libpod-<id>.scope``,
and Kubernetes pods ``kubepods[-qos]-pod<uid>.slice`` or ``/kubepods/<qos>/pod<uid>/``.
Kubernetes does not put the pod's name in the cgroup, so it is taken where the environment
provides it: ``POD_NAME``/``POD_NAMESPACE`` (downward API) or, in a pod, ``HOSTNAME`` in
``/proc/<pid>/environ`` (readable by root or the process's own user).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ContainerRef", "parse_cgroup", "lookup_process"]

_ID = r"([0-9a-f]{64})"
_RUNTIMES = [
    (re.compile(rf"cri-containerd-{_ID}\.scope"), "containerd"),
    (re.compile(rf"crio-(?:conmon-)?{_ID}\.scope"), "cri-o"),
    (re.compile(rf"docker-{_ID}\.scope"), "docker"),
    (re.compile(rf"libpod-(?:conmon-)?{_ID}\.scope"), "podman"),
    (re.compile(rf"/docker/{_ID}(?:/|$)"), "docker"),
    (re.compile(rf"/kubepods[^\n]*/{_ID}(?:/|$)"), ""),  # cgroupfs driver: the runtime is not named
    (re.compile(rf"/actions_job/{_ID}(?:/|$)"), "docker"),
    (re.compile(rf"/(?:[a-z0-9_.-]+)/{_ID}(?:/|$)"), "containerd"),  # ctr/nerdctl namespaces
]
_POD_SYSTEMD = re.compile(r"kubepods(?:-(burstable|besteffort))?-pod([0-9a-f_]{36})\.slice")
_POD_CGROUPFS = re.compile(r"/kubepods(?:/(burstable|besteffort))?/pod([0-9a-f-]{36})(?:/|$)")


@dataclass(frozen=True)
class ContainerRef:
    """Where a process runs; empty strings where it runs on the host or is not known."""

    container_id: str = ""
    runtime: str = ""
    pod_uid: str = ""
    qos: str = ""
    pod: str = ""
    namespace: str = ""

    @property
    def short_id(self) -> str:
        return self.container_id[:12]


def parse_cgroup(text: str) -> ContainerRef:
    """The container and pod named by the contents of a ``/proc/<pid>/cgroup`` file."""
    paths = []
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            paths.append(parts[2])
    # v2 has one line (0::/path); v1 has one per controller, the same path in each
    container_id = runtime = pod_uid = qos = ""
    for path in paths:
        if not container_id:
            for pattern, name in _RUNTIMES:
                match = pattern.search(path)
                if match:
                    container_id, runtime = match.group(1), name
                    break
        if not pod_uid:
            match = _POD_SYSTEMD.search(path) or _POD_CGROUPFS.search(path)
            if match:
                qos = match.group(1) or "guaranteed"
                pod_uid = match.group(2).replace("_", "-")
    return ContainerRef(container_id=container_id, runtime=runtime, pod_uid=pod_uid, qos=qos)


def lookup_process(pid: int, proc_root: str = "/proc") -> tuple[str, ContainerRef]:
    """(process name, container/pod) for a PID; blanks for what cannot be read.

    A PID that exited, or a /proc that is not the host's (no hostPID), gives blanks rather
    than an error: the GPU reading stays valid without the mapping.
    """
    base = Path(proc_root) / str(pid)
    name = _read(base / "comm").strip()
    ref = parse_cgroup(_read(base / "cgroup"))
    if ref.pod_uid:
        env = _environ(base / "environ")
        pod = env.get("POD_NAME") or (env.get("HOSTNAME", "") if "KUBERNETES_SERVICE_HOST" in env else "")
        namespace = env.get("POD_NAMESPACE", "")
        if pod or namespace:
            ref = ContainerRef(ref.container_id, ref.runtime, ref.pod_uid, ref.qos, pod, namespace)
    return name, ref


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _environ(path: Path) -> dict[str, str]:
    try:
        raw = path.read_bytes()
    except OSError:
        return {}
    env = {}
    for item in raw.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep:
            env[key.decode(errors="replace")] = value.decode(errors="replace")
    return env
