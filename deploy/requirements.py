"""Print the requirements that setup.cfg and pyproject.toml declare, one per line, for the image build.

The Dockerfile installs them in a layer of their own before it copies the code, so a change to
the code rebuilds in seconds, offline, instead of downloading every dependency again; setup.cfg
and pyproject.toml stay the one place that names them. Standard library only (Python 3.11+):
it runs in the bare base image.

    python3 requirements.py --extras postgres --build   # install_requires, the postgres extra,
                                                        # and what building the package needs
    python3 requirements.py --only gpu                  # the gpu extra alone
"""

from __future__ import annotations

import argparse
import configparser
import tomllib
from pathlib import Path


def requirements(source: Path, extras: list[str], base: bool = True, build: bool = False) -> list[str]:
    cfg = configparser.ConfigParser()
    if not cfg.read(source / "setup.cfg"):
        raise SystemExit(f"requirements.py: cannot read {source / 'setup.cfg'}")
    declared = cfg["options.extras_require"]
    unknown = [e for e in extras if e not in declared]
    if unknown:
        raise SystemExit(f"requirements.py: setup.cfg defines no extra {', '.join(unknown)} "
                         f"(it has: {', '.join(declared)})")
    blocks = ([cfg["options"]["install_requires"]] if base else []) + [declared[e] for e in extras]
    out = [line.strip() for block in blocks for line in block.splitlines() if line.strip()]
    if build:
        with open(source / "pyproject.toml", "rb") as f:
            out += tomllib.load(f)["build-system"]["requires"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=Path("."), help="the folder with setup.cfg")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--extras", default="", help="comma-separated extras, with install_requires")
    group.add_argument("--only", default="", help="comma-separated extras, without install_requires")
    parser.add_argument("--build", action="store_true", help="add pyproject.toml's build requirements")
    args = parser.parse_args()
    names = [e.strip() for e in (args.only or args.extras).split(",") if e.strip()]
    print("\n".join(requirements(args.source, names, base=not args.only, build=args.build)))


if __name__ == "__main__":
    main()
