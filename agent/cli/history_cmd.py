"""``mlwarden history query|series|plot``: read the history database from a shell.

Reads the database named by the config (``agent.history``) or ``--db``; it never writes,
so it is safe next to a running agent (SQLite WAL lets readers and the writer overlap).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from agent.cli import exitcodes
from agent.cli.common import add_config_arg, config_from_args, config_origin, die, print_table
from agent.durations import format_duration, parse_duration

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    from agent.history.query import AGGREGATES

    p = sub.add_parser("history", help="query the metric history the agent stored",
                       description="Query the metric history in the agent's database.")
    hsub = p.add_subparsers(dest="history_command", metavar="SUBCOMMAND")
    hsub.required = True

    def common(q: argparse.ArgumentParser) -> None:
        add_config_arg(q)
        q.add_argument("--db", metavar="URL", help="SQLAlchemy URL (default: agent.history of the config)")
        q.add_argument("--tag", action="append", default=[], metavar="K=V",
                       help="only series with this tag (repeatable; all must match)")

    def window(q: argparse.ArgumentParser) -> None:
        q.add_argument("metric", help="metric name, e.g. mlwarden.endpoint.latency")
        q.add_argument("--since", default="1h", help="how far back: 15m, 6h, 7d (default 1h)")
        q.add_argument("--until", default=None, help="end of the window, as an age (default now)")
        q.add_argument("--step", default=None,
                       help="bucket size, e.g. 1m; picks the coarsest resolution that answers it "
                       "(default: raw points up to a day, 1m rollups up to a month, then 1h)")
        q.add_argument("--agg", default="avg", choices=list(AGGREGATES),
                       help="how each step is aggregated (default avg)")

    q = hsub.add_parser("query", help="points of one metric over a window",
                        description="Print the points of a metric's series over a window.")
    window(q)
    common(q)
    q.add_argument("--format", default="table", choices=["table", "csv", "json"])
    q.set_defaults(func=query_cmd)

    s = hsub.add_parser("series", help="list stored series",
                        description="List the stored series (metric and tags).")
    s.add_argument("metric", nargs="?", help="metric name or prefix (default: all)")
    common(s)
    s.add_argument("--format", default="table", choices=["table", "csv", "json"])
    s.set_defaults(func=series_cmd)

    pl = hsub.add_parser("plot", help="draw a metric's series as a PNG line chart",
                         description="Render a line chart of a metric (the renderer Slack alerts use).")
    window(pl)
    common(pl)
    pl.add_argument("-o", "--output", required=True, help="PNG file to write")
    pl.add_argument("--threshold", type=float, default=None, help="draw a horizontal threshold line")
    pl.set_defaults(func=plot_cmd)

    m = hsub.add_parser("migrate", help="create or upgrade the database schema (Alembic)",
                        description="Bring the history database to the current schema, as the "
                        "agent does at start (useful before rolling out to a shared PostgreSQL).")
    add_config_arg(m)
    m.add_argument("--db", metavar="URL", help="SQLAlchemy URL (default: agent.history of the config)")
    m.set_defaults(func=migrate_cmd)


# -- helpers ----------------------------------------------------------------------------
def _reader(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from sqlalchemy import inspect
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from agent.errors import StoreError
    from agent.history.db import make_engine
    from agent.history.query import HistoryReader

    config = config_from_args(args)
    url = args.db or config.agent.history
    try:
        parsed = make_url(url)
    except Exception:  # noqa: BLE001
        die(f"{url!r} is not a SQLAlchemy URL (e.g. sqlite:///mlwarden.db)", code=exitcodes.USAGE)
    shown = parsed.render_as_string(hide_password=True)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        if not Path(parsed.database).exists():
            where = "--db" if args.db else f"agent.history of {config_origin(args)}"
            die(f"no history database at {shown} (file {parsed.database} does not exist; "
                f"from {where}); is this the agent's config, or pass --db")
    try:
        engine = make_engine(url)
        if not inspect(engine).has_table("series"):
            die(f"{shown} holds no history yet (no `series` table); start the agent on it first")
    except StoreError as exc:
        die(str(exc), code=1)
    except SQLAlchemyError as exc:
        die(f"cannot read {shown}: {getattr(exc, 'orig', None) or exc}", code=1)
    return HistoryReader(engine, config.history.retention)


def _tags(args: argparse.Namespace) -> dict[str, str]:
    out = {}
    for item in args.tag:
        key, sep, value = item.partition("=")
        if not sep or not key:
            die(f"--tag {item!r}: expected KEY=VALUE, e.g. --tag model=ranker", code=exitcodes.USAGE)
        out[key] = value
    return out


def _window(args: argparse.Namespace) -> tuple[float, float | None, float | None]:
    now = time.time()
    try:
        since = now - parse_duration(args.since)
        until = None if args.until is None else now - parse_duration(args.until)
        step = None if args.step is None else parse_duration(args.step)
    except ValueError as exc:
        die(f"{exc}", code=exitcodes.USAGE)
    if step is not None and step <= 0:
        die("--step must be positive", code=exitcodes.USAGE)
    return since, until, step


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _label(tags) -> str:  # type: ignore[no-untyped-def]
    return ",".join(f"{k}={v}" for k, v in tags) or "(no tags)"


def _run_query(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from sqlalchemy.exc import SQLAlchemyError

    reader = _reader(args)
    since, until, step = _window(args)
    try:
        return reader.query(args.metric, since, until, tags=_tags(args), step=step, agg=args.agg)
    except SQLAlchemyError as exc:
        die(f"query failed: {getattr(exc, 'orig', None) or exc}", code=1)


# -- commands ---------------------------------------------------------------------------
def query_cmd(args: argparse.Namespace) -> int:
    result = _run_query(args)
    if not result.series:
        print(f"mlwarden: no series of {args.metric} match in that window", file=sys.stderr)
        return 1
    rows = [(_label(tags), t, v) for tags, points in sorted(result.series.items())
            for t, v in points]
    if args.format == "json":
        doc = {"metric": result.metric, "resolution": result.resolution, "step": result.step,
               "agg": result.agg,
               "series": [{"tags": dict(tags), "points": [[t, None if math.isnan(v) else v]
                                                         for t, v in points]}
                          for tags, points in sorted(result.series.items())]}
        json.dump(doc, sys.stdout, indent=2)
        print()
    elif args.format == "csv":
        w = csv.writer(sys.stdout)
        w.writerow(["series", "timestamp", "time", "value"])
        for label, t, v in rows:
            w.writerow([label, f"{t:.3f}", _iso(t), repr(v)])
    else:
        print_table(["SERIES", "TIME (UTC)", "VALUE"],
                    [(label, _iso(t), f"{v:.6g}") for label, t, v in rows], out=sys.stdout)
        step = f", step {format_duration(result.step)} {result.agg}" if result.step else ""
        print(f"\n{len(result.series)} series, {len(rows)} points from {result.resolution} data{step}",
              file=sys.stderr)
    return 0


def series_cmd(args: argparse.Namespace) -> int:
    reader = _reader(args)
    found = reader.list_series(args.metric, _tags(args), prefix=True)
    if args.format == "json":
        json.dump([{"id": s.id, "metric": s.metric, "tags": dict(s.tags), "created_at": s.created_at}
                   for s in found], sys.stdout, indent=2)
        print()
    elif args.format == "csv":
        w = csv.writer(sys.stdout)
        w.writerow(["id", "metric", "tags", "created"])
        for s in found:
            w.writerow([s.id, s.metric, _label(s.tags), _iso(s.created_at)])
    else:
        print_table(["ID", "METRIC", "TAGS", "CREATED (UTC)"],
                    [(s.id, s.metric, _label(s.tags), _iso(s.created_at)) for s in found], out=sys.stdout)
    return 0 if found else 1


def plot_cmd(args: argparse.Namespace) -> int:
    from agent.catalog import load_catalog
    from agent.charts import ChartsUnavailable, charts_available, legend_labels, render_line_chart

    if not charts_available():
        die(str(ChartsUnavailable()))

    result = _run_query(args)
    if not result.series:  # no file: an empty chart would look like a healthy flat line
        print(f"mlwarden: no series of {args.metric} match in that window; nothing written",
              file=sys.stderr)
        return 1
    spec = load_catalog().get(args.metric)
    ordered = sorted(result.series.items())
    labels = legend_labels([dict(tags) for tags, _ in ordered])
    png = render_line_chart({label or args.metric: p for label, (_, p) in zip(labels, ordered)},
                            title=args.metric, threshold=args.threshold,
                            unit=spec.unit if spec else "")
    try:
        Path(args.output).write_bytes(png)
    except OSError as exc:
        die(f"cannot write {args.output}: {exc.strerror or exc}", code=1)
    n = sum(len(p) for p in result.series.values())
    print(f"wrote {args.output}: {len(result.series)} series, {n} points ({result.resolution} data)")
    return 0


def migrate_cmd(args: argparse.Namespace) -> int:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from agent.errors import StoreError
    from agent.history import migrations
    from agent.history.db import make_engine

    config = config_from_args(args)
    url = args.db or config.agent.history
    try:
        shown = make_url(url).render_as_string(hide_password=True)
        engine = make_engine(url)
        before = migrations.current_revision(engine)
        migrations.upgrade(engine)
        after = migrations.current_revision(engine)
    except StoreError as exc:
        die(str(exc), code=1)
    except SQLAlchemyError as exc:
        die(f"cannot migrate {shown}: {getattr(exc, 'orig', None) or exc}", code=1)
    except Exception as exc:  # noqa: BLE001 - a bad URL
        die(f"cannot migrate {url!r}: {exc}", code=exitcodes.USAGE)
    print(f"{shown}: schema {before or '(empty)'} -> {after}" if before != after
          else f"{shown}: schema already at {after}")
    return 0
