"""Readers for the Dockerfile, .dockerignore and deploy/ manifests, shared by their tests."""

from __future__ import annotations

import fnmatch
import json
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str

    def exec_form(self) -> list[str] | None:
        """The JSON array of an exec-form instruction, or None for shell form."""
        text = self.args
        if self.keyword == "HEALTHCHECK":
            text = text[text.index("CMD") + 3:] if "CMD" in text else ""
        text = text.strip()
        return json.loads(text) if text.startswith("[") else None


def dockerfile(path: Path = REPO / "Dockerfile") -> list[Instruction]:
    """Instructions in order; continuation lines joined, comments dropped."""
    out: list[Instruction] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        out.append(Instruction(keyword.upper(), args.strip()))
    return out


def stages(instructions: list[Instruction]) -> dict[str, list[Instruction]]:
    """Each stage's own instructions (its FROM first), by name (unnamed: its index), in order."""
    out: dict[str, list[Instruction]] = {}
    current: list[Instruction] | None = None
    for ins in instructions:
        if ins.keyword == "FROM":
            words = ins.args.split()
            name = words[2] if len(words) > 2 and words[1].upper() == "AS" else str(len(out))
            current = out[name] = []
        if current is not None:
            current.append(ins)
    return out


def final_stage(instructions: list[Instruction], target: str | None = None) -> list[Instruction]:
    """What builds the image of ``target`` (default: the last stage, as a build without
    --target): the instructions of the stages it stands on, then its own, from the first FROM
    of another image."""
    named = stages(instructions)
    stage = named[target or list(named)[-1]]
    parent = stage[0].args.split()[0]
    return (final_stage(instructions, parent) if parent in named else []) + stage


def build_args(instructions: list[Instruction]) -> dict[str, str]:
    args = {}
    for ins in instructions:
        if ins.keyword == "ARG" and "=" in ins.args:
            key, _, value = ins.args.partition("=")
            args[key.strip()] = value.strip()
    return args


def env_of(stage: list[Instruction]) -> dict[str, str]:
    env: dict[str, str] = {}
    for ins in stage:
        if ins.keyword == "ENV":
            for token in shlex.split(ins.args):
                key, _, value = token.partition("=")
                env[key] = value
    return env


def dockerignored(relpath: str, path: Path = REPO / ".dockerignore") -> bool:
    """Whether Docker leaves ``relpath`` out of the build context: the last matching rule
    wins, and a rule matches a path when it matches the path or one of its parent folders
    (the subset of Docker's rules that our .dockerignore uses: ``**``, ``**/x``, ``!path``)."""
    parts = Path(relpath).parts
    prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    ignored = False
    for raw in path.read_text().splitlines():
        rule = raw.strip()
        if not rule or rule.startswith("#"):
            continue
        negate = rule.startswith("!")
        pattern = (rule[1:] if negate else rule).rstrip("/")
        if pattern == "**":
            hit = True
        elif pattern.startswith("**/"):
            hit = any(fnmatch.fnmatchcase(part, pattern[3:]) for part in parts)
        else:
            hit = any(fnmatch.fnmatchcase(prefix, pattern) for prefix in prefixes)
        if hit:
            ignored = not negate
    return ignored


def manifests() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in sorted(DEPLOY.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs.append((path.name, doc))
    return docs


def workloads() -> list[tuple[str, dict[str, Any]]]:
    return [(f, d) for f, d in manifests() if d["kind"] in ("Deployment", "DaemonSet", "StatefulSet")]


def agent_containers() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(file, pod spec, container) for every mlwarden container."""
    out = []
    for name, doc in workloads():
        spec = doc["spec"]["template"]["spec"]
        for container in spec["containers"]:
            if container["image"].split("/")[-1].startswith("mlwarden:"):
                out.append((name, spec, container))
    return out


def configmap() -> dict[str, str]:
    maps = [d for _, d in manifests() if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "mlwarden-config"]
    assert len(maps) == 1
    return maps[0]["data"]


def secret_keys(name: str) -> set[str]:
    for _, doc in manifests():
        if doc["kind"] == "Secret" and doc["metadata"]["name"] == name:
            return set(doc.get("stringData", {})) | set(doc.get("data", {}))
    raise AssertionError(f"no Secret {name!r} in deploy/")


def mounted_config_key(spec: dict[str, Any], container: dict[str, Any], mount_dir: str,
                       file_name: str) -> str:
    """The ConfigMap key that the container sees as ``mount_dir/file_name``."""
    mounts = {m["name"]: m for m in container.get("volumeMounts", [])}
    for volume in spec.get("volumes", []):
        mount = mounts.get(volume["name"])
        if mount and mount["mountPath"] == mount_dir and "configMap" in volume:
            assert volume["configMap"]["name"] == "mlwarden-config"
            for item in volume["configMap"]["items"]:
                if item["path"] == file_name:
                    return item["key"]
    raise AssertionError(f"nothing mounts {mount_dir}/{file_name} in container {container['name']}")
