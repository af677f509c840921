"""``mlwarden config validate`` and ``mlwarden init``."""

from __future__ import annotations

import argparse
import sys
from importlib.resources import files
from pathlib import Path

from agent.cli import exitcodes
from agent.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="work with config files")
    csub = p.add_subparsers(dest="config_command", metavar="SUBCOMMAND")
    csub.required = True
    v = csub.add_parser(
        "validate", help="validate a config file; exit 0 when valid, 78 with every problem",
        description="Validate a config file the way `mlwarden run` would load it. Prints every "
        "problem with its key path; exit 0 when valid (warnings included), 78 otherwise.",
    )
    v.add_argument("file")
    v.set_defaults(func=validate)

    i = sub.add_parser("init", help="write a commented starter config",
                       description="Write a commented starter config file to edit.")
    i.add_argument("path", nargs="?", default="mlwarden.yaml", help="default: ./mlwarden.yaml")
    i.add_argument("--force", action="store_true", help="overwrite an existing file")
    i.set_defaults(func=init)


def validate(args: argparse.Namespace) -> int:
    from agent.config import config_warnings, draft_warnings, load_config

    try:
        config = load_config(args.file, warn=False)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        for warning in draft_warnings(args.file):
            print(f"  warning: {warning}", file=sys.stderr)
        return exitcodes.CONFIG
    warnings = config_warnings(config, args.file)
    n, r = len(config.checks), len(config.rules)
    counts = [_count(n, "check instance"), _count(r, "rule")]
    if warnings:
        counts.append(_count(len(warnings), "warning"))
    print(f"{args.file}: valid ({', '.join(counts)})")
    for warning in warnings:
        print(f"  warning: {warning}")
    return exitcodes.OK


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def starter_config() -> str:
    return files("agent").joinpath("data/agent.yaml.example").read_text(encoding="utf-8")


def init(args: argparse.Namespace) -> int:
    path = Path(args.path)
    if path.exists() and not args.force:
        print(f"mlwarden: {path} exists; use --force to overwrite it", file=sys.stderr)
        return exitcodes.USAGE
    path.write_text(starter_config(), encoding="utf-8")
    path.chmod(0o600)
    print(f"wrote {path}; check it with: mlwarden config validate {path}")
    return 0
