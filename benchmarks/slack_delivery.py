"""Slack delivery rate through the durable outbox, against sending the same messages directly.

Side by side in one run, alternating rounds (the machine is shared and noisy, so only the
ratio means much), both against the strict Slack fake (tests/notify/fake_slack.py) on
127.0.0.1:
  A  the floor: the Slack notifier's ``send`` called directly for each notification
     (Block Kit rendering + ``chat.postMessage`` through slack-sdk), nothing stored;
  B  the agent's path: N firing alerts handed to the dispatcher, grouped, written to the
     outbox, then drained by ``Delivery`` until every one is in the fake: one trip to a
     worker thread a message (one transaction: mark the previous one sent, read the head,
     claim it with its dedup marker), then the send.
The fake runs in its own process (``--peer``): its CPU (aiohttp's server side, slack-sdk's
Block Kit validation of every post) is Slack's, not the agent's; before 2026-12-06 16:40 it
ran in the benchmark's process and counted in both A and B (~0.3 ms a message).
Pacing is off (``pace: 0``) to measure the machinery's ceiling; in production each channel
is paced to one message per ``pace`` seconds (default 1 s, Slack's own limit per channel).

    .venv/bin/python benchmarks/slack_delivery.py [--alerts 200] [--rounds 3] [--baseline DIR [--pairs 2]]

``--baseline DIR``: the same rounds against another checkout's agent (e.g. a worktree of
main): ``--pairs`` processes a tree, taking turns (this, baseline, baseline, this, ...),
each running one uncounted round and then ``--rounds`` rounds, so both trees share the
machine's load; it prints each tree's median over its rounds and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _tree() -> Path:
    """The checkout whose agent runs: ``--tree DIR`` (a child of ``--baseline``) or this one."""
    if "--tree" in sys.argv:
        return Path(sys.argv[sys.argv.index("--tree") + 1]).resolve()
    return Path(__file__).resolve().parents[1]


REPO = _tree()
sys.path.insert(0, str(REPO))

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402
from sqlalchemy import select  # noqa: E402

from agent.alerting.config import AlertingConfig  # noqa: E402
from agent.alerting.dispatch import Dispatcher  # noqa: E402
from agent.history.tables import outbox  # noqa: E402
from agent.notify.base import Notification, SendContext  # noqa: E402
from tests.alerting.helpers import fire, store  # noqa: E402
from tests.notify.fake_slack import TOKEN, FakeSlack  # noqa: E402

T0 = 1_790_000_000.0


def config(base_url: str) -> AlertingConfig:
    return AlertingConfig.model_validate({
        "slack": {"token": TOKEN, "default_channel": "#ml-alerts", "base_url": base_url,
                  "timeout": 5, "charts": False},
        "group_by": ["alertname"], "group_wait": 0, "group_interval": 300,
        "repeat_interval": 3600, "delivery": {"pace": 0},
    })


class SlackPeer:
    """The strict Slack fake in a child process (``--peer``), so that its CPU is not counted
    as the agent's; ``check`` asks it, after a round, what it received."""

    async def start(self) -> "SlackPeer":
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--peer", stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE)
        assert self.proc.stdout is not None
        info = json.loads(await asyncio.wait_for(self.proc.stdout.readline(), 30))
        self.base_url, self._control = info["base_url"], info["control"]
        return self

    async def check(self, n: int) -> None:
        async with aiohttp.ClientSession() as session:
            async with session.get(self._control, timeout=aiohttp.ClientTimeout(total=10)) as resp:
                got = await resp.json()
        assert got["top_level"] == n and not got["refused"], got

    async def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), 10)
        except asyncio.TimeoutError:
            self.proc.kill()
            await self.proc.wait()


