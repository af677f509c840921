"""What can be checked of the image without a Docker engine: the base, the user, the
entrypoint and its arguments, the health check (run for real against a live agent), and
that the build context holds what the build copies and is enough to build the package."""

from __future__ import annotations

import configparser
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from agent.cli import build_parser
from agent.config import AgentSection
from tests.fleet.deploy_files import REPO, build_args, dockerfile, dockerignored, env_of, final_stage
from tests.support.procs import free_port

INSTRUCTIONS = dockerfile()
FINAL = final_stage(INSTRUCTIONS)


def _one(keyword: str):  # type: ignore[no-untyped-def]
    found = [i for i in FINAL if i.keyword == keyword]
    assert len(found) == 1, f"expected one {keyword} in the final stage, found {len(found)}"
    return found[0]


def _setup_cfg() -> configparser.ConfigParser:
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    return cfg


def _exposed_port() -> int:
    return int(_one("EXPOSE").args.split("/")[0])


def test_every_stage_is_a_slim_python_that_the_package_supports():
    args = build_args(INSTRUCTIONS)
    version = args["PYTHON_VERSION"]
    required = _setup_cfg()["options"]["python_requires"].removeprefix(">=")
    assert tuple(map(int, version.split("."))) >= tuple(map(int, required.split(".")))
    for ins in INSTRUCTIONS:
        if ins.keyword == "FROM":
            image = ins.args.split()[0].replace("${PYTHON_VERSION}", version)
            assert re.fullmatch(r"python:\d+\.\d+-slim(-\w+)?", image), image


def test_the_image_runs_as_a_created_non_root_user():
    user = _one("USER").args
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0, "USER must be a numeric non-root uid (runAsNonRoot)"
    created = " ".join(i.args for i in FINAL if i.keyword == "RUN")
    assert f"--uid {uid}" in created and (not gid or f"--gid {gid}" in created)
    # USER comes after everything that needs root, and before the entrypoint
    keywords = [i.keyword for i in FINAL]
    assert keywords.index("USER") > max(n for n, k in enumerate(keywords) if k in ("RUN", "COPY"))
    assert keywords.index("USER") < keywords.index("ENTRYPOINT")


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
