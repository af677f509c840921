"""A real rule firing in the real agent (as `mlwarden run` builds it: model_endpoint check,
history store, rules engine, dispatcher) carries a chart of its own series, with no
annotation set by hand: one upload pair into the alert's thread in bot mode, a sparkline in
webhook mode. The endpoint is a local HTTP server that goes down mid-test; Slack is the
strict fake (Slack cannot run here).
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from aiohttp import web

from agent.app import Agent
from agent.config import parse_config
from tests.notify.fake_slack import TOKEN, FakeSlack
from tests.support.procs import free_port
from tests.support.targets import Target

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def config(tmp_path, target: str, slack: str) -> str:
    return f"""
agent: {{history: "sqlite:///{tmp_path / 'h.db'}", listen: "127.0.0.1:{free_port()}", self_check: false}}
history: {{batch_interval: 100ms}}
checks:
  - {{type: model_endpoint, name: ranker, url: "{target}/health", protocol: http, interval: 300ms}}
rules:
  - alert: EndpointDown
    metric: mlwarden.endpoint.up
    op: "<"
    threshold: 1
    for: 2s
    severity: critical
    summary: "{{endpoint}} is down"
    annotations: {{runbook_url: "https://runbooks.example/endpoint-down", team: ml-platform}}
alerting:
  slack: {slack}
  group_wait: 0s
  delivery: {{tick: 100ms}}
"""


async def run_until_fired(tmp_path, slack_settings: str, done) -> None:
    up = {"ok": True}

    async def health(request: web.Request) -> web.Response:
        return web.Response(status=200 if up["ok"] else 503, text="ok" if up["ok"] else "down")

    async with Target({("GET", "/health"): health}) as target:
        agent = Agent(parse_config(config(tmp_path, target.url, slack_settings)))
        await agent.start()
        try:
            await asyncio.sleep(3)  # healthy history before the change
            up["ok"] = False
            await wait_until(done, 20, "the alert's notification")
            await asyncio.sleep(0.5)  # room for a second upload, if one were coming
        finally:
            await agent.stop()


async def test_a_firing_rule_uploads_one_chart_into_its_thread(tmp_path):
    slack = await FakeSlack().start()
    try:
        settings = (f'{{token: "{TOKEN}", default_channel: "#ml-alerts", '
                    f'base_url: "{slack.base_url}", timeout: 2s}}')
        await run_until_fired(tmp_path, settings, lambda: slack.files)
    finally:
        await slack.stop()
    [message] = slack.top_level()
    assert "EndpointDown" in message.text
    uploads = [c[0] for c in slack.calls if c[0].startswith("files.")]
    assert uploads == ["files.getUploadURLExternal", "files.completeUploadExternal"]
    [chart] = slack.files
    assert chart["thread_ts"] == message.ts and chart["channel"] == message.channel
    assert chart["data"][:8] == b"\x89PNG\r\n\x1a\n" and chart["filename"] == "EndpointDown.png"
    body = json.dumps(message.blocks)
    assert "https://runbooks.example/endpoint-down" in body, "annotations: reach Slack"
    assert not slack.refused, slack.refused


async def test_a_firing_rule_in_webhook_mode_carries_a_sparkline(tmp_path):
    slack = await FakeSlack().start()
    try:
        settings = f'{{webhook_url: "{slack.webhook_url}", timeout: 2s}}'
        await run_until_fired(tmp_path, settings, lambda: slack.webhook_posts)
    finally:
        await slack.stop()
    post = slack.webhook_posts[0]
    blocks = json.dumps(post["blocks"], ensure_ascii=False)
    assert "EndpointDown" in post["text"]
    spark = next(b["elements"][0]["text"] for b in post["blocks"]
                 if b["type"] == "context" and "▁" in json.dumps(b, ensure_ascii=False)
                 or b["type"] == "context" and "█" in json.dumps(b, ensure_ascii=False))
    assert "min 0, max 1" in spark, spark  # up, then down: the change is in the picture
    assert "Runbook" in blocks
