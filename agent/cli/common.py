"""Helpers shared by the CLI commands: loading the config and printing tables."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from agent.cli import exitcodes
from agent.config import AgentConfig, default_config, load_config
from agent.errors import ConfigError

__all__ = ["Parser", "add_config_arg", "config_from_args", "config_origin", "print_table", "die"]

ENV_CONFIG = "MLWARDEN_CONFIG"


class Parser(argparse.ArgumentParser):
    """argparse with usage errors on exit code 64, not 2 (which `check` uses for CRITICAL)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(exitcodes.USAGE, f"{self.prog}: error: {message}\n")


def add_config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c", "--config", metavar="FILE", default=os.environ.get(ENV_CONFIG),
        help=f"config file (default: ${ENV_CONFIG}, else the embedded defaults)",
    )


def config_origin(args: argparse.Namespace) -> str:
    """Where the config came from, said in errors so a user sees which file was (not) read."""
    if getattr(args, "config", None):
        env = os.environ.get(ENV_CONFIG)
        how = f"${ENV_CONFIG}" if env and env == args.config else "--config"
        return f"{args.config} (from {how})"
    return (f"no config file (no -c/--config given and ${ENV_CONFIG} is not set), so the embedded "
            "defaults; pass one with -c FILE or set MLWARDEN_CONFIG")


def config_from_args(args: argparse.Namespace, *, warn: bool = False) -> AgentConfig:
    """The config named by --config, or the embedded defaults; exits 78 on a bad file.

    Its warnings are logged only with ``warn`` (`run`); `config validate` prints them, and
    the other commands would only repeat them on every call.
    """
    if not args.config:
        return default_config()
    try:
        return load_config(args.config, warn=warn)
    except ConfigError as exc:
        die(str(exc), code=exitcodes.CONFIG)
        raise  # unreachable


def die(message: str, code: int = exitcodes.FAILED) -> None:
    print(f"mlwarden: {message}", file=sys.stderr)
    raise SystemExit(code)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]], out=sys.stdout) -> None:
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip(), file=out)
        if n == 0:
            print("  ".join("-" * w for w in widths), file=out)
