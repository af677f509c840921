"""What can be checked of the image without building it: the bases, the two targets, the
user, the entrypoint and its arguments, the health check (run for real against a live agent),
and that the build context holds what the build copies and is enough to build the package.
tests/image/ builds both targets and runs them."""

from __future__ import annotations

import configparser
import re
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from agent.cli import build_parser
from agent.config import AgentSection
from tests.fleet.deploy_files import REPO, build_args, dockerfile, dockerignored, env_of, final_stage, stages
from tests.support.procs import free_port

INSTRUCTIONS = dockerfile()
FINAL = final_stage(INSTRUCTIONS)
TARGETS = ("agent", "gpu")  # the default target first: deploy/build-image.sh builds both


def _one(keyword: str, stage: list = FINAL):  # type: ignore[no-untyped-def]
    found = [i for i in stage if i.keyword == keyword]
    assert len(found) == 1, f"expected one {keyword} in the final stage, found {len(found)}"
    return found[0]


def _setup_cfg() -> configparser.ConfigParser:
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    return cfg


def _exposed_port() -> int:
    return int(_one("EXPOSE").args.split("/")[0])


def test_every_stage_stands_on_the_base_image_a_slim_python_by_default():
    args = build_args(INSTRUCTIONS)
    version = args["PYTHON_VERSION"]
    required = _setup_cfg()["options"]["python_requires"].removeprefix(">=")
    assert tuple(map(int, version.split("."))) >= tuple(map(int, required.split(".")))
    default = args["BASE_IMAGE"].replace("${PYTHON_VERSION}", version)
    assert re.fullmatch(r"python:\d+\.\d+-slim(-\w+)?", default), default
    named = stages(INSTRUCTIONS)
    for name, stage in named.items():
        parent = stage[0].args.split()[0]
        assert parent == "${BASE_IMAGE}" or list(named).index(parent) < list(named).index(name), \
            f"stage {name} stands on {parent}: the base image or an earlier stage"


def test_the_default_target_is_the_agent_and_the_gpu_target_adds_only_nvml():
    named = stages(INSTRUCTIONS)
    assert list(named)[-1] == "agent", "a build without --target gives the agent image"
    assert set(TARGETS) <= set(named)
    agent, gpu = final_stage(INSTRUCTIONS, "agent"), final_stage(INSTRUCTIONS, "gpu")
    # the same image apart from where /opt/mlwarden comes from
    def same(image: list) -> list:  # type: ignore[type-arg]
        return [i for i in image
                if i.keyword != "FROM" and not (i.keyword == "COPY" and "/opt/mlwarden" in i.args)]

    assert same(agent) == same(gpu)
    copied = {t: next(i.args.split()[0] for i in final_stage(INSTRUCTIONS, t) if "/opt/mlwarden" in i.args
                      and i.keyword == "COPY") for t in TARGETS}
    assert copied == {"agent": "--from=build", "gpu": "--from=build-gpu"}
    gpu_build = " ".join(i.args for i in named["build-gpu"] if i.keyword == "RUN")
    assert named["build-gpu"][0].args.split()[0] == "build" and "--only gpu" in gpu_build


def test_requirements_py_lists_what_setup_cfg_declares():
    """deploy/requirements.py feeds the dependency layer; the installed metadata is the judge."""
    declared = [r for r in metadata.requires("mlwarden") or []]

    def norm(spec: str) -> str:
        return str(Requirement(spec))

    def listed(*args: str) -> set[str]:
        done = subprocess.run([sys.executable, str(REPO / "deploy" / "requirements.py"), "--source",
                               str(REPO), *args], capture_output=True, text=True, timeout=30, check=True)
        return {norm(r) for r in done.stdout.split()}

    def of(extra: str | None) -> set[str]:
        return {norm(r.split(";")[0]) for r in declared
                if (extra is None and "extra ==" not in r) or f'extra == "{extra}"' in r}

    assert listed("--extras", "postgres") == of(None) | of("postgres")
    assert listed("--only", "gpu") == of("gpu")
    assert {norm("setuptools>=68"), "wheel"} <= listed("--build")
    bad = subprocess.run([sys.executable, str(REPO / "deploy" / "requirements.py"), "--source", str(REPO),
                          "--only", "gpus"], capture_output=True, text=True, timeout=30)
    assert bad.returncode != 0 and "no extra gpus" in bad.stderr