async def serve_peer() -> None:
    """``--peer``: the fake until the parent closes stdin; one line of JSON says where."""
    slack = await FakeSlack().start()

    async def counts(_: web.Request) -> web.Response:
        return web.json_response({"top_level": len(slack.top_level()), "refused": slack.refused[:3]})

    app = web.Application()
    app.router.add_get("/counts", counts)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(json.dumps({"base_url": slack.base_url, "control": f"http://127.0.0.1:{port}/counts"}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await runner.cleanup()
    await slack.stop()


async def through_outbox(n: int, tmp: Path, tag: str) -> tuple[float, float, list[dict]]:
    """Seconds (wall, CPU) from handing n alerts to the dispatcher to n messages in Slack."""
    slack = await SlackPeer().start()
    try:
        engine = store(tmp, f"outbox-{tag}.db")
        d = Dispatcher(config(slack.base_url), engine)
        events = [fire(f"Alert{i:04d}", {"model": f"m{i}"}, T0) for i in range(n)]
        wall, cpu = time.perf_counter(), time.process_time()
        d.alerts_changed(events, T0)
        for _ in range(10 * n):  # bounded: 20 items a receiver per tick
            await d.tick(T0)
            if d.delivery.stats["slack"].sent >= n:
                break
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        await slack.check(n)
        await d.stop()
        with engine.connect() as conn:
            payloads = [json.loads(row.payload) for row in conn.execute(select(outbox.c.payload).order_by(outbox.c.id))]
        engine.dispose()
        return wall, cpu, payloads
    finally:
        await slack.stop()


async def direct(payloads: list, tmp: Path) -> tuple[float, float]:
    """Seconds (wall, CPU) to send the same notifications with the notifier alone."""
    slack = await SlackPeer().start()
    try:
        engine = store(tmp, "direct.db")  # the notifier is built as the dispatcher builds it
        d = Dispatcher(config(slack.base_url), engine)
        notifier = d.notifiers["slack"]
        notes = [Notification.from_json(p) for p in payloads]
        wall, cpu = time.perf_counter(), time.process_time()
        for i, note in enumerate(notes):
            await notifier.send(note, SendContext(now=T0, dedup_key=f"direct-{i}"))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        await slack.check(len(notes))
        await d.stop()
        engine.dispose()
        return wall, cpu
    finally:
        await slack.stop()


def as_the_daemon_runs() -> None:
    """What ``mlwarden run`` does to the collector once its first runs have built what lives
    long (agent/gcfreeze.py): freeze it, and a full pass only after 100 middle collections.
    Without it a full collection of everything the benchmark built lands in one round in
    three (70-130 ms: 0.35-0.65 ms a message), which the daemon does not pay."""
    gc.collect(1)  # as GcFreezer.freeze does; inline so that --baseline trees from before it run it too
    gc.freeze()
    gc.set_threshold(gc.get_threshold()[0], gc.get_threshold()[1], 100)


async def warm_round(n: int) -> None:
    """One round not counted (a fresh process's first is dearer), then the daemon's GC."""
    with tempfile.TemporaryDirectory(prefix="mlwarden-bench-slack-") as tmpdir:
        tmp = Path(tmpdir)
        _, _, payloads = await through_outbox(n, tmp, "warm")
        await direct(payloads, tmp)
    as_the_daemon_runs()


async def main_async(args: argparse.Namespace) -> None:
    rows: list[tuple[float, float, float, float]] = []
    await warm_round(args.alerts)
    for r in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="mlwarden-bench-slack-") as tmpdir:
            tmp = Path(tmpdir)
            b_wall, b_cpu, payloads = await through_outbox(args.alerts, tmp, str(r))
            a_wall, a_cpu = await direct(payloads, tmp)
        rows.append((a_wall, a_cpu, b_wall, b_cpu))
        print(f"round {r + 1}: direct {args.alerts / a_wall:7.1f} msg/s ({a_cpu / args.alerts * 1e3:.2f} ms CPU each)"
              f"   outbox {args.alerts / b_wall:7.1f} msg/s ({b_cpu / args.alerts * 1e3:.2f} ms CPU each)"
              f"   time ratio {b_wall / a_wall:.2f}x", flush=True)
    a_wall = statistics.median(r[0] for r in rows)
    b_wall = statistics.median(r[2] for r in rows)
    a_cpu = statistics.median(r[1] for r in rows)
    b_cpu = statistics.median(r[3] for r in rows)
    n = args.alerts
    print(f"\nmedian of {args.rounds} rounds, {n} alerts, one message each (pace 0):")
    print(f"  direct notifier send:     {n / a_wall:7.1f} msg/s, {a_cpu / n * 1e3:.2f} ms CPU per message")
    print(f"  outbox + delivery stages: {n / b_wall:7.1f} msg/s, {b_cpu / n * 1e3:.2f} ms CPU per message")
    print(f"  outbox path / direct: {b_wall / a_wall:.2f}x the time ({a_wall / b_wall:.2f}x the rate), "
          f"{b_cpu / a_cpu:.2f}x the CPU")


async def child_rounds(n: int, rounds: int) -> list[dict[str, float]]:
    """A child of ``--baseline``: ``rounds`` rounds as the default mode runs them (after its
    warm round); per round, CPU seconds a message."""
    await warm_round(n)
    out = []
    for r in range(rounds):
        with tempfile.TemporaryDirectory(prefix="mlwarden-bench-slack-") as tmpdir:
            tmp = Path(tmpdir)
            b_wall, b_cpu, payloads = await through_outbox(n, tmp, str(r))
            a_wall, a_cpu = await direct(payloads, tmp)
        out.append({"outbox_cpu": b_cpu / n, "outbox_rate": n / b_wall,
                    "direct_cpu": a_cpu / n, "direct_rate": n / a_wall})
    return out


def side_by_side(args: argparse.Namespace) -> None:
    """Processes of this tree and ``--baseline`` in turn (ABBA), ``--rounds`` rounds each."""
    trees = {"this": Path(__file__).resolve().parents[1], "baseline": Path(args.baseline).resolve()}
    if not (trees["baseline"] / "agent").is_dir():
        raise SystemExit(f"--baseline {trees['baseline']}: not a checkout of the agent")
    load = os.getloadavg()
    got: dict[str, list[dict[str, float]]] = {"this": [], "baseline": []}
    for run in range(args.pairs):
        for name in (("this", "baseline") if run % 2 == 0 else ("baseline", "this")):
            out = subprocess.run(
                [sys.executable, __file__, "--child", "--tree", str(trees[name]),
                 "--alerts", str(args.alerts), "--rounds", str(args.rounds)],
                capture_output=True, text=True, timeout=900, check=True)
            rows = json.loads(out.stdout.strip().splitlines()[-1])
            got[name].extend(rows)
            print(f"run {run + 1} {name:>8}: outbox "
                  + " ".join(f"{r['outbox_cpu'] * 1e3:.2f}" for r in rows)
                  + " ms CPU a message; direct "
                  + " ".join(f"{r['direct_cpu'] * 1e3:.2f}" for r in rows) + " ms", flush=True)
    end = os.getloadavg()
    print(f"\n{args.alerts} alerts, one message each (pace 0), {len(got['this'])} rounds a tree "
          f"(median); load average {load[0]:.2f} -> {end[0]:.2f}")
    med = {}
    for name in ("baseline", "this"):
        rows = got[name]
        m = med[name] = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        print(f"  {name:>8} ({trees[name]}): outbox {m['outbox_cpu'] * 1e3:.2f} ms CPU a message "
              f"(rounds {min(r['outbox_cpu'] for r in rows) * 1e3:.2f}-"
              f"{max(r['outbox_cpu'] for r in rows) * 1e3:.2f}), {m['outbox_rate']:.0f} msg/s; "
              f"direct {m['direct_cpu'] * 1e3:.2f} ms; outbox / direct "
              f"{m['outbox_cpu'] / m['direct_cpu']:.2f}x")
    print(f"  this / baseline, outbox CPU a message: "
          f"{med['this']['outbox_cpu'] / med['baseline']['outbox_cpu']:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", metavar="DIR", help="another checkout to run side by side")
    parser.add_argument("--pairs", type=int, default=2,
                        help="with --baseline: processes a tree, taking turns (default 2)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--tree", help=argparse.SUPPRESS)
    parser.add_argument("--peer", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer:
        asyncio.run(serve_peer())
        return
    if not 1 <= args.alerts <= 5000 or not 1 <= args.rounds <= 20:
        parser.error("--alerts must be 1..5000 and --rounds 1..20")
    if args.child:
        print(json.dumps(asyncio.run(child_rounds(args.alerts, args.rounds))))
    elif args.baseline:
        side_by_side(args)
    else:
        asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
