"""``mlwarden dashboards export|push|preview``."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from agent.cli import exitcodes
from agent.cli.common import add_config_arg, config_from_args, print_table
from agent.errors import ExportError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dashboards", help="export, push or preview the shipped dashboards")
    dsub = p.add_subparsers(dest="dashboards_command", metavar="SUBCOMMAND")
    dsub.required = True
    e = dsub.add_parser("export", help="write dashboard JSON files to a directory",
                        description="Write the Datadog and/or Grafana dashboard JSON to DIR/<format>/.")
    e.add_argument("dir")
    e.add_argument("--format", choices=["datadog", "grafana", "all"], default="all")
    e.set_defaults(func=export)

    u = dsub.add_parser("push", help="create or update dashboards in Datadog or Grafana",
                        description="Create or update the dashboards (idempotent: Datadog by title, "
                        "Grafana by uid). Datadog keys from DD_API_KEY and DD_APP_KEY, site from DD_SITE; "
                        "Grafana token from GRAFANA_TOKEN.")
    target = u.add_mutually_exclusive_group(required=True)
    target.add_argument("--datadog", action="store_true", help="push to Datadog")
    target.add_argument("--grafana", metavar="URL", help="push to the Grafana at URL")
    u.add_argument("--datadog-url", help="API base URL (default: https://api.$DD_SITE)")
    u.add_argument("--grafana-folder", help="Grafana folder uid")
    u.set_defaults(func=push)

    v = dsub.add_parser("preview", help="render each dashboard from the local history to PNG",
                        description="Render each dashboard's panels from the local history store "
                        "(agent.history) to DIR/<slug>.png so you can see what it shows.")
    v.add_argument("dir")
    add_config_arg(v)
    v.add_argument("--since", default="6h", help="how far back (default 6h)")
    v.set_defaults(func=preview)


def export(args: argparse.Namespace) -> int:
    from agent.dashboards.render import render_all

    formats = ["datadog", "grafana"] if args.format == "all" else [args.format]
    how = {"datadog": "Datadog: Dashboards > New Dashboard > Import dashboard JSON, or "
                      "`mlwarden dashboards push --datadog`",
           "grafana": "Grafana: Dashboards > New > Import (Prometheus data source), or "
                      "`mlwarden dashboards push --grafana URL`"}
    written = 0
    for fmt in formats:
        out = Path(args.dir) / fmt
        out.mkdir(parents=True, exist_ok=True)
        for name, doc in render_all(fmt).items():
            path = out / name
            text = json.dumps(doc, indent=2, sort_keys=True) + "\n"
            existed = path.exists() and path.read_text() == text
            path.write_text(text)
            title = doc.get("title", "")
            print(f"{path}  {fmt} dashboard {title!r}{' (unchanged)' if existed else ''}")
            written += 1
    print(f"wrote {written} dashboard files under {args.dir}/; import them in " + "; in ".join(
        how[f] for f in formats))
    return 0


def push(args: argparse.Namespace) -> int:
    from agent.dashboards.push import datadog_base_url, push_datadog, push_grafana
    from agent.dashboards.render import render_all

    try:
        if args.datadog:
            api, app = os.environ.get("DD_API_KEY"), os.environ.get("DD_APP_KEY")
            if not api or not app:
                print("mlwarden: set DD_API_KEY and DD_APP_KEY to push to Datadog", file=sys.stderr)
                return exitcodes.CONFIG
            base = args.datadog_url or datadog_base_url(os.environ.get("DD_SITE"))
            rows = push_datadog(render_all("datadog"), api_key=api, app_key=app, base_url=base)
        else:
            rows = push_grafana(render_all("grafana"), url=args.grafana,
                                token=os.environ.get("GRAFANA_TOKEN"), folder_uid=args.grafana_folder)
    except ExportError as exc:
        print(f"mlwarden: {exc}", file=sys.stderr)
        return 1
    print_table(["DASHBOARD", "RESULT", "ID"], rows)
    return 0


def preview(args: argparse.Namespace) -> int:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from agent.dashboards.preview import render_dashboard
    from agent.dashboards.spec import DASHBOARDS
    from agent.durations import parse_duration
    from agent.history import migrations
    from agent.history.store import HistoryStore

    from agent.charts import ChartsUnavailable, charts_available

    if not charts_available():
        print(f"mlwarden: {ChartsUnavailable()}", file=sys.stderr)
        return exitcodes.FAILED
    config = config_from_args(args)
    say = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731 - progress, not results
    try:
        since_s = parse_duration(args.since)
    except ValueError as exc:
        print(f"mlwarden: --since {args.since!r}: {exc}", file=sys.stderr)
        return exitcodes.USAGE
    url = make_url(config.agent.history)
    if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).exists():
        print(f"mlwarden: no history database at {url.database}: run `mlwarden run` with this "
              "config first (agent.history names the database)", file=sys.stderr)
        return 1
    # read only: no start(), so nothing is migrated, written or maintained
    store = HistoryStore(config.agent.history, config.history)
    try:
        if migrations.current_revision(store.engine) is None:
            print(f"mlwarden: no history in {store.shown_url}: run `mlwarden run` with this config "
                  "first (agent.history names the database)", file=sys.stderr)
            return 1
        now = time.time()
        out = Path(args.dir)
        out.mkdir(parents=True, exist_ok=True)
        say(f"reading the last {args.since} of {store.shown_url} and drawing {len(DASHBOARDS)} "
            f"dashboards into {out}/ ...")
        started = time.monotonic()
        for dash in DASHBOARDS:
            path = out / f"{dash.slug}.png"
            say(f"  drawing {dash.title} ...")
            png, with_data, total = render_dashboard(dash, store, since=now - since_s, until=now)
            path.write_bytes(png)
            print(f"{path}  ({with_data} of {total} panels with data)", flush=True)
        say(f"done in {time.monotonic() - started:.1f}s")
    except SQLAlchemyError as exc:
        print(f"mlwarden: cannot read the history in {store.shown_url}: "
              f"{getattr(exc, 'orig', None) or exc}", file=sys.stderr)
        return 1
    finally:
        store.engine.dispose()
    return 0