@pytest.mark.parametrize("target", TARGETS)
def test_the_image_runs_as_a_created_non_root_user(target):
    image = final_stage(INSTRUCTIONS, target)
    user = _one("USER", image).args
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0, "USER must be a numeric non-root uid (runAsNonRoot)"
    created = " ".join(i.args for i in image if i.keyword == "RUN")
    assert f"--uid {uid}" in created and (not gid or f"--gid {gid}" in created)
    # USER comes after everything that needs root: the files the agent runs stay root's
    keywords = [i.keyword for i in image]
    assert keywords.index("USER") > max(n for n, k in enumerate(keywords) if k in ("RUN", "COPY"))


def test_the_entrypoint_is_mlwarden_run_with_arguments_it_accepts():
    entry = _one("ENTRYPOINT").exec_form()
    cmd = _one("CMD").exec_form()
    assert entry == ["mlwarden", "run"]
    scripts = _setup_cfg()["options.entry_points"]["console_scripts"]
    assert re.search(r"^\s*mlwarden\s*=\s*agent\.cli:main\s*$", scripts, re.M)
    args = build_parser().parse_args([*entry[1:], *cmd])
    assert args.command == "run"
    section = AgentSection(listen=args.listen)
    assert section.listen_host == "0.0.0.0", "in a container the probes come from outside"
    assert section.listen_port == _exposed_port()


def test_the_config_comes_from_a_mount_and_the_extras_exist():
    env = env_of(FINAL)
    assert env["MLWARDEN_CONFIG"].startswith("/etc/mlwarden/")
    extras = _setup_cfg()["options.extras_require"]
    for extra in build_args(INSTRUCTIONS)["EXTRAS"].split(","):
        assert extra in extras, f"EXTRAS names {extra!r}, which setup.cfg does not define"


def test_everything_copied_is_in_the_build_context():
    for ins in INSTRUCTIONS:
        if ins.keyword != "COPY" or ins.args.startswith("--from"):
            continue
        *sources, _dest = ins.args.split()
        for source in sources:
            assert (REPO / source).exists(), f"COPY {source}: missing from the repository"
            assert not dockerignored(source), f"COPY {source}: excluded by .dockerignore"
    assert dockerignored(".venv/bin/python") and dockerignored("tests/conftest.py")
    assert dockerignored("mlwarden.db") and dockerignored("agent/__pycache__/app.cpython-311.pyc")


def _healthcheck_code(port: int) -> list[str]:
    cmd = _one("HEALTHCHECK").exec_form()
    assert cmd is not None and cmd[0] == "python"
    expected = f"http://127.0.0.1:{_exposed_port()}/healthz"
    assert expected in cmd[-1], f"the health check must GET {expected}"
    return [sys.executable, *cmd[1:-1], cmd[-1].replace(expected, f"http://127.0.0.1:{port}/healthz")]


def test_the_healthcheck_command_passes_on_a_live_agent_and_fails_without_one(live_agent):
    _proc, port = live_agent
    ok = subprocess.run(_healthcheck_code(port), capture_output=True, timeout=30)
    assert ok.returncode == 0, ok.stderr
    down = subprocess.run(_healthcheck_code(free_port()), capture_output=True, timeout=30)
    assert down.returncode != 0


@pytest.mark.slow
def test_the_build_context_alone_builds_a_complete_wheel(tmp_path):
    """What `pip install .` does in the build stage, on exactly the files the build copies."""
    context = tmp_path / "context"
    for ins in INSTRUCTIONS:
        if ins.keyword == "COPY" and not ins.args.startswith("--from"):
            *sources, _dest = ins.args.split()
            for source in sources:
                for path in [REPO / source, *(REPO / source).rglob("*")]:
                    rel = path.relative_to(REPO)
                    if path.is_file() and not dockerignored(str(rel)):
                        (context / rel).parent.mkdir(parents=True, exist_ok=True)
                        (context / rel).write_bytes(path.read_bytes())
    out = tmp_path / "wheel"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out),
                            str(context)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-2000:]
    wheel = next(Path(out).glob("mlwarden-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    # every source and data file of the two packages ships (a folder without __init__.py or a
    # data file missing from package_data would make the installed agent fail at import)
    shipped = {str(p.relative_to(REPO)) for top in ("agent", "checks") for p in (REPO / top).rglob("*")
               if p.is_file() and "__pycache__" not in p.parts}
    missing = sorted(shipped - names)
    assert not missing, f"not in the wheel built from the image's context: {missing}"
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "mlwarden = agent.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()
