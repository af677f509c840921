"""``mlwarden rules test RULES.yaml --data samples.csv``: replay a recording through rules."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

import yaml

from agent.cli.common import print_table
from agent.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("rules", help="work with alert rules")
    rsub = p.add_subparsers(dest="rules_command", metavar="SUBCOMMAND")
    rsub.required = True
    t = rsub.add_parser(
        "test", help="replay recorded samples through rules and print each transition",
        description="Replay a recorded series through alert rules and print every transition "
        "(pending, firing, resolved, flapping), the way `promtool test rules` does. RULES is a "
        "rule file (`rules:` only) or a whole agent config. The CSV needs the columns "
        "timestamp (UNIX seconds or ISO 8601), metric and value; other columns are tags. "
        "Exit 0 after a replay, 2 when the rules or the data are invalid.",
    )
    t.add_argument("rules", metavar="RULES.yaml")
    t.add_argument("--data", required=True, metavar="SAMPLES.csv")
    t.add_argument("--until", metavar="DURATION",
                   help="keep the clock running this long after the last sample (e.g. 10m), "
                   "so absent rules and keep_firing_for play out")
    t.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    t.set_defaults(func=test)


def _load(path: str):  # -> tuple[list[RuleConfig], RulesEngineConfig]
    from agent.config import load_config
    from agent.rules.config import RulesEngineConfig
    from agent.rules.files import load_rule_file

    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        raw = None
    if isinstance(raw, dict) and set(raw) == {"rules"}:
        problems: list[str] = []
        rules = load_rule_file(Path(path), problems)
        if problems:
            raise ConfigError(path, [p.removeprefix(f"{path}: ") for p in problems])
        return rules, RulesEngineConfig()
    config = load_config(path)
    return list(config.rules), config.rules_engine


def test(args: argparse.Namespace) -> int:
    from agent.durations import parse_duration
    from agent.rules.replay import read_samples_csv, replay

    try:
        rules, settings = _load(args.rules)
        samples = read_samples_csv(args.data)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    if not rules:
        print(f"mlwarden: {args.rules} holds no rules", file=sys.stderr)
        return 2
    until = None
    if args.until:
        try:
            extra = parse_duration(args.until)
        except ValueError as exc:
            print(f"mlwarden: --until: {exc}", file=sys.stderr)
            return 2
        until = max((s.timestamp for s in samples), default=0.0) + extra
    transitions = replay(rules, samples, settings, until)
    if args.json:
        for t in transitions:
            print(json.dumps({"at": t.at, "alert": t.rule, "labels": t.labels, "from": t.previous,
                              "to": t.state, "value": t.value, "summary": t.summary,
                              "flap_count": t.flap_count}, sort_keys=True))
        return 0
    rows = [(_iso(t.at), t.rule, ",".join(f"{k}={v}" for k, v in sorted(t.labels.items())),
             f"{t.previous} -> {t.state}" + (f" ({t.flap_count} changes)" if t.state == "flapping" else ""),
             "" if t.value is None else f"{t.value:g}", t.summary) for t in transitions]
    print_table(["TIME", "ALERT", "LABELS", "TRANSITION", "VALUE", "SUMMARY"], rows, out=sys.stdout)
    print(f"\n{len(samples)} samples, {len(rules)} rules, {len(transitions)} transitions")
    return 0


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
