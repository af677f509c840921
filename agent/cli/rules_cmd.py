"""``mlwarden rules test|list``: replay recordings through rules, check expected alerts,
and show which rules a config loads and from where."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

from agent.cli import exitcodes
from agent.cli.common import add_config_arg, config_from_args, config_origin, print_table
from agent.errors import ConfigError, DataError
from agent.yamlconf import parse_yaml


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("rules", help="work with alert rules")
    rsub = p.add_subparsers(dest="rules_command", metavar="SUBCOMMAND")
    rsub.required = True
    t = rsub.add_parser(
        "test", help="replay recorded samples through rules; check expected alerts",
        description="Two forms, like `promtool test rules`. (1) RULES.yaml --data SAMPLES.csv: "
        "replay a recording through a rule file (`rules:` only) or a whole agent config and "
        "print every transition (pending, firing, resolved, flapping). (2) TESTS.yaml: a test "
        "file with `rule_files:` and `tests:`, each test a recording and the alerts expected "
        "at given evaluation times (`alert_rule_test` with `exp_alerts`, see docs/rules.md); "
        "a mismatch prints a diff. The CSV needs the columns timestamp (UNIX seconds or ISO "
        "8601), metric and value; other columns are tags. Exit 0 when everything passed, 1 "
        "when an expectation failed, 65 when a CSV is malformed, 78 when the rules or the "
        "test file are invalid.",
    )
    t.add_argument("rules", metavar="RULES.yaml|TESTS.yaml")
    t.add_argument("--data", metavar="SAMPLES.csv", help="the recording (form 1)")
    t.add_argument("--until", metavar="DURATION",
                   help="keep the clock running this long after the last sample (e.g. 10m), "
                   "so absent rules and keep_firing_for play out (form 1)")
    t.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    t.set_defaults(func=test)

    ls = rsub.add_parser(
        "list", help="list the rules a config loads and where each comes from",
        description="List every rule the config loads (inline `rules:` and each `rule_files` "
        "entry, `builtin:` packs included) with the file it comes from. Without --config: "
        "the rules of the embedded defaults, which are those of `mlwarden init`'s starter.",
    )
    add_config_arg(ls)
    ls.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    ls.set_defaults(func=list_)


def _load(path: str):  # -> tuple[list[RuleConfig], RulesEngineConfig]
    from agent.config import load_config
    from agent.rules.config import RulesEngineConfig
    from agent.rules.files import load_rule_file

    try:
        raw = parse_yaml(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raw = None
    if isinstance(raw, dict) and set(raw) == {"rules"}:
        problems: list[str] = []
        rules = load_rule_file(Path(path), problems)
        if problems:
            raise ConfigError(path, [p.removeprefix(f"{path}: ") for p in problems])
        return rules, RulesEngineConfig()
    config = load_config(path, warn=False)
    return list(config.rules), config.rules_engine


def _is_test_file(path: str) -> bool:
    from agent.rules.unittests import is_test_file

    try:
        return is_test_file(parse_yaml(Path(path).read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return False


def test(args: argparse.Namespace) -> int:
    if _is_test_file(args.rules):
        if args.data or args.until:
            print("mlwarden: a test file names its data per test; drop --data/--until",
                  file=sys.stderr)
            return exitcodes.USAGE
        return _run_tests(args)
    if not args.data:
        print(f"mlwarden: {args.rules} is not a test file (no `tests:`): give the recording "
              "with --data SAMPLES.csv", file=sys.stderr)
        return exitcodes.USAGE
    return _replay(args)


def _replay(args: argparse.Namespace) -> int:
    from agent.durations import parse_duration
    from agent.rules.replay import read_samples_csv, replay

    try:
        rules, settings = _load(args.rules)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return exitcodes.CONFIG
    if not rules:
        print(f"mlwarden: {args.rules} holds no rules", file=sys.stderr)
        return exitcodes.CONFIG
    try:
        samples = read_samples_csv(args.data)
    except DataError as exc:
        print(exc, file=sys.stderr)
        return exitcodes.DATA
    until = None
    if args.until:
        try:
            extra = parse_duration(args.until)
        except ValueError as exc:
            print(f"mlwarden: --until: {exc}", file=sys.stderr)
            return exitcodes.USAGE
        until = max((s.timestamp for s in samples), default=0.0) + extra
    transitions = replay(rules, samples, settings, until)
    if args.json:
        for t in transitions:
            print(json.dumps({"at": t.at, "alert": t.rule, "labels": t.labels, "from": t.previous,
                              "to": t.state, "value": t.value, "summary": t.summary,
                              "flap_count": t.flap_count}, sort_keys=True))
        return exitcodes.OK
    rows = [(_iso(t.at), t.rule, ",".join(f"{k}={v}" for k, v in sorted(t.labels.items())),
             f"{t.previous} -> {t.state}" + (f" ({t.flap_count} changes)" if t.state == "flapping" else ""),
             "" if t.value is None else f"{t.value:g}", t.summary) for t in transitions]
    print_table(["TIME", "ALERT", "LABELS", "TRANSITION", "VALUE", "SUMMARY"], rows, out=sys.stdout)
    print(f"\n{len(samples)} samples, {len(rules)} rules, {len(transitions)} transitions")
    return exitcodes.OK


def _run_tests(args: argparse.Namespace) -> int:
    from agent.rules.unittests import run_test_file

    try:
        results = run_test_file(args.rules)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return exitcodes.CONFIG
    except DataError as exc:
        print(exc, file=sys.stderr)
        return exitcodes.DATA
    failed = [r for r in results if not r.ok]
    if args.json:
        for r in results:
            print(json.dumps({"test": r.test, "alertname": r.alertname, "eval_time": r.eval_time,
                              "at": r.at, "ok": r.ok, "expected": r.expected, "got": r.got},
                             sort_keys=True))
    else:
        for r in results:
            verdict = "PASS" if r.ok else "FAIL"
            print(f"{verdict}  {r.test}: {r.alertname} at {r.eval_time} ({_iso(r.at)})")
            if not r.ok:
                for line in r.diff():
                    print(f"      {line}")
        print(f"\n{len(results) - len(failed)} of {len(results)} expectations passed")
    return exitcodes.FAILED if failed else exitcodes.OK


def list_(args: argparse.Namespace) -> int:
    from agent.rules.files import BUILTIN_PREFIX, load_rule_file, resolve_rule_files

    config = config_from_args(args)
    base = Path(args.config).parent if args.config else None
    files = resolve_rule_files(config.rule_files, base, [])
    per_file = [(pattern, path, load_rule_file(path, [])) for pattern, path in files]
    inline = len(config.rules) - sum(len(r) for _, _, r in per_file)
    where = args.config or "(embedded defaults)"
    rows = [(f"{where}: rules[{i}]", r) for i, r in enumerate(config.rules[:inline])]
    for pattern, path, rules in per_file:
        label = pattern if pattern.startswith(BUILTIN_PREFIX) else str(path)
        rows += [(label, r) for r in rules]
    if args.json:
        for source, r in rows:
            print(json.dumps({"source": source, "alert": r.alert, "metric": r.metric,
                              "severity": r.severity}, sort_keys=True))
        return exitcodes.OK
    print_table(["SOURCE", "ALERT", "SEVERITY", "METRIC"],
                [(source, r.alert, r.severity, r.metric) for source, r in rows])
    print(f"\n{len(rows)} rules from {config_origin(args)}")
    if inline:
        print(f"  {inline} inline (rules:)")
    for pattern, path, rules in per_file:
        print(f"  {len(rules)} from {pattern} ({path})")
    return exitcodes.OK


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
