"""How this agent was installed, so that a message about a missing extra gives a command that works.

mlwarden is not on the package index: ``pip install 'mlwarden[gpu]'`` fails for everyone. What
works depends on how the agent got where it runs:

- **the container image** (its Dockerfile sets ``MLWARDEN_INSTALL=image``): extras are chosen
  when the image is built; NVML comes with the GPU variant (``--target gpu``);
- **a source checkout** (an editable install, or the tree on ``sys.path``):
  ``pip install -e '<checkout>[gpu]'``;
- **installed from a local directory** (``pip install .``; pip records where, PEP 610):
  ``pip install '<directory>[gpu]'`` while that directory still holds the source;
- **otherwise** (a wheel copied around): the extra's own requirements, read from the installed
  metadata.

Each command runs pip through this environment's interpreter, so it installs where the agent runs.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

__all__ = ["Install", "detect", "extra_hint"]

DIST = "mlwarden"
ENV_INSTALL = "MLWARDEN_INSTALL"
# what each extra brings, for the sentence around the command
EXTRA_PURPOSE = {
    "gpu": "NVML support (nvidia-ml-py)",
    "postgres": "the PostgreSQL driver (psycopg)",
    "charts": "chart drawing (matplotlib)",
}
_EXTRA_MARKER = re.compile(r"""extra\s*==\s*["']([^"']+)["']""")


@dataclass(frozen=True)
class Install:
    """``kind``: image, checkout, directory or package; ``source``: the directory, if any;
    ``editable``: pip links to the source instead of copying it (``pip install -e``)."""

    kind: str
    source: Path | None = None
    editable: bool = False


def _checkout(package_dir: Path) -> Path | None:
    """The source tree the running code is imported from, if it is one of ours."""
    root = package_dir.parent
    cfg = configparser.ConfigParser()
    try:
        cfg.read(root / "setup.cfg")
    except configparser.Error:
        return None
    return root if cfg.get("metadata", "name", fallback="") == DIST else None


def _recorded_directory() -> tuple[Path, bool] | None:
    """The local directory pip installed this distribution from (PEP 610), while it still holds
    the source, and whether the install is editable."""
    for dist in metadata.distributions(name=DIST):
        text = dist.read_text("direct_url.json")
        if not text:
            continue
        try:
            url = json.loads(text)
        except ValueError:
            continue
        if isinstance(url.get("dir_info"), dict) and str(url.get("url", "")).startswith("file://"):
            path = Path(url["url"].removeprefix("file://"))
            if (path / "setup.cfg").is_file():
                return path, bool(url["dir_info"].get("editable"))
    return None


def detect(env: Mapping[str, str] | None = None, package_dir: Path | None = None) -> Install:
    """How the running agent was installed (see the module docstring)."""
    env = os.environ if env is None else env
    if env.get(ENV_INSTALL) == "image":
        return Install("image")
    tree = _checkout(package_dir or Path(__file__).resolve().parent)
    if tree is not None:
        return Install("checkout", tree, editable=True)
    recorded = _recorded_directory()
    if recorded is not None:
        return Install("directory", recorded[0], editable=recorded[1])
    return Install("package")


def _extra_requirements(extra: str) -> list[str]:
    try:
        requires = metadata.requires(DIST) or []
    except metadata.PackageNotFoundError:
        return []
    out = []
    for line in requires:
        spec, _, marker = line.partition(";")
        if extra in _EXTRA_MARKER.findall(marker):
            out.append(spec.strip())
    return out


def extra_hint(extra: str, install: Install | None = None) -> str:
    """One sentence saying how to add ``extra`` to this agent, right for how it was installed."""
    install = install or detect()
    what = EXTRA_PURPOSE.get(extra, f"the {extra} extra")
    pip = f"{shlex.quote(sys.executable)} -m pip install"
    if install.kind == "image":
        if extra == "gpu":
            return (f"this image has no {what}: on GPU nodes run the GPU image instead (built "
                    "with `--target gpu`, as deploy/daemonset.yaml uses; see docs/deployment.md)")
        return (f"this image was built without {what}: rebuild it with the extra in "
                f"`--build-arg EXTRAS=` (comma-separated, e.g. postgres,{extra}; see docs/deployment.md)")
    if install.source is not None:
        where = "the checkout" if install.kind == "checkout" else "its source"
        editable = "-e " if install.editable else ""
        target = shlex.quote(f"{install.source}[{extra}]")
        return f"install {what} from {where}: {pip} {editable}{target}"
    requirements = _extra_requirements(extra)
    if requirements:
        return f"install {what}: {pip} {' '.join(shlex.quote(r) for r in requirements)}"
    return (f"install {what} into this environment (mlwarden is not on the package index: from "
            f"a clone, {pip} '.[{extra}]')")
