"""Data in alerts cannot ping, format or break a Slack message (labels, summaries, 10 kB values)."""

from __future__ import annotations

import json
import re

import pytest

from agent.alerting.config import AlertingConfig
from agent.alerting.dispatch import Dispatcher
from agent.notify.render import escape, sparkline
from tests.alerting.helpers import Clock, fire, store
from tests.notify.fake_slack import TOKEN

pytestmark = pytest.mark.integration

NASTY = {
    "dag": "<!channel>",
    "owner": "<@U123>",
    "task": "*bold*",
    "blob": "x" * 10_000,
    "err": "a & b > c <https://evil.example|click>",
}


def mrkdwn_texts(blocks) -> list[str]:
    out = []

    def walk(node):
        if isinstance(node, dict):
            if node.get("type") == "mrkdwn":
                out.append(node["text"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(blocks)
    return out


def assert_inert(texts: list[str]) -> None:
    for text in texts:
        assert "<!channel>" not in text and "<@U123>" not in text and "<https://evil" not in text
        # inside an inline code span Slack shows marks literally; outside one they must be defused
        assert "*bold*" not in re.sub(r"`[^`]*`", "", text)
        assert "<" not in text and ">" not in text, text[:200]


@pytest.mark.parametrize("mode", ["bot", "webhook"])
async def test_injected_labels_are_escaped_and_cut_to_limits(tmp_path, slack, mode):
    clock = Clock()
    slack_cfg = (
        {"token": TOKEN, "base_url": slack.base_url, "charts": False}
        if mode == "bot"
        else {"webhook_url": slack.webhook_url}
    )
    d = Dispatcher(
        AlertingConfig.model_validate(
            {"slack": slack_cfg, "group_wait": 0, "group_by": ["alertname"]}
        ),
        store(tmp_path),
        clock=clock,
    )
    annotations = {
        "summary": "DAG <!channel> failed: *bold* " + "y" * 10_000,
        "description": "owner <@U123> & co",
        "runbook_url": "javascript:alert(1)",
    }
    events = [
        fire("<!here>Failed", {**NASTY, "n": str(i)}, clock.now, annotations=annotations)
        for i in range(14)
    ]
    d.alerts_changed(events, clock.now)
    await d.tick(clock.now)
    assert not slack.refused, slack.refused
    if mode == "bot":
        assert len(slack.top_level()) == 1
        msg = slack.top_level()[0]
        blocks, text = msg.blocks, msg.text
    else:
        assert len(slack.webhook_posts) == 1
        blocks, text = slack.webhook_posts[0]["blocks"], slack.webhook_posts[0]["text"]
    assert_inert(mrkdwn_texts(blocks) + [text])
    dumped = json.dumps(blocks)
    assert "and 4 more" in dumped  # 14 alerts, 10 shown
    assert "javascript:" not in dumped
    assert "&lt;!channel&gt;" in dumped and "&lt;@U123&gt;" in dumped
    assert len(dumped) < 40_000
    await d.stop()


def test_escape_keeps_ordinary_names_intact():
    assert escape("train_ranker") == "train_ranker"
    assert escape("a & b") == "a &amp; b"
    assert "*bold*" not in escape("*bold*")
    assert escape("<!channel>") == "&lt;!channel&gt;"


def test_sparkline_shape():
    assert sparkline([(i, float(i)) for i in range(8)]) == "▁▂▃▄▅▆▇█"
    assert sparkline([]) == ""
    assert len(sparkline([(i, float(i % 5)) for i in range(500)], width=30)) == 30
