"""``mlwarden status``: read a running agent's /status and print it readably."""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from typing import Any

from agent.cli.common import add_config_arg, config_from_args, print_table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="show a running agent's checks and components",
                       description="Read a running agent's /status and print it readably.")
    add_config_arg(p)
    p.add_argument("--url", help="agent base URL (default: from agent.listen in the config)")
    p.add_argument("--json", action="store_true", help="print the raw JSON")
    p.add_argument("--token", default=os.environ.get("MLWARDEN_AUTH_TOKEN"),
                   help="bearer token when the agent requires one (default: $MLWARDEN_AUTH_TOKEN)")
    p.set_defaults(func=run)


def fetch_status(url: str, token: str | None = None, timeout: float = 5.0) -> dict[str, Any]:
    req = urllib.request.Request(url.rstrip("/") + "/status")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - operator-given URL
        return json.loads(resp.read())


def run(args: argparse.Namespace) -> int:
    url = args.url
    if not url:
        config = config_from_args(args)
        url = f"http://{config.agent.listen}"
    try:
        doc = fetch_status(url, args.token)
    except urllib.error.HTTPError as exc:
        print(f"mlwarden: {url}/status answered HTTP {exc.code}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        print(f"mlwarden: no agent answered at {url} ({reason}); is `mlwarden run` running?",
              file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    agent = doc.get("agent", {})
    print(f"mlwarden {agent.get('version')} on {agent.get('hostname')} (pid {agent.get('pid')}), "
          f"up {agent.get('uptime_seconds', 0):.0f}s, config {agent.get('config')}")
    pipe = doc.get("pipeline", {})
    print(f"pipeline: {pipe.get('depth')}/{pipe.get('capacity')} queued, "
          f"{pipe.get('processed')} processed, {pipe.get('shed')} shed")
    print()
    rows = []
    for c in doc.get("checks", []):
        dur = c.get("last_duration")
        rows.append((c["name"], c["type"], c["status"],
                     "" if dur is None else f"{dur * 1000:.0f}ms",
                     (c.get("last_run") or "-")[11:19], (c.get("next_run") or "-")[11:19],
                     c.get("failures"), (c.get("message") or "")[:70]))
    print_table(["CHECK", "TYPE", "STATUS", "TOOK", "LAST", "NEXT", "FAILS", "MESSAGE"], rows)
    for name, comp in (doc.get("components") or {}).items():
        print(f"\n{name}: " + ", ".join(f"{k}={v}" for k, v in comp.items() if not isinstance(v, (dict, list))))
        if isinstance(comp.get("custom_metrics"), dict):
            print("\n".join(custom_metrics_lines(comp["custom_metrics"])))
    return 0


def custom_metrics_lines(cm: dict[str, Any]) -> list[str]:
    """The Datadog exporter's custom-metrics count, top contributors and budget decisions."""
    budget = cm.get("budget")
    head = f"  custom metrics (last hour): {cm.get('count')}"
    head += f" of a budget of {budget}" if budget is not None else " (no budget set)"
    lines = [head]
    top = ", ".join(f"{t['metric']} {t['count']}" for t in cm.get("top", []))
    if top:
        lines.append(f"  top contributors: {top}")
    for d in cm.get("decisions", []):
        if d.get("action") == "drop_tag":
            lines.append(f"  decision: dropped tag `{d.get('tag')}` from {d.get('metric')} "
                         f"({d.get('series_before')} -> {d.get('series_after')} series)")
        else:
            held = (cm.get("held_back_points") or {}).get(d.get("metric"), 0)
            lines.append(f"  decision: holding back new series of {d.get('metric')} "
                         f"({held} points held back so far)")
    return lines
