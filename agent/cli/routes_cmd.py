"""``mlwarden routes test --label alert=GpuIdle --label node=gpu-3``: where would this alert go?

Like ``amtool config routes test``: prints the matching routes and receivers, their
grouping and timers, whether a silence or an inhibiting firing alert mutes it, which firing
alert the cause graph would link it to and why (or what it would explain), and the message
it would send.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from agent.alert import Alert, alert_labels
from agent.alerting.dispatch import Router
from agent.alerting.routing import time_muted
from agent.alerting.silences import SilenceStore
from agent.rules.state import AlertStateStore
from agent.cli import exitcodes
from agent.cli.common import add_config_arg, config_from_args, die
from agent.errors import StoreError
from agent.notify.base import Notification
from agent.notify.render import blocks_for, plain_text


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("routes", help="inspect alert routing")
    rsub = p.add_subparsers(dest="routes_command", metavar="SUBCOMMAND")
    rsub.required = True
    t = rsub.add_parser(
        "test",
        help="show where an alert with these labels goes",
        description="Dry run: the route, receiver, grouping, silences and inhibition that "
        "apply to an alert with the given labels, and the message it would send.",
    )
    add_config_arg(t)
    t.add_argument(
        "--label",
        "-l",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an alert label (repeatable); `alert=` names the rule",
    )
    t.add_argument(
        "--severity", default=None, help="severity (default: the `severity` label or warning)"
    )
    t.add_argument("--summary", default=None, help="summary annotation for the preview")
    t.add_argument("--blocks", action="store_true", help="also print the Slack Block Kit JSON")
    t.add_argument(
        "--no-store",
        action="store_true",
        help="do not read silences and firing alerts from the store",
    )
    t.set_defaults(func=test)


def _firing_signals(rows: list[dict[str, Any]]) -> list[Any]:
    """The firing alerts (``AlertStateStore.list_alerts`` rows) as cause-graph signals."""
    from agent.causes import Signal

    return [Signal.of(r["rule"], r["labels"], r["active_since"] or r["fired_at"] or 0.0,
                      fingerprint=r["fingerprint"], severity=r["severity"],
                      summary=(r["annotations"] or {}).get("summary", ""))
            for r in rows]


def _causes(config: Any, rule: str, labels: dict[str, str], now: float, firing: Any) -> None:
    """Say which firing alert would explain this one (and why), or what it would explain."""
    from agent.causes import CauseGraph, Signal, link

    if not config.causes.enabled:
        print("cause: linking is off (causes.enabled: false)")
        return
    graph = CauseGraph.build(config.causes)
    me = Signal.of(rule, labels, now, fingerprint="dry-run")
    kinds = graph.kinds_of(me)
    print(f"cause graph: {', '.join(kinds) if kinds else 'not of any kind (never linked)'}")
    if not kinds:
        return
    if firing is None:
        print("  (firing alerts not read from the store: no link checked)")
        return
    causes = link(firing, [me], now, graph)
    for item in causes:
        print(f"  linked to cause {item.cause.rule}{{{_plain(item.cause)}}} ({item.cause_kind}): "
              f"{item.reason}: it would be said in that cause's message")
    for item in link([me], firing, now, graph):
        print(f"  would explain {item.effect.rule}{{{_plain(item.effect)}}} ({item.effect_kind}): "
              f"{item.reason}")
    if not causes:
        print("  no firing alert explains it: it pages on its own")


def _plain(signal) -> str:  # type: ignore[no-untyped-def]
    return ",".join(f"{k}={v}" for k, v in sorted(signal.labels)
                    if k not in ("alertname", "alert", "severity"))


def _firing(rows: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The labels of every firing alert (``AlertStateStore.list_alerts`` rows), for inhibition."""
    return [alert_labels(r["rule"], r["labels"], r["severity"]) for r in rows]


def test(args: argparse.Namespace) -> int:
    labels: dict[str, str] = {}
    for item in args.label:
        key, sep, value = item.partition("=")
        if not sep or not key:
            die(f"--label expects KEY=VALUE, found {item!r}", code=exitcodes.USAGE)
        labels[key.strip()] = value
    rule = labels.get("alert") or labels.get("alertname")
    if not rule:
        die("give the rule name with --label alert=NAME", code=exitcodes.USAGE)
    assert rule is not None
    severity = args.severity or labels.get("severity", "warning")
    full = alert_labels(rule, labels, severity)
    config = config_from_args(args)
    now = time.time()
    silences, firing, signals = None, [], None
    if not args.no_store:
        from agent.history.db import create_schema, make_engine

        try:
            engine = make_engine(config.agent.history)
            create_schema(engine)
            silences = SilenceStore(engine)
            silences.refresh(now)
            rows = AlertStateStore(engine).list_alerts("firing")  # the CLI reads through the store
            firing = _firing(rows)
            signals = _firing_signals(rows)
        except (StoreError, Exception) as exc:  # noqa: BLE001 - a dry run still answers without the store
            print(
                f"(store {config.agent.history} unreadable, silences and inhibition not checked: {exc})"
            )
            silences = None
    router = Router(config.alerting, silences)
    routes = router.routes_for(full)
    print(f"labels: {' '.join(f'{k}={v}' for k, v in sorted(full.items()))}")
    for route in routes:
        print(f"route {route.id} -> receiver {route.receiver}")
        print(
            f"  group_by [{', '.join(route.group_by)}]  group_wait {route.group_wait:g}s  "
            f"group_interval {route.group_interval:g}s  repeat_interval {route.repeat_interval:g}s"
        )
        print(f"  group {route.group_key(full)}")
        if route.quiet_hours:
            q = route.quiet_hours
            print(
                f"  quiet hours {q.start}-{q.end} {q.timezone} (except {', '.join(q.except_severity)})"
            )
        for what, intervals in (("mute", route.mute_intervals), ("active", route.active_intervals)):
            if intervals:
                print(f"  {what} time intervals: {', '.join(t.name for t in intervals)}")
        held = time_muted(route, now)
        if held:
            print(f"  held now: {held}")
    reason = router.mute_reason(full, now, firing)
    print(f"muted: {reason}" if reason else "muted: no (no matching silence or inhibiting alert)")
    _causes(config, rule, full, now, signals)
    info = Alert(
        fingerprint="dry-run",
        rule=rule,
        labels=full,
        state="firing",
        severity=severity,
        annotations={"summary": args.summary or f"{rule} (dry run)"},
        fired_at=now,
    )
    note = Notification(
        receiver=routes[0].receiver,
        group_key=routes[0].group_key(full),
        group_labels=routes[0].group_labels(full),
        event="firing",
        incident="dry-run",
        alerts=[info],
        created_at=now,
    )
    print("\nmessage:")
    print(plain_text(note, now))
    if args.blocks:
        print(json.dumps(blocks_for(note, now), indent=2, ensure_ascii=False))
    return 0
