"""Regenerate docs/img/status-page-{desktop,phone}.png: the page of a real agent in Chromium.

    python -m tests.web.screenshots [--out docs/img]

The agent is the browser tests' (tests/web/browser.py: two dead model endpoints, one that
answers, alerts to a fake Slack webhook), started on a history database seeded with the
hour before, so the sparklines show an hour rather than a few seconds. One silence is
added through the page's form, as someone on call would.
"""

from __future__ import annotations

import argparse
import math
import random
import tempfile
import time
from pathlib import Path

from agent.history.store import HistoryStore
from agent.samples import CheckResult, Sample, Status
from tests.faults.threaded_slack import ThreadedSlack
from tests.support.procs import REPO, free_port, wait_for
from tests.web.browser import launch, start_agent

TOKEN = "tok-screenshots"
HOST = "gpu-node-7"


def seed(db: Path, now: float) -> None:
    """An hour of latency and memory, as the agent would have recorded it; the ranker's
    server went away 12 minutes ago."""
    rng = random.Random(7)
    store = HistoryStore(f"sqlite:///{db}")
    store.start_blocking()
    samples = []
    for i in range(240):
        t = now - 3600 + i * 15
        wave = 1 + 0.3 * math.sin(i / 12)
        if t < now - 720:
            samples.append(Sample("mlwarden.endpoint.latency", 0.018 * wave + rng.uniform(0, 0.01),
                                  (("agent", HOST), ("check", "ranker"), ("model", "ranker")), t))
        samples.append(Sample("mlwarden.endpoint.latency", 0.0015 * wave + rng.uniform(0, 0.0008),
                              (("agent", HOST), ("check", "agent-healthz")), t))
        samples.append(Sample("mlwarden.agent.memory.rss", 88e6 + i * 2.2e4 + rng.uniform(0, 4e5),
                              (("agent", HOST), ("check", "agent")), t))
    store.consume(CheckResult("seed", "seed", Status.OK, samples=samples))
    store.flush(30)
    store.stop_blocking()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(REPO / "docs" / "img"))
    out = Path(parser.parse_args().out)
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp, ThreadedSlack() as slack, sync_playwright() as p:
        seed(Path(tmp) / "history.db", time.time())
        proc, port, _ = start_agent(Path(tmp), token=TOKEN, dead_port=free_port(),
                                    webhook=slack.fake.webhook_url, listen_host="127.0.0.1")
        browser = launch(p)
        try:
            url = f"http://127.0.0.1:{port}/"
            context = browser.new_context(http_credentials={"username": "maria", "password": TOKEN},
                                          viewport={"width": 1280, "height": 900})
            page = context.new_page()

            def both_alerts() -> bool:
                page.goto(url)
                return page.locator("table.alerts tr.al-firing").count() == 2

            wait_for(both_alerts, 60, interval=1.0, what="two firing alerts")
            page.locator("table.alerts tr", has_text="ranker is down").get_by_role(
                "link", name="Silence…").click()
            page.fill("#s-comment", "ranker redeploy, INC-4127")
            page.get_by_role("button", name="Add silence").click()
            page.wait_for_url("**/?added=*")
            time.sleep(3)  # a few more points for the checks that answer
            page.goto(url)
            out.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out / "status-page-desktop.png"), full_page=True)
            page.set_viewport_size({"width": 390, "height": 844})
            page.goto(url)
            page.screenshot(path=str(out / "status-page-phone.png"))  # the first screen
            print(f"wrote {out / 'status-page-desktop.png'} and {out / 'status-page-phone.png'}")
        finally:
            browser.close()
            proc.stop()


if __name__ == "__main__":
    main()
