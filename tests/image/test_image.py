"""The built image, run as its users run it (see tests/image/container.py for how).

Three containers start together, once for the module:

- ``agent``: the default image with nothing added, as ``docker run mlwarden:<version>`` runs it:
  the starter config the image ships;
- ``fileless``: the same image with ``MLWARDEN_CONFIG`` empty: the embedded defaults, which the
  starter config must match (one default, issue #18);
- ``node``: the GPU image as deploy/daemonset.yaml runs it: its args and environment, node.yaml
  from deploy/configmap.yaml mounted read-only where the DaemonSet mounts it, its emptyDir
  volumes, a read-only root. The history URL (a Secret in the cluster, PostgreSQL there) is a
  SQLite file in the emptyDir: the container has a network of its own, with no database in it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.fleet.deploy_files import REPO, agent_containers, configmap, mounted_config_key
from tests.image.container import Container, image_config, started

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOKEN = "image-test-token"
NODE_NAME = "gpu-node-1"


def _daemonset() -> tuple[dict, dict]:
    """(pod spec, mlwarden container) of deploy/daemonset.yaml."""
    _file, spec, container = next(x for x in agent_containers() if x[0] == "daemonset.yaml")
    return spec, container


def _node_container(image: str, log_dir: Path, command: list[str] | None = None) -> Container:
    """The GPU DaemonSet's pod, as its manifest describes it."""
    spec, container = _daemonset()
    config_dir = log_dir / "node-config"
    config_dir.mkdir(exist_ok=True)
    mount = next(m for m in container["volumeMounts"] if m["name"] == "mlwarden-config")
    key = mounted_config_key(spec, container, mount["mountPath"], "mlwarden.yaml")
    (config_dir / "mlwarden.yaml").write_text(configmap()[key])
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    env["NODE_NAME"] = NODE_NAME  # the downward API's spec.nodeName
    env["MLWARDEN_HISTORY_URL"] = "sqlite:////var/lib/mlwarden/history.db"
    env["MLWARDEN_AUTH_TOKEN"] = TOKEN
    volumes = {v["name"]: v for v in spec["volumes"]}
    scratch = tuple(m["mountPath"] for m in container["volumeMounts"] if "emptyDir" in volumes[m["name"]])
    cfg = image_config(image)
    return Container(image, "node" if command is None else "node-once", log_dir,
                     command=command or [*cfg.entrypoint, *container["args"]], env=env,
                     mounts={mount["mountPath"]: config_dir}, tmpfs=scratch,
                     read_only_root=container["securityContext"]["readOnlyRootFilesystem"])


@pytest.fixture(scope="module")
def port(images) -> int:
    exposed = image_config(images["agent"]).exposed
    assert exposed == ["9464/tcp"], exposed
    return 9464


