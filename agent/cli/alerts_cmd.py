"""``mlwarden alerts list`` and ``mlwarden alerts history RULE``: read the alert tables.

The history of a rule interleaves its alerts' transitions with what people did about them
from Slack (acknowledged, silenced, unsilenced, asked for a chart; refused presses too) and
the cause graph's links (why an alert was said under a cause, or what a cause explained),
oldest first."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from typing import Any

from agent.cli.common import add_config_arg, config_from_args, print_table

STATES = ("inactive", "pending", "firing", "resolved", "flapping")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("alerts", help="show alerts and their history from the history store")
    asub = p.add_subparsers(dest="alerts_command", metavar="SUBCOMMAND")
    asub.required = True
    ls = asub.add_parser("list", help="list alerts (newest change first)",
                         description="List every alert the rules engine recorded, newest change "
                         "first, from the database named by agent.history.")
    ls.add_argument("--state", choices=STATES, help="only alerts in this state")
    ls.add_argument("--json", action="store_true")
    add_config_arg(ls)
    ls.set_defaults(func=list_alerts)
    hist = asub.add_parser("history", help="the transitions of one rule, oldest first",
                           description="Print the recorded transitions of one rule's alerts "
                           "and the actions taken on them from Slack.")
    hist.add_argument("rule", metavar="RULE", help="the rule's `alert:` name")
    hist.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    hist.add_argument("--json", action="store_true")
    add_config_arg(hist)
    hist.set_defaults(func=history)


def _store(args: argparse.Namespace):  # -> AlertStateStore
    from agent.rules.state import AlertStateStore
    from agent.errors import StoreError
    from agent.history.db import make_engine

    config = config_from_args(args)
    try:
        store = AlertStateStore(make_engine(config.agent.history))
        store.prepare()
    except StoreError as exc:
        print(f"mlwarden: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    return store


def list_alerts(args: argparse.Namespace) -> int:
    store = _store(args)
    rows = store.list_alerts(args.state)
    if args.json:
        for row in rows:
            print(json.dumps(row, sort_keys=True, default=str))
        return 0
    print_table(
        ["ALERT", "STATE", "SEVERITY", "LABELS", "SINCE", "VALUE", "SUMMARY"],
        [(r["rule"], r["state"], r["severity"], _labels(r["labels"]),
          _iso(r["fired_at"] if r["state"] in ("firing", "flapping") else r["last_transition"]),
          "" if r["value"] is None else f"{r['value']:g}",
          (r["annotations"] or {}).get("summary", "")[:80]) for r in rows],
        out=sys.stdout,
    )
    if not rows:
        shown = f" in state {args.state}" if args.state else ""
        print(f"(no alerts{shown})")
    return 0


def history(args: argparse.Namespace) -> int:
    from agent.slackapp.store import ActionStore

    from agent.alerting.causes import link_rows

    store = _store(args)
    rows = store.history(args.rule, args.limit)
    actions = ActionStore(store.engine).actions(rule=args.rule, limit=args.limit)
    links = link_rows(store.engine, args.rule, args.limit)
    if args.json:
        docs = [(r["at"], r) for r in rows] + [(a.requested_at, _action_doc(a)) for a in actions]
        docs += [(r["at"], _link_doc(r, args.rule)) for r in links]
        for _, doc in sorted(docs, key=lambda d: d[0]):
            print(json.dumps(doc, sort_keys=True, default=str))
        return 0
    if not rows and not actions and not links:
        known = ", ".join(store.rules()) or "none yet"
        print(f"mlwarden: no transitions recorded for rule {args.rule!r} "
              f"(rules with alerts: {known})", file=sys.stderr)
        return 1
    lines = [(r["at"], _iso(r["at"]), _labels(r["labels"]), f"{r['from_state']} -> {r['to_state']}",
              "" if r["value"] is None else f"{r['value']:g}") for r in rows]
    lines += [(a.requested_at, _iso(a.requested_at), _labels(a.group_labels), a.describe(), "")
              for a in actions]
    lines += [(r["at"], _iso(r["at"]), *_link_line(r, args.rule), "") for r in links]
    print_table(["TIME", "LABELS", "TRANSITION", "VALUE"],
                [line[1:] for line in sorted(lines, key=lambda line: line[0])], out=sys.stdout)
    return 0


def _link_doc(row: dict[str, Any], rule: str) -> dict[str, Any]:
    """A link of the cause graph, as the effect (``linked``) or the cause (``explains``) saw it."""
    return {**row, "link": "linked" if row["effect_rule"] == rule else "explains"}


def _link_line(row: dict[str, Any], rule: str) -> tuple[str, str]:
    """(labels, what happened) of a link: why the alert was linked to its cause, or what its
    cause explained."""
    how = f"{row['placement']} in {row['receiver']}" if row["receiver"] else row["placement"]
    cause, effect = _own(row["cause_labels"]), _own(row["effect_labels"])
    if row["effect_rule"] == rule:
        said = f"{row['cause_rule']}{{{cause}}}"
        return effect, f"linked to cause {said}: {row['reason']} ({how})"
    return cause, f"explains {row['effect_rule']}{{{effect}}}: {row['reason']} ({how})"


def _own(labels: Any) -> str:
    """An alert's labels without those every alert has (its rule, its severity)."""
    return _labels({k: v for k, v in (labels or {}).items()
                    if k not in ("alert", "alertname", "severity")})


def _action_doc(action: Any) -> dict[str, Any]:
    return {"at": action.requested_at, "action": action.action, "arg": action.arg,
            "by": action.user_name, "user_id": action.user_id, "source": action.source,
            "state": action.state, "outcome": action.outcome, "labels": action.group_labels,
            "silence_ids": list(action.silence_ids)}


def _labels(labels: Any) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted((labels or {}).items()))


def _iso(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
