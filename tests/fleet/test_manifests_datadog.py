"""Unified service tagging in deploy/: the ``tags.datadoghq.com/env|service|version`` labels
on each workload and its pod template, reaching the agent container as ``DD_ENV``,
``DD_SERVICE`` and ``DD_VERSION`` through the downward API, the way Datadog documents it
(docs.datadoghq.com/getting_started/tagging/unified_service_tagging, Kubernetes); the
DogStatsD destination is the node's Datadog Agent (``status.hostIP``).

The last test resolves the downward API as the kubelet would and hands the result to the
agent's own precedence code, so the labels are what Datadog receives."""

from __future__ import annotations

import re

import pytest
import yaml

from agent import __version__
from agent.export.unified import UnifiedTags
from agent.samples import make_tags
from tests.fleet.deploy_files import agent_containers, configmap, mounted_config_key, workloads

KEYS = ("env", "service", "version")
LABEL = "tags.datadoghq.com/{}"
WORKLOADS = workloads()
CONTAINERS = agent_containers()
_FIELD = re.compile(r"^metadata\.labels\['([^']+)'\]$")


def _ids(items):  # type: ignore[no-untyped-def]
    return [f"{f}:{d['metadata']['name']}" for f, d in items]


@pytest.mark.parametrize("file,doc", WORKLOADS, ids=_ids(WORKLOADS))
def test_workload_and_pod_carry_the_three_labels_alike(file, doc):
    outer = doc["metadata"]["labels"]
    pod = doc["spec"]["template"]["metadata"]["labels"]
    for key in KEYS:
        label = LABEL.format(key)
        assert outer.get(label), f"{file}: the workload has no {label} label"
        assert pod.get(label) == outer[label], f"{file}: the pod template's {label} differs"
    selector = doc["spec"]["selector"]["matchLabels"]
    assert not any(k.startswith("tags.datadoghq.com/") for k in selector), \
        "a version in the selector would make every release a new workload"


def resolve(container: dict, pod_labels: dict) -> dict[str, str]:
    """The container's environment as the kubelet sets it from these labels (other
    downward-API fields resolve to placeholders)."""
    out = {}
    for item in container.get("env", []):
        if "value" in item:
            out[item["name"]] = item["value"]
            continue
        path = item["valueFrom"]["fieldRef"]["fieldPath"]
        match = _FIELD.match(path)
        out[item["name"]] = pod_labels[match.group(1)] if match else f"<{path}>"
    return out


@pytest.mark.parametrize("file,spec,container", CONTAINERS, ids=[f"{f}:{c['name']}" for f, _, c in CONTAINERS])
def test_the_agent_reads_them_through_the_downward_api(file, spec, container):
    env = {e["name"]: e for e in container["env"]}
    for var, key in (("DD_ENV", "env"), ("DD_SERVICE", "service"), ("DD_VERSION", "version")):
        assert env[var]["valueFrom"]["fieldRef"]["fieldPath"] == f"metadata.labels['{LABEL.format(key)}']"
    assert env["DD_AGENT_HOST"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.hostIP"
    assert env["DD_ENTITY_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.uid"


@pytest.mark.parametrize("file,spec,container", CONTAINERS, ids=[f"{f}:{c['name']}" for f, _, c in CONTAINERS])
def test_what_datadog_receives_is_what_the_labels_say(file, spec, container):
    doc = next(d for f, d in WORKLOADS if f == file)
    labels = doc["spec"]["template"]["metadata"]["labels"]
    env = resolve(container, labels)
    config = yaml.safe_load(configmap()[mounted_config_key(spec, container, "/etc/mlwarden", "mlwarden.yaml")])
    file_tags = config["agent"].get("tags") or {}
    unified = UnifiedTags(env, file_keys=file_tags)
    # a sample as a check of this pod would tag it, with a stale env from a hand-edited file
    sample = make_tags(file_tags, {"env": "dev", "check": "c"})
    sent = dict(unified.apply(sample))
    for key in KEYS:
        assert sent[key] == labels[LABEL.format(key)], (file, key, sent)
    if labels[LABEL.format("service")] == "mlwarden":  # the agent is the service: its release
        # the release, whichever image variant runs it (mlwarden:0.1.0 or mlwarden:0.1.0-gpu)
        image = container["image"].rsplit(":", 1)[1].removesuffix("-gpu")
        assert labels[LABEL.format("version")] == image == __version__
