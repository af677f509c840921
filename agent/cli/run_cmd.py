"""``mlwarden run``: the daemon."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from pydantic import ValidationError

from agent.cli import exitcodes
from agent.cli.common import add_config_arg, config_from_args, die

log = logging.getLogger("agent.cli")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run", help="run the agent until SIGTERM/SIGINT (SIGHUP reloads the config)",
        description="Run the agent. Without --config it runs on embedded defaults: SQLite "
        "history in ./mlwarden.db, /metrics on 127.0.0.1:9464, the self-check, the GPU check "
        "where a GPU is present, and the agent's own rules alerting to the console.",
    )
    add_config_arg(p)
    p.add_argument("--listen", metavar="HOST:PORT", help="override agent.listen")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from agent.allocator import tune_malloc

    tune_malloc()  # before any thread exists: the arena cap applies to arenas made later
    from agent.gcfreeze import tune_gc

    tune_gc()
    from agent.logs import setup_logging

    from agent.config import override_agent

    setup_logging()  # so what loading the config warns about is logged like the rest
    config = config_from_args(args, warn=True)
    overrides = {}
    if args.listen:
        overrides["listen"] = args.listen
    if args.log_level:
        overrides["log_level"] = args.log_level
    try:
        config = override_agent(config, overrides)
    except ValidationError as exc:
        die(f"--listen {args.listen!r}: " + "; ".join(
            e["msg"].removeprefix("Value error, ") for e in exc.errors()), code=exitcodes.USAGE)
    setup_logging(config.agent.log_level, config.agent.log_format)
    # a new or older SQLite schema is migrated in a child, so this process never imports
    # Alembic (~10 MiB of RSS kept for good); it runs while the agent's modules import
    from agent.history.migrations import finish_upgrade_child, start_upgrade_child

    migrating = start_upgrade_child(config.agent.history)
    from agent.app import run_agent

    finish_upgrade_child(migrating)
    loop = asyncio.new_event_loop()
    try:
        code = loop.run_until_complete(run_agent(config, args.config, overrides))
    finally:
        loop.close()
    # A check stuck in a blocking call (a hung driver, say) holds a worker thread that the
    # interpreter would wait for at exit; the agent has flushed everything, so leave now.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
