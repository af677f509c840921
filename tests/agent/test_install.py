"""Install hints that fit how the agent was installed (agent/install.py).

mlwarden is not on the package index, so the hint is never `pip install 'mlwarden[gpu]'`.
The checkout case is this very test run (the suite runs from an editable install); the
others are made by changing what the module reads: the image's environment variable, the
package's location, and pip's record of where it installed from (PEP 610's direct_url.json,
whose published shape the fake distribution below follows).
"""

from __future__ import annotations

import configparser
import json
import shlex
import sys
from pathlib import Path

import pytest

from agent import install
from agent.install import Install, detect, extra_hint

REPO = Path(__file__).resolve().parents[2]
PIP = f"{shlex.quote(sys.executable)} -m pip install"
ELSEWHERE = Path("/opt/somewhere/site-packages/agent")  # an installed copy, not a checkout


class _Dist:
    """A distribution as importlib.metadata gives it, with pip's direct_url.json."""

    def __init__(self, direct_url: dict | None) -> None:
        self._text = None if direct_url is None else json.dumps(direct_url)

    def read_text(self, name: str) -> str | None:
        return self._text if name == "direct_url.json" else None


@pytest.fixture
def recorded(monkeypatch):
    def use(direct_url: dict | None) -> None:
        monkeypatch.setattr(install.metadata, "distributions", lambda name: [_Dist(direct_url)])
    return use


def test_from_the_checkout_the_hint_installs_the_extra_from_it_into_this_environment():
    found = detect(env={})
    assert found == Install("checkout", REPO, editable=True)
    hint = extra_hint("gpu", found)
    assert hint.endswith(f"{PIP} -e '{REPO}[gpu]'"), hint
    assert "nvidia-ml-py" in hint and "mlwarden[gpu]" not in hint


def test_in_the_image_the_hint_names_the_gpu_image():
    found = detect(env={"MLWARDEN_INSTALL": "image"})
    assert found == Install("image")
    hint = extra_hint("gpu", found)
    assert "GPU image" in hint and "--target gpu" in hint and "deploy/daemonset.yaml" in hint
    assert "pip" not in hint
    assert "--build-arg EXTRAS=" in extra_hint("postgres", found)


def test_installed_from_a_directory_the_hint_reinstalls_from_it(recorded, tmp_path):
    (tmp_path / "setup.cfg").write_text("[metadata]\nname = mlwarden\n")
    recorded({"url": tmp_path.as_uri(), "dir_info": {}})
    found = detect(env={}, package_dir=ELSEWHERE)
    assert found == Install("directory", tmp_path, editable=False)
    assert extra_hint("gpu", found).endswith(f"{PIP} {shlex.quote(f'{tmp_path}[gpu]')}")


def test_a_directory_that_no_longer_holds_the_source_falls_back_to_the_requirements(recorded, tmp_path):
    recorded({"url": (tmp_path / "gone").as_uri(), "dir_info": {}})
    found = detect(env={}, package_dir=ELSEWHERE)
    assert found == Install("package")


WHEEL_URL = {"url": "https://example.invalid/mlwarden-0.1.0-py3-none-any.whl", "archive_info": {}}


@pytest.mark.parametrize("direct_url", [None, WHEEL_URL])
def test_from_a_wheel_the_hint_installs_the_extras_own_requirements(recorded, direct_url):
    recorded(direct_url)
    found = detect(env={}, package_dir=ELSEWHERE)
    assert found == Install("package")
    # read from the installed metadata: what setup.cfg declares for the extra
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    for extra in ("gpu", "postgres"):
        wanted = " ".join(shlex.quote(r) for r in cfg["options.extras_require"][extra].split())
        assert extra_hint(extra, found).endswith(f"{PIP} {wanted}")
    assert extra_hint("gpu", found).startswith("install NVML support (nvidia-ml-py): ")
