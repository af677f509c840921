"""The Kubernetes manifests in deploy/: valid against the Kubernetes schemas (strict: an
unknown or misspelt field fails), and consistent with the agent and the image — probes on
the server's real paths and port, non-root, the config mounted where the image reads it,
every ${VAR} of each config provided, resource requests above the agent's measured RSS."""

from __future__ import annotations

import re
import urllib.request
from pathlib import PurePosixPath

import kubernetes_validate
import pytest
import yaml

from agent.config import AgentSection, parse_config
from agent.errors import ConfigError
from agent.history.db import is_sqlite
from agent.plugins import check_types
from tests.fleet.deploy_files import (
    agent_containers,
    configmap,
    dockerfile,
    env_of,
    final_stage,
    manifests,
    mounted_config_key,
    secret_keys,
    workloads,
)

K8S_VERSION = "1.30.0"  # oldest release the manifests target (native sidecars not used)
FINAL = final_stage(dockerfile())
IMAGE_ENV = env_of(FINAL)
CONFIG_PATH = PurePosixPath(IMAGE_ENV["MLWARDEN_CONFIG"])
IMAGE_UID = int(next(i for i in FINAL if i.keyword == "USER").args.split(":")[0])
WRITABLE = ["/var/lib/mlwarden", "/tmp"]  # WORKDIR (SQLite history) and MPLCONFIGDIR's parent
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}")


def _ids(items):  # type: ignore[no-untyped-def]
    return [f"{f}:{d['kind']}/{d['metadata']['name']}" for f, d in items]


