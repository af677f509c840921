"""``mlwarden check NAME``: run one check instance once and print what it produced."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from agent.cli import exitcodes
from agent.cli.common import add_config_arg, config_from_args, config_origin, die, print_table
from agent.samples import CheckResult


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "check", help="run one check instance once and print its samples and status",
        description="Run one check instance once, the way `datadog-agent check` does, and "
        "print its samples and status. Exit code: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN; "
        "64 when no instance has that name, 78 when the config is invalid.",
    )
    p.add_argument("name", help="instance name from the config (`agent` is the self-check)")
    add_config_arg(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from agent.app import build_checks
    from agent.check import CheckContext
    from agent.node import this_node
    from agent.scheduler import add_meta_samples

    config = config_from_args(args)

    async def once() -> CheckResult:
        context = CheckContext(agent_tags=config.agent.tags, node=this_node(config.agent.node))
        try:
            checks = {c.name: c for c in build_checks(config, context)}
            if args.name not in checks:
                names = ", ".join(sorted(checks)) or "none"
                die(f"no check instance named {args.name!r} (have: {names}); config: "
                    f"{config_origin(args)}", code=exitcodes.USAGE)
            check = checks[args.name]
            result = await check.run()
            add_meta_samples(check, result)
            await check.close()
            return result
        finally:
            await context.close()

    result = asyncio.run(once())
    if args.json:
        doc = {
            "check": result.check, "type": result.check_type, "status": result.status.name,
            "message": result.message, "error": result.error, "duration": result.duration,
            "warnings": result.warnings,
            "samples": [{"metric": s.metric, "value": s.value, "kind": s.kind.value,
                         "tags": dict(s.tags), "timestamp": s.timestamp} for s in result.samples],
        }
        json.dump(doc, sys.stdout, indent=2)
        print()
    else:
        rows = [(s.metric, f"{s.value:g}", s.kind.value,
                 ",".join(f"{k}:{v}" for k, v in s.tags)) for s in result.samples]
        print_table(["METRIC", "VALUE", "KIND", "TAGS"], rows)
        print()
        print(f"{result.check} ({result.check_type}): {result.status.name}"
              f"{' - ' + result.message if result.message else ''}  [{result.duration * 1000:.1f} ms]")
        for warning in result.warnings:
            print(f"warning: {warning}")
    return int(result.status)
