"""GPU process -> container/pod from constructed /proc/<pid>/cgroup files (v1 and v2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from checks.gpu.cgroups import lookup_process, parse_cgroup

CID = "3f4c1b2a9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a"
POD = "8b1e2c3d-4f5a-6b7c-8d9e-0f1a2b3c4d5e"

V1_DOCKER = f"""12:memory:/docker/{CID}
11:cpu,cpuacct:/docker/{CID}
3:devices:/docker/{CID}
1:name=systemd:/docker/{CID}
"""
V2_DOCKER = f"0::/system.slice/docker-{CID}.scope\n"
V2_K8S_CONTAINERD_SYSTEMD = (
    f"0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{POD.replace('-', '_')}.slice/"
    f"cri-containerd-{CID}.scope\n")
V1_K8S_CGROUPFS = f"""12:memory:/kubepods/besteffort/pod{POD}/{CID}
4:devices:/kubepods/besteffort/pod{POD}/{CID}
1:name=systemd:/kubepods/besteffort/pod{POD}/{CID}
"""
V2_K8S_GUARANTEED_CRIO = f"0::/kubepods.slice/kubepods-pod{POD.replace('-', '_')}.slice/crio-{CID}.scope\n"
V2_PODMAN = f"0::/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{CID}.scope/container\n"
V2_CTR = f"0::/default/{CID}\n"
V2_HOST = "0::/user.slice/user-1000.slice/session-3.scope\n"
V1_HOST = "12:memory:/user.slice\n1:name=systemd:/user.slice/user-1000.slice/session-3.scope\n"


@pytest.mark.parametrize("text, runtime, pod_uid, qos", [
    (V1_DOCKER, "docker", "", ""),
    (V2_DOCKER, "docker", "", ""),
    (V2_K8S_CONTAINERD_SYSTEMD, "containerd", POD, "burstable"),
    (V1_K8S_CGROUPFS, "", POD, "besteffort"),
    (V2_K8S_GUARANTEED_CRIO, "cri-o", POD, "guaranteed"),
    (V2_PODMAN, "podman", "", ""),
    (V2_CTR, "containerd", "", ""),
])
def test_container_and_pod_from_cgroup(text, runtime, pod_uid, qos):
    ref = parse_cgroup(text)
    assert ref.container_id == CID
    assert ref.short_id == CID[:12]
    assert (ref.runtime, ref.pod_uid, ref.qos) == (runtime, pod_uid, qos)


@pytest.mark.parametrize("text", [V2_HOST, V1_HOST, "", "garbage without colons\n"])
def test_host_processes_have_no_container(text):
    ref = parse_cgroup(text)
    assert (ref.container_id, ref.pod_uid, ref.runtime) == ("", "", "")


def write_proc(root: Path, pid: int, comm: str, cgroup: str, environ: dict[str, str] | None = None) -> None:
    d = root / str(pid)
    d.mkdir(parents=True)
    (d / "comm").write_text(comm + "\n")
    (d / "cgroup").write_text(cgroup)
    if environ is not None:
        (d / "environ").write_bytes(b"\0".join(f"{k}={v}".encode() for k, v in environ.items()) + b"\0")


def test_pod_name_and_namespace_from_the_environment(tmp_path):
    write_proc(tmp_path, 4242, "tritonserver", V2_K8S_CONTAINERD_SYSTEMD,
               {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "HOSTNAME": "ranker-7d9f-abcde", "PATH": "/bin"})
    write_proc(tmp_path, 4343, "python", V2_K8S_CONTAINERD_SYSTEMD,
               {"POD_NAME": "trainer-0", "POD_NAMESPACE": "ml", "HOSTNAME": "ignored"})
    name, ref = lookup_process(4242, str(tmp_path))
    assert name == "tritonserver"
    assert (ref.pod, ref.namespace, ref.pod_uid, ref.short_id) == ("ranker-7d9f-abcde", "", POD, CID[:12])
    _, ref = lookup_process(4343, str(tmp_path))
    assert (ref.pod, ref.namespace) == ("trainer-0", "ml")


def test_hostname_outside_kubernetes_is_not_a_pod_name(tmp_path):
    write_proc(tmp_path, 7, "python", V2_DOCKER, {"HOSTNAME": "3f4c1b2a9d8e"})
    _, ref = lookup_process(7, str(tmp_path))
    assert ref.pod == "" and ref.runtime == "docker"


def test_an_exited_or_unreadable_process_gives_blanks(tmp_path):
    write_proc(tmp_path, 9, "python", V2_K8S_CONTAINERD_SYSTEMD)  # no environ file (not readable)
    assert lookup_process(9, str(tmp_path))[1].pod == ""
    assert lookup_process(12345, str(tmp_path)) == ("", parse_cgroup(""))