@pytest.mark.parametrize("doc", [d for _, d in manifests()], ids=_ids(manifests()))
def test_every_manifest_is_valid_kubernetes(doc):
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_the_validator_rejects_a_misspelt_field():
    """The strict schemas catch what a YAML loader would let through."""
    _f, doc = workloads()[0]
    broken = yaml.safe_load(yaml.safe_dump(doc))
    broken["spec"]["template"]["spec"]["containers"][0]["livenessprobe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_there_is_a_sidecar_a_gpu_daemonset_and_a_cluster_deployment():
    kinds = {(d["kind"], f) for f, d in workloads()}
    assert ("DaemonSet", "daemonset.yaml") in kinds
    assert ("Deployment", "cluster.yaml") in kinds and ("Deployment", "sidecar.yaml") in kinds
    sidecar_pod = next(d for f, d in workloads() if f == "sidecar.yaml")["spec"]["template"]["spec"]
    assert len(sidecar_pod["containers"]) == 2, "the sidecar shares its pod with a model server"


CONTAINERS = agent_containers()
CONTAINER_IDS = [f"{f}:{c['name']}" for f, _s, c in CONTAINERS]


def _listen(container: dict) -> AgentSection:
    args = container.get("args", [])
    return AgentSection(listen=args[args.index("--listen") + 1])


def _port_number(container: dict, port: int | str) -> int:
    if isinstance(port, int):
        return port
    return next(p["containerPort"] for p in container["ports"] if p.get("name") == port)


def _config(spec: dict, container: dict) -> str:
    key = mounted_config_key(spec, container, str(CONFIG_PATH.parent), CONFIG_PATH.name)
    return configmap()[key]


@pytest.mark.parametrize("file,spec,container", CONTAINERS, ids=CONTAINER_IDS)
def test_probes_use_the_servers_paths_and_listen_port(file, spec, container):
    listen = _listen(container)
    assert listen.listen_host == "0.0.0.0"
    probes = {k: container[k]["httpGet"] for k in ("livenessProbe", "readinessProbe", "startupProbe")}
    assert probes["livenessProbe"]["path"] == "/healthz"
    assert probes["readinessProbe"]["path"] == "/readyz"
    assert probes["startupProbe"]["path"] == "/healthz"
    for probe in probes.values():
        assert _port_number(container, probe["port"]) == listen.listen_port
    # the mounted config agrees (the --listen argument overrides it; keep them equal)
    raw = yaml.safe_load(_config(spec, container))
    assert AgentSection(listen=raw["agent"]["listen"]).listen_port == listen.listen_port


def test_the_probe_paths_answer_200_on_a_real_agent(live_agent):
    _proc, port = live_agent
    paths = {c[k]["httpGet"]["path"] for _f, _s, c in CONTAINERS
             for k in ("livenessProbe", "readinessProbe", "startupProbe")}
    assert paths == {"/healthz", "/readyz"}
    for path in sorted(paths):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:  # noqa: S310
            assert resp.status == 200, path


@pytest.mark.parametrize("file,spec,container", CONTAINERS, ids=CONTAINER_IDS)
def test_the_agent_runs_as_the_images_non_root_user_on_a_read_only_root(file, spec, container):
    sc = container["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] == IMAGE_UID
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    mounted = {m["mountPath"] for m in container["volumeMounts"]}
    for path in WRITABLE:
        assert path in mounted, f"{path} must be a writable volume with a read-only root"
    assert IMAGE_ENV["MPLCONFIGDIR"].startswith("/tmp/")


@pytest.mark.parametrize("file,spec,container", CONTAINERS, ids=CONTAINER_IDS)
def test_every_variable_of_the_mounted_config_is_provided(file, spec, container):
    text = _config(spec, container)
    needed = {m.group(1) for m in _VAR.finditer(text) if m.group(2) is None}
    given = {e["name"] for e in container.get("env", [])}
    for source in container.get("envFrom", []):
        given |= secret_keys(source["secretRef"]["name"])
    assert needed <= given, f"{file}: config needs {sorted(needed - given)} from the environment"


@pytest.mark.parametrize("key", sorted(configmap()), ids=sorted(configmap()))
def test_each_config_in_the_configmap_is_valid(key):
    """Validated with the agent's own loader. Check types that are not installed in this
    environment (built by other issues) are the only problems tolerated, and only while
    they are not installed: once they are, their instances are validated in full."""
    text = configmap()[key]
    env = {m.group(1): "x" for m in _VAR.finditer(text)}
    env["MLWARDEN_HISTORY_URL"] = "postgresql+psycopg://mlwarden@postgres/mlwarden"
    try:
        config = parse_config(text, source=key, env=env)
    except ConfigError as exc:
        installed = set(check_types())
        unknown = re.compile(r"^checks\[\d+\]\.type: unknown check type '([a-z_]+)'")
        for problem in exc.problems:
            match = unknown.match(problem)
            assert match and match.group(1) not in installed, problem
        return
    assert config.agent.listen_host == "0.0.0.0"


def test_all_agents_share_one_postgresql_database():
    urls = {yaml.safe_load(text)["agent"]["history"] for text in configmap().values()}
    assert urls == {"${MLWARDEN_HISTORY_URL}"}
    secret = next(d for _f, d in manifests() if d["kind"] == "Secret")
    assert not is_sqlite(secret["stringData"]["MLWARDEN_HISTORY_URL"])


def _env(container: dict) -> dict:
    return {e["name"]: e for e in container.get("env", [])}


def test_the_daemonset_reads_nvml_on_gpu_nodes_named_by_the_downward_api():
    file = next(f for f, d in workloads() if d["kind"] == "DaemonSet")
    _f, spec, container = next(x for x in CONTAINERS if x[0] == file)
    env = _env(container)
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    assert yaml.safe_load(_config(spec, container))["agent"]["hostname"] == "${NODE_NAME}"
    assert env["NVIDIA_VISIBLE_DEVICES"]["value"] == "all"
    assert "utility" in env["NVIDIA_DRIVER_CAPABILITIES"]["value"]  # NVML
    assert "nvidia.com/gpu" not in str(container["resources"]), "watching GPUs must not take one"
    assert any("gpu" in k for k in spec["nodeSelector"])
    assert any(t["key"] == "nvidia.com/gpu" for t in spec["tolerations"])


def test_the_daemonset_runs_the_gpu_image_and_the_others_the_default_one():
    """Both are built from the Dockerfile by deploy/build-image.sh: <name>:<version> (the
    default target) and <name>:<version>-gpu (target gpu, with NVML bindings)."""
    from agent import __version__

    images = {f: c["image"] for f, _s, c in CONTAINERS}
    assert images.pop("daemonset.yaml") == f"mlwarden:{__version__}-gpu"
    assert set(images.values()) == {f"mlwarden:{__version__}"}, images


def test_pod_agents_are_named_by_their_pod_and_only_the_cluster_role_campaigns():
    for file, spec, container in CONTAINERS:
        raw = yaml.safe_load(_config(spec, container))
        scopes = {c.get("scope", "local") for c in raw.get("checks", [])}
        if file == "cluster.yaml":
            assert scopes == {"cluster"}
            deployment = next(d for f, d in workloads() if f == file)
            assert deployment["spec"]["replicas"] >= 2, "a standby to take over the lease"
        else:
            assert scopes == {"local"}, f"{file}: cluster checks belong in cluster.yaml"
        if file != "daemonset.yaml":
            assert raw["agent"]["hostname"] == "${POD_NAME}"
            assert _env(container)["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"


@pytest.mark.parametrize("file", ["sidecar.yaml", "daemonset.yaml"])
def test_agents_beside_models_and_gpus_know_their_node_from_the_downward_api(file):
    """The `node` label that links a GPU fault to a model's alerts (docs/alerting.md): the
    agent's node is $NODE_NAME, which these pods get from spec.nodeName, with no config."""
    from agent.node import this_node

    _f, spec, container = next(x for x in CONTAINERS if x[0] == file)
    assert _env(container)["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    text = _config(spec, container)
    env = {m.group(1): "x" for m in _VAR.finditer(text)} | {"NODE_NAME": "gpu-node-7"}
    env["MLWARDEN_HISTORY_URL"] = "postgresql+psycopg://mlwarden@postgres/mlwarden"
    config = parse_config(text, source=file, env=env)
    assert this_node(config.agent.node, env) == "gpu-node-7"


def test_the_sidecar_watches_its_own_pods_model_server():
    file, spec, container = next(x for x in CONTAINERS if x[0] == "sidecar.yaml")
    server = next(c for c in spec["containers"] if c is not container)
    server_ports = {p["containerPort"] for p in server["ports"]}
    for check in yaml.safe_load(_config(spec, container))["checks"]:
        host, _, port = check["url"].split("//")[1].partition(":")
        assert host in ("127.0.0.1", "localhost") and int(port.split("/")[0]) in server_ports


def _mebibytes(quantity: str) -> float:
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024}
    match = re.fullmatch(r"(\d+)(Ki|Mi|Gi)", quantity)
    assert match, f"memory {quantity!r}: use Ki/Mi/Gi"
    return int(match.group(1)) * units[match.group(2)]


def test_memory_requests_cover_the_agents_measured_rss(live_agent):
    proc, _port = live_agent
    with open(f"/proc/{proc.pid}/status") as f:
        rss_kib = int(next(line for line in f if line.startswith("VmRSS:")).split()[1])
    rss = rss_kib / 1024
    for file, _spec, container in CONTAINERS:
        resources = container["resources"]
        request = _mebibytes(resources["requests"]["memory"])
        limit = _mebibytes(resources["limits"]["memory"])
        assert request >= 1.5 * rss, f"{file}: request {request}Mi < 1.5 x measured RSS {rss:.0f}Mi"
        assert limit >= 2 * request, f"{file}: limit {limit}Mi leaves no room for bursts"
        assert "cpu" in resources["requests"]
