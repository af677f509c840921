"""What `pip install .` ships: every source folder must be a package, or a non-editable
install (the container image, the GPU device check) silently lacks it and `mlwarden` fails
at import (found when agent/notify had no __init__.py)."""

from __future__ import annotations

from pathlib import Path

from setuptools import find_packages

ROOT = Path(__file__).resolve().parents[1]


def test_every_source_folder_is_shipped() -> None:
    shipped = set(find_packages(str(ROOT), include=["agent", "agent.*", "checks", "checks.*"]))
    folders = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for top in ("agent", "checks") for p in (ROOT / top).rglob("*.py")
        if "__pycache__" not in p.parts
    }
    assert folders - shipped == set(), "folders with modules but no __init__.py"
