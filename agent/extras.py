"""Optional extras (``charts``, ``gpu``, ``postgres``) and how to install one, said right for
how this copy of mlwarden was installed.

mlwarden is installed from a clone (``pip install .``) or a wheel; pip records where it came
from (PEP 610, ``direct_url.json``). A hint that says ``pip install 'mlwarden[charts]'`` to
someone who installed from a clone sends them to a package index that may not have it, so
the hint names the directory they installed from when pip recorded one.
"""

from __future__ import annotations

import importlib.util
import json
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from urllib.parse import unquote, urlparse

__all__ = ["available", "install_hint"]

DIST = "mlwarden"


def available(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it (matplotlib takes a second)."""
    return importlib.util.find_spec(module) is not None


@lru_cache(maxsize=None)
def _source() -> str | None:
    """The clone this code runs from, or the local directory pip installed it from."""
    root = Path(__file__).resolve().parents[1]
    if (root / "setup.cfg").is_file() and (root / "checks").is_dir():  # running from a clone
        return str(root)
    try:
        text = metadata.distribution(DIST).read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        return None
    if not text:
        return None
    try:
        url = json.loads(text).get("url", "")
    except ValueError:
        return None
    parsed = urlparse(url)
    return unquote(parsed.path) if parsed.scheme == "file" and "dir_info" in json.loads(text) else None


def install_hint(extra: str) -> str:
    """The command that adds ``extra`` to this install."""
    where = _source()
    if where:
        return f"pip install '{where}[{extra}]'"
    return f"pip install 'mlwarden[{extra}]'"
