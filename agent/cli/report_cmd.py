"""``mlwarden report cost``: what the GPUs cost per model, node and pipeline, with right-sizing.

Reads the history database like ``mlwarden history`` (never writes); the thresholds, prices
of smaller cards and the currency come from the config's ``cost:`` section.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from agent.cli.common import add_config_arg, config_from_args, die
from agent.durations import parse_duration

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="reports built from the stored history",
                       description="Reports built from the history the agents stored.")
    rsub = p.add_subparsers(dest="report_command", metavar="REPORT")
    rsub.required = True
    c = rsub.add_parser(
        "cost", help="GPU cost per model, node and pipeline run, with right-sizing advice",
        description="GPU cost per model (utilisation, memory, requests/s, cost per day and per "
        "1,000 predictions, a right-sizing recommendation), idle cost per node and GPU cost per "
        "pipeline run, over whole hours (docs/cost.md).")
    add_config_arg(c)
    c.add_argument("--db", metavar="URL", help="SQLAlchemy URL (default: agent.history of the config)")
    c.add_argument("--since", default="7d", help="period covered, ending at --until (default 7d)")
    c.add_argument("--until", default="0s",
                   help="end of the period: an age (2h, 1d) or a UTC date/time "
                   "(2026-12-07, 2026-12-07T09:00); rounded down to the hour (default: now)")
    c.add_argument("--format", default="table", choices=["table", "csv", "md", "png"])
    c.add_argument("-o", "--output", help="write to this file (required for png)")
    c.set_defaults(func=cost_cmd)


def cost_cmd(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from agent.cli.history_cmd import _reader
    from agent.cost.config import CostConfig
    from agent.cost.format import as_csv, as_markdown, as_table
    from agent.cost.report import build_report, hour_window

    if args.format == "png" and not args.output:
        die("--format png needs -o FILE", code=2)
    try:
        period = parse_duration(args.since)
        until = _until(args.until, time.time())
    except ValueError as exc:
        die(str(exc), code=2)
    if period <= 0:
        die("--since must be longer than zero", code=2)
    config = config_from_args(args)
    cost = config.cost or CostConfig()
    if config.cost is None:
        print("mlwarden: no cost: section in the config; default thresholds, no smaller-card prices",
              file=sys.stderr)
    reader = _reader(args)
    since, until = hour_window(until, period)
    try:
        report = build_report(reader, cost, since, until)
    except SQLAlchemyError as exc:
        die(f"cannot read the history: {getattr(exc, 'orig', None) or exc}", code=1)
    if args.format == "png":
        from agent.cost.chart import render_cost_chart

        data: bytes | str = render_cost_chart(report)
    else:
        data = {"table": as_table, "csv": as_csv, "md": as_markdown}[args.format](report)
    if args.output:
        try:
            out = Path(args.output)
            out.write_bytes(data) if isinstance(data, bytes) else out.write_text(data, encoding="utf-8")
        except OSError as exc:
            die(f"cannot write {args.output}: {exc.strerror or exc}", code=1)
        print(f"wrote {args.output}: {len(report.models)} models, {len(report.nodes)} nodes, "
              f"{len(report.pipelines)} pipelines")
    else:
        sys.stdout.write(data)  # type: ignore[arg-type]
    if report.empty:
        print("mlwarden: no cost data in this period: is `cost:` configured on the agents that "
              "read the GPUs (and did they run in it)?", file=sys.stderr)
        return 1
    return 0


def _until(text: str, now: float) -> float:
    """An age before now, or an ISO date/time (UTC unless it says otherwise)."""
    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    from datetime import datetime, timezone

    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"--until: expected an age like '1d' or a date like '2026-12-07T09:00', "
                         f"found {text!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()
