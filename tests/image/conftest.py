"""The image, built once per test session with deploy/build-image.sh, the way docs/deployment.md
tells a user without Docker to build it: buildah, from this Dockerfile, on a base made here from
Debian packages (no container registry is reachable here; the Dockerfile's default stays
python:*-slim for users).

Where buildah is not installed (it needs root and apt: ``tests/peers/install-buildah.sh``, which
``make test`` runs) the image tests are skipped and say so; under CI (``$CI`` set) that is a
failure instead, never a skip. Layers are cached in ``$MLWARDEN_PEERS/buildah`` across sessions:
a code change rebuilds only the code's layers, offline.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.procs import PEERS, REPO

STORAGE_CONF = PEERS / "buildah" / "storage.conf"
HOST_CA_BUNDLE = Path(os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt")
BUILD_TIMEOUT = 1500  # a clean machine: debootstrap, every dependency, both variants


def _unavailable() -> str | None:
    if shutil.which("buildah") is None or shutil.which("debootstrap") is None:
        return ("buildah/debootstrap are not installed "
                "(run tests/peers/install-buildah.sh as root, or `make peers`)")
    if os.geteuid() != 0:
        return "building and running the image here needs root (buildah with chroot isolation, unshare)"
    if not STORAGE_CONF.is_file():
        return f"{STORAGE_CONF} is missing (tests/peers/install-buildah.sh writes it)"
    return None


def _remove_orphaned_containers() -> None:
    """Working containers of test sessions that died before removing them (their names end
    with the PID of their session, tests/image/container.py)."""
    done = subprocess.run(["buildah", "containers", "--format", "{{.ContainerName}}"],
                          capture_output=True, text=True, timeout=60)
    for name in done.stdout.split():
        pid = name.rsplit("-", 1)[-1]
        if name.startswith("mlwarden-test-") and pid.isdigit() and not Path(f"/proc/{pid}").exists():
            subprocess.run(["buildah", "rm", name], capture_output=True, timeout=60)


@pytest.fixture(scope="session")
def images(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """``{"agent": name, "gpu": name}`` of the two images built from this tree."""
    why = _unavailable()
    if why:
        if os.environ.get("CI"):
            pytest.fail(f"the image tests must run in CI: {why}", pytrace=False)
        pytest.skip(f"image not built: {why}")
    env = pytest.MonkeyPatch()
    env.setenv("CONTAINERS_STORAGE_CONF", str(STORAGE_CONF))
    env.setenv("BUILDAH_ISOLATION", "chroot")
    # one name per checkout: concurrent sessions of other checkouts never see this tree's image
    tag = f"localhost/mlwarden-test:{hashlib.sha1(str(REPO).encode()).hexdigest()[:10]}"
    log = tmp_path_factory.mktemp("image") / "build.log"
    cmd = [str(REPO / "deploy" / "build-image.sh"), "--base", "debian", "--tag", tag,
           "--cache-tag", f"{tag}-cache"]
    if HOST_CA_BUNDLE.is_file():  # where a proxy re-signs TLS, pip in the build trusts what the host does
        cmd += ["--ca-bundle", str(HOST_CA_BUNDLE)]
    with open(PEERS / "buildah" / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time on this storage (and its pruning)
        _remove_orphaned_containers()
        # drop what earlier builds left behind and no tag or container uses any more (the
        # dependency layers stay: --cache-tag names them)
        subprocess.run(["buildah", "rmi", "--prune"], capture_output=True, timeout=300)
        started = time.monotonic()
        with open(log, "w") as out:
            done = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, timeout=BUILD_TIMEOUT)
        took = time.monotonic() - started
    if done.returncode != 0:
        env.undo()
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
        pytest.fail(f"deploy/build-image.sh exited {done.returncode} after {took:.0f}s:\n{tail}",
                    pytrace=False)
    print(f"\nimage built in {took:.0f}s: {tag}, {tag}-gpu (log: {log})")
    yield {"agent": tag, "gpu": f"{tag}-gpu"}
    env.undo()
