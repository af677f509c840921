"""The ``mlwarden`` command: one module per command group, each adding its subparsers.

A command group module exposes ``register(subparsers)``; each subcommand sets ``func``
to a callable taking the parsed args and returning the exit code.
"""

from __future__ import annotations

import argparse  # noqa: F401 - the parsers' types
import sys
from collections.abc import Sequence

from agent import __version__
from agent.cli import (
    alerts_cmd,
    check_cmd,
    config_cmd,
    dashboards_cmd,
    history_cmd,
    report_cmd,
    routes_cmd,
    rules_cmd,
    run_cmd,
    silence_cmd,
    status_cmd,
)
from agent.cli.common import Parser
from agent.cli.exitcodes import INTERRUPTED

__all__ = ["main", "build_parser"]

COMMAND_GROUPS = [run_cmd, check_cmd, config_cmd, status_cmd, silence_cmd, routes_cmd, history_cmd,
                  alerts_cmd, rules_cmd, dashboards_cmd, report_cmd]


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="mlwarden",
        description="Monitoring and alerting agent for ML pipelines: model endpoints, "
        "Airflow DAGs and GPU nodes, exported to Datadog or Prometheus, alerted to Slack.",
        epilog="Exit codes: 0 OK, 1 WARNING (check) or a failed command, 2 CRITICAL and "
        "3 UNKNOWN (check only), 64 usage error, 65 data error, 78 config error.",
    )
    parser.add_argument("--version", action="version", version=f"mlwarden {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for group in COMMAND_GROUPS:
        group.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return INTERRUPTED
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
