"""The shipped manifests are scrapable as deployed: the ``prometheus.io`` annotations name the
port of the token-free metrics listener that each pod's mounted config turns on, while the
main listener keeps its token. (What those endpoints answer is in test_prometheus_exposition.py; a real Prometheus runs
the scrape job verbatim in test_prometheus_airflow.py.)"""

from __future__ import annotations

from pathlib import PurePosixPath

import pytest
import yaml

from agent.config import parse_config
from tests.fleet.deploy_files import (
    agent_containers,
    configmap,
    dockerfile,
    env_of,
    final_stage,
    mounted_config_key,
    secret_keys,
    workloads,
)
from tests.support.procs import REPO

CONTAINERS = agent_containers()
IDS = [f"{f}:{c['name']}" for f, _s, c in CONTAINERS]
CONFIG_PATH = PurePosixPath(env_of(final_stage(dockerfile()))["MLWARDEN_CONFIG"])


def _pod_annotations(file: str) -> dict[str, str]:
    doc = next(d for f, d in workloads() if f == file)
    return doc["spec"]["template"]["metadata"].get("annotations", {})


@pytest.mark.parametrize("file,spec,container", CONTAINERS, ids=IDS)
def test_annotations_point_at_the_token_free_metrics_listener(file, spec, container):
    notes = _pod_annotations(file)
    assert notes["prometheus.io/scrape"] == "true" and notes["prometheus.io/path"] == "/metrics"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert int(notes["prometheus.io/port"]) == ports["metrics"]
    key = mounted_config_key(spec, container, str(CONFIG_PATH.parent), CONFIG_PATH.name)
    text = configmap()[key]
    config = parse_config(text, source=key, env={v: "x" for v in (
        "MLWARDEN_HISTORY_URL", "POD_NAME", "POD_NAMESPACE", "NODE_NAME", "MLWARDEN_AUTH_TOKEN",
        "AIRFLOW_USER", "AIRFLOW_PASSWORD")} | {"MLWARDEN_HISTORY_URL": "sqlite:///x.db"})
    assert config.exporters.prometheus.metrics_listen == ("0.0.0.0", ports["metrics"])
    # the main listener keeps /status (and its own /metrics) behind the token
    assert config.agent.auth_token is not None
    assert config.agent.listen_port == ports["mlwarden"] != ports["metrics"]
    assert "MLWARDEN_AUTH_TOKEN" in secret_keys("mlwarden-secrets")


def test_the_cluster_service_exposes_the_metrics_port():
    service = next(d for f, d in _docs("cluster.yaml") if d["kind"] == "Service")
    assert {"name": "metrics", "port": 9465, "targetPort": "metrics"} in service["spec"]["ports"]


def _docs(file: str) -> list[tuple[str, dict]]:
    return [(file, d) for d in yaml.safe_load_all((REPO / "deploy" / file).read_text()) if d]
