"""``mlwarden silence add|list|expire``: silences in the store, honoured by a running agent
(it re-reads them every tick) and across restarts."""

from __future__ import annotations

import argparse
import getpass
import json
import time
from datetime import datetime, timezone

from agent.alerting.matchers import parse_label_matcher
from agent.alerting.silences import SilenceNotFound, SilenceStore
from agent.cli import exitcodes
from agent.cli.common import add_config_arg, config_from_args, die, print_table
from agent.durations import parse_duration
from agent.errors import StoreError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "silence",
        help="mute alerts matching labels for a while",
        description="Add, list and expire silences (stored in the history store).",
    )
    ssub = p.add_subparsers(dest="silence_command", metavar="SUBCOMMAND")
    ssub.required = True
    a = ssub.add_parser(
        "add", help="add a silence", description="Mute alerts whose labels match every --match."
    )
    add_config_arg(a)
    a.add_argument(
        "--match",
        "-m",
        action="append",
        required=True,
        metavar="LABEL=VALUE",
        help="matcher: name=value, name!=value, name=~regex, name!~regex (repeatable; all must hold)",
    )
    a.add_argument(
        "--for", dest="duration", default="2h", help="how long (default 2h; e.g. 30m, 1h30m, 2d)"
    )
    a.add_argument("--start", help="ISO time to start (default: now)")
    a.add_argument("--comment", dest="comment", default="", help="why (shown in list and in logs)")
    a.add_argument("--author", default=None, help="who (default: the current user)")
    a.set_defaults(func=add)
    ls = ssub.add_parser("list", help="list silences")
    add_config_arg(ls)
    ls.add_argument("--all", action="store_true", help="include expired silences")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=list_)
    e = ssub.add_parser("expire", help="end a silence now")
    add_config_arg(e)
    e.add_argument("id", help="silence id (a unique prefix is enough)")
    e.set_defaults(func=expire)


def _store(args: argparse.Namespace) -> SilenceStore:
    from agent.history.db import create_schema, make_engine

    config = config_from_args(args)
    try:
        engine = make_engine(config.agent.history)
        create_schema(engine)
    except StoreError as exc:
        die(str(exc))
        raise
    return SilenceStore(engine)


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def add(args: argparse.Namespace) -> int:
    now = time.time()
    try:
        matchers = [parse_label_matcher(m) for m in args.match]
        seconds = parse_duration(args.duration)
        start = now if not args.start else datetime.fromisoformat(args.start).timestamp()
    except ValueError as exc:
        die(str(exc), code=exitcodes.USAGE)
        raise
    store = _store(args)
    try:
        silence = store.add(
            matchers,
            starts_at=start,
            ends_at=start + seconds,
            now=now,
            created_by=args.author or getpass.getuser(),
            comment=args.comment,
        )
    except ValueError as exc:
        die(str(exc), code=exitcodes.USAGE)
        raise
    print(f"{silence.id}  until {_when(silence.ends_at)}  {' '.join(map(str, silence.matchers))}")
    return 0


def list_(args: argparse.Namespace) -> int:
    now = time.time()
    silences = _store(args).list(now=now, include_expired=args.all)
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "id": s.id,
                        "matchers": [m.as_dict() for m in s.matchers],
                        "starts_at": s.starts_at,
                        "ends_at": s.ends_at,
                        "state": s.state(now),
                        "created_by": s.created_by,
                        "comment": s.comment,
                    }
                    for s in silences
                ],
                indent=2,
            )
        )
        return 0
    rows = [
        (
            s.id[:8],
            s.state(now),
            _when(s.starts_at),
            _when(s.ends_at),
            " ".join(map(str, s.matchers)),
            s.created_by,
            s.comment[:50],
        )
        for s in silences
    ]
    print_table(["ID", "STATE", "STARTS", "ENDS", "MATCHERS", "BY", "COMMENT"], rows)
    return 0


def expire(args: argparse.Namespace) -> int:
    try:
        silence = _store(args).expire(args.id, now=time.time())
    except (SilenceNotFound, ValueError) as exc:
        die(str(exc))
        raise
    print(f"expired {silence.id}")
    return 0