@pytest.fixture(scope="module")
def running(images, port, tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("containers")
    containers = {
        "agent": Container(images["agent"], "agent", log_dir),
        "fileless": Container(images["agent"], "fileless", log_dir, env={"MLWARDEN_CONFIG": ""}),
        "node": _node_container(images["gpu"], log_dir),
    }
    try:
        started(*containers.values(), port=port)
        yield containers
    finally:
        for c in containers.values():
            c.stop()


def _status(container: Container, port: int) -> dict:
    code, body = container.http(port, "/status", headers={"Authorization": f"Bearer {TOKEN}"})
    assert code == 200, body[:300]
    return json.loads(body)


def _proc_status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


@pytest.mark.parametrize("name", ["agent", "node"])
def test_the_agent_is_pid_1_as_the_images_non_root_user_without_capabilities(running, name):
    container = running[name]
    assert container.config.user == "10001:10001"
    _f, _spec, manifest = next(x for x in agent_containers() if x[0] == "daemonset.yaml")
    assert manifest["securityContext"]["runAsUser"] == container.config.uid_gid[0]
    status = _proc_status(container.pid)
    assert status["Uid"].split() == ["10001"] * 4 and status["Gid"].split() == ["10001"] * 4
    assert int(status["CapEff"], 16) == 0 and int(status["CapPrm"], 16) == 0
    assert status["NSpid"].split()[-1] == "1", "the entrypoint is PID 1 in its container"
    with open(f"/proc/{container.pid}/cmdline", "rb") as f:
        argv = f.read().split(b"\0")
    assert b"/opt/mlwarden/bin/mlwarden" in argv and b"run" in argv


@pytest.mark.parametrize("name", ["agent", "node"])
def test_healthz_and_readyz_answer(running, port, name):
    for path, body in (("/healthz", b'"ok"'), ("/readyz", b'"ready"')):
        code, text = running[name].http(port, path)
        assert code == 200 and body in text, (path, code, text[:200])


def test_the_images_healthcheck_passes_and_fails_when_nothing_answers(running, port):
    """The HEALTHCHECK of the built image (not the Dockerfile's text), run inside the container."""
    container = running["agent"]
    check = container.config.healthcheck
    assert check and f"127.0.0.1:{port}/healthz" in check[-1]
    ok = container.exec(check)
    assert ok.returncode == 0, ok.stderr
    down = container.exec([*check[:-1], check[-1].replace(f":{port}/", ":1/")])
    assert down.returncode != 0


def test_the_shipped_config_loads_the_shipped_rule_packs(running, port):
    """The starter config in the image is the repository's, and it loads as many rules as the
    embedded defaults of a file-less run (the agent's own rule pack at least)."""
    shipped = running["agent"].exec(["cat", running["agent"].config.env["MLWARDEN_CONFIG"]])
    assert shipped.returncode == 0, shipped.stderr
    assert shipped.stdout == (REPO / "agent/data/agent.yaml.example").read_text()
    default = _status(running["fileless"], port)["components"]["rules"]["rules"]
    loaded = _status(running["agent"], port)["components"]["rules"]["rules"]
    assert default > 0, "the embedded defaults load the agent's own rule pack"
    assert loaded == default, f"the image's starter config loads {loaded} rules, a file-less run {default}"


def test_the_gpu_image_imports_nvml_and_says_why_it_reads_no_gpu(running, port):
    """No GPU here: the check in the GPU image gets past the import and reports UNKNOWN with
    the driver's absence as the reason, and the agent keeps running."""
    node = running["node"]
    imported = node.exec(["python", "-c", "import pynvml; print(pynvml.__name__)"])
    assert imported.returncode == 0 and imported.stdout.strip() == "pynvml", imported.stderr
    deadline = time.monotonic() + 30  # a check's first run comes within 10 s of the start
    while True:
        gpu = next(c for c in _status(node, port)["checks"] if c["name"] == "local-gpus")
        if gpu["runs"] >= 1 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert gpu["runs"] >= 1 and gpu["status"] in (3, "UNKNOWN"), gpu
    assert "libnvidia-ml.so.1 not found" in gpu["message"], gpu["message"]
    assert gpu["error"] is None, "no GPU is a status, not a crash"


def test_the_agent_image_tells_a_gpu_node_to_use_the_gpu_image(images, tmp_path):
    """The default image deployed by mistake on a GPU node: the hint names the GPU image, not a
    `pip install` that cannot work in a container (mlwarden is not on the package index)."""
    cfg = image_config(images["agent"])
    with _node_container(images["agent"], tmp_path, [cfg.entrypoint[0], "check", "local-gpus"]) as once:
        code = once.wait(timeout=120)
        out = once.output()
    assert code == 3, out  # UNKNOWN
    assert "nvidia-ml-py is not installed" in out and "GPU image" in out and "--target gpu" in out, out
    assert "pip install" not in out, out


def test_sigterm_stops_each_container_with_exit_0(running):
    """Last in this module: the kubelet's and `docker stop`'s SIGTERM, sent to PID 1 from outside."""
    for name, container in running.items():
        code = container.terminate(timeout=30)
        log = container.output()
        assert code == 0, f"{name} exited {code}; log:\n{log[-2000:]}"
        assert "SIGTERM received" in log and "Traceback" not in log, log[-2000:]
