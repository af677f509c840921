"""Helpers shared by the CLI commands: loading the config and printing tables."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from agent.config import AgentConfig, default_config, load_config
from agent.errors import ConfigError

__all__ = ["add_config_arg", "config_from_args", "print_table", "die"]

ENV_CONFIG = "MLWARDEN_CONFIG"


def add_config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c", "--config", metavar="FILE", default=os.environ.get(ENV_CONFIG),
        help=f"config file (default: ${ENV_CONFIG}, else the embedded defaults)",
    )


def config_from_args(args: argparse.Namespace) -> AgentConfig:
    """The config named by --config, or the embedded defaults; exits 2 on a bad file."""
    if not args.config:
        return default_config()
    try:
        return load_config(args.config)
    except ConfigError as exc:
        die(str(exc), code=2)
        raise  # unreachable


def die(message: str, code: int = 1) -> None:
    print(f"mlwarden: {message}", file=sys.stderr)
    raise SystemExit(code)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]], out=sys.stdout) -> None:
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip(), file=out)
        if n == 0:
            print("  ".join("-" * w for w in widths), file=out)
