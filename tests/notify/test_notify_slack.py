"""Slack bot and webhook delivery against the strict fake (Slack cannot run here: see fake_slack.py)."""

from __future__ import annotations

import io
import json

import pytest
from sqlalchemy import select

from agent.alerting.config import AlertingConfig
from agent.alerting.dispatch import Dispatcher
from agent.history.tables import outbox
from agent.notify.console import ConsoleNotifier
from tests.alerting.helpers import Clock, fire, resolve, store
from tests.notify.fake_slack import TOKEN

pytestmark = pytest.mark.integration


class History:
    """A SeriesReader over real points, the way the history store answers."""

    def __init__(self, points):
        self.points = points
        self.calls = []

    def read_series(self, metric, since, until=None, tags=None):
        self.calls.append((metric, since, until, tags))
        return {
            (("node", "gpu-3"),): [(t, v) for t, v in self.points if since <= t <= (until or t)]
        }


def config(fake, **over) -> AlertingConfig:
    doc = {
        "slack": {
            "token": TOKEN,
            "default_channel": "#ml-alerts",
            "base_url": fake.base_url,
            "timeout": 2,
        },
        "group_wait": 0,
        "group_interval": 10,
        "repeat_interval": 3600,
        "delivery": {"retry_initial": 5, "retry_max": 60, "pace": 1, "late_after": 60},
    }
    doc.update(over)
    return AlertingConfig.model_validate(doc)


async def run_for(d: Dispatcher, clock: Clock, seconds: float, step: float = 1.0) -> None:
    end = clock.now + seconds
    while clock.now < end:
        await d.tick(clock.now)
        clock.advance(step)


async def test_firing_then_resolved_posts_once_threads_chart_and_updates(tmp_path, slack):
    clock = Clock()
    history = History([(clock.now - 600 + i * 10, 0.01 * (i % 7)) for i in range(70)])
    d = Dispatcher(config(slack), store(tmp_path), reader=history, clock=clock)
    ev = fire(
        "GpuIdle",
        {"node": "gpu-3"},
        clock.now,
        annotations={
            "summary": "GPU gpu-3 idle",
            "metric": "mlwarden.gpu.utilization",
            "runbook_url": "https://runbooks.example/gpu-idle",
        },
    )
    d.alerts_changed([ev], clock.now)
    await run_for(d, clock, 3)
    assert len(slack.top_level()) == 1
    msg = slack.top_level()[0]
    assert msg.channel == "C0ALERTS01"
    assert msg.metadata["event_type"] == "mlwarden_notification"
    body = json.dumps(msg.blocks)
    assert "GPU gpu-3 idle" in body and "threshold 0.05" in body and "Runbook" in body
    assert len(slack.files) == 1 and slack.files[0]["thread_ts"] == msg.ts
    assert slack.files[0]["data"][:8] == b"\x89PNG\r\n\x1a\n"
    assert history.calls and history.calls[0][0] == "mlwarden.gpu.utilization"
    assert history.calls[0][3] == {"node": "gpu-3"}

    d.alerts_changed([resolve(ev, clock.now)], clock.now)
    await run_for(d, clock, 15)
    assert len(slack.top_level()) == 1, "a resolution must not post a new top-level message"
    replies = slack.replies(msg.ts)
    assert len(replies) == 1 and "Resolved after" in replies[0].text
    assert msg.updates and "[RESOLVED] GpuIdle" in json.dumps(msg.updates[-1]["blocks"])
    assert not slack.refused
    await d.stop()


async def test_429_honours_retry_after_and_500_backs_off_then_delivers(tmp_path, slack):
    clock = Clock()
    d = Dispatcher(
        config(slack, slack={"token": TOKEN, "base_url": slack.base_url, "charts": False}),
        store(tmp_path),
        clock=clock,
    )
    slack.fail("429", {"chat.postMessage"}, retry_after=30, times=1)
    d.alerts_changed(
        [fire("EndpointDown", {"model": "ranker"}, clock.now, severity="critical")], clock.now
    )
    await d.tick(clock.now)
    assert slack.top_level() == []
    st = d.status()["receivers"]["slack"]
    assert "rate limited" in st["last_error"] and st["failed_attempts"] == 1
    await run_for(d, clock, 29)  # Retry-After is 30 s: nothing may be tried before it
    posts = [c for c in slack.calls if c[0] == "chat.postMessage"]
    assert len(posts) == 1
    await run_for(d, clock, 3)
    assert len(slack.top_level()) == 1
    await d.stop()


async def test_invalid_auth_stops_once_and_uses_fallback(tmp_path, slack):
    clock = Clock()
    cfg = config(
        slack,
        receivers=[
            {"name": "oncall", "type": "slack", "channel": "#ml-oncall", "fallback": "hook"},
            {"name": "hook", "type": "webhook", "url": slack.webhook_url},
        ],
        receiver="oncall",
    )
    d = Dispatcher(cfg, store(tmp_path), clock=clock)
    slack.fail("invalid_auth", {"chat.postMessage", "conversations.history", "conversations.list"})
    d.alerts_changed(
        [fire("A", {"n": "1"}, clock.now), fire("B", {"n": "2"}, clock.now)], clock.now
    )
    await run_for(d, clock, 5)
    posts = [c for c in slack.calls if c[0] == "chat.postMessage"]
    assert len(posts) == 1, "one clear error, then the receiver stops"
    st = d.status()["receivers"]["oncall"]
    assert st["broken"] and "invalid_auth" in st["broken"] and TOKEN not in json.dumps(d.status())
    assert len(slack.webhook_posts) == 2
    assert [p["text"].split("]")[1].strip() for p in slack.webhook_posts] == [
        "A: A on {'n': '1'}",
        "B: B on {'n': '2'}",
    ]
    await d.stop()


async def test_lost_response_is_not_posted_twice(tmp_path, slack):
    """Slack stores the message but the answer never arrives: the retry finds it by metadata."""
    clock = Clock()
    slack.hang_seconds = 3
    d = Dispatcher(
        config(
            slack, slack={"token": TOKEN, "base_url": slack.base_url, "timeout": 1, "charts": False}
        ),
        store(tmp_path),
        clock=clock,
    )
    slack.fail("lost_response", {"chat.postMessage"}, times=1)
    d.alerts_changed([fire("A", {"n": "1"}, clock.now)], clock.now)
    await d.tick(clock.now)
    assert len(slack.top_level()) == 1  # Slack has it ...
    assert "timed out" in d.status()["receivers"]["slack"]["last_error"]  # ... we do not know
    await run_for(d, clock, 20)
    assert len(slack.top_level()) == 1
    with d.engine.connect() as conn:
        row = conn.execute(select(outbox.c.state, outbox.c.result)).one()
    assert row.state == "sent" and json.loads(row.result)["ts"] == slack.top_level()[0].ts
    await d.stop()


async def test_webhook_sends_blocks_with_sparkline(tmp_path, slack):
    clock = Clock()
    history = History([(clock.now - 600 + i * 10, float(i % 10)) for i in range(60)])
    d = Dispatcher(
        AlertingConfig.model_validate(
            {"slack": {"webhook_url": slack.webhook_url}, "group_wait": 0}
        ),
        store(tmp_path),
        reader=history,
        clock=clock,
    )
    d.alerts_changed(
        [
            fire(
                "GpuIdle",
                {"node": "gpu-3"},
                clock.now,
                annotations={"summary": "idle", "metric": "mlwarden.gpu.utilization"},
            )
        ],
        clock.now,
    )
    await d.tick(clock.now)
    assert len(slack.webhook_posts) == 1
    body = json.dumps(slack.webhook_posts[0]["blocks"], ensure_ascii=False)
    assert any(ch in body for ch in "▁▂▃▄▅▆▇█")
    await d.stop()


async def test_console_is_the_default_receiver(tmp_path):
    out = io.StringIO()
    clock = Clock()
    d = Dispatcher(
        AlertingConfig.model_validate({"group_wait": 0}),
        store(tmp_path),
        clock=clock,
        notifiers={"console": ConsoleNotifier("console", stream=out)},
    )
    assert d.router.root.receiver == "console"
    d.alerts_changed([fire("GpuIdle", {"node": "gpu-3"}, clock.now)], clock.now)
    await d.tick(clock.now)
    record = json.loads(out.getvalue())  # not a terminal: one JSON line (test_notify_console.py)
    assert record["msg"] == "[FIRING:1] GpuIdle" and record["alerts"][0]["labels"]["node"] == "gpu-3"
    await d.stop()


async def test_changes_go_to_the_thread_and_update_the_parent(tmp_path, slack):
    clock = Clock()
    d = Dispatcher(
        config(
            slack,
            slack={"token": TOKEN, "base_url": slack.base_url, "charts": False},
            repeat_interval=60,
        ),
        store(tmp_path),
        clock=clock,
    )
    d.alerts_changed([fire("GpuIdle", {"node": "gpu-1"}, clock.now)], clock.now)
    await run_for(d, clock, 2)
    d.alerts_changed([fire("GpuIdle", {"node": "gpu-2"}, clock.now)], clock.now)
    await run_for(d, clock, 12)
    assert len(slack.top_level()) == 1
    parent = slack.top_level()[0]
    replies = slack.replies(parent.ts)
    assert len(replies) == 1 and "Now firing: 2 alert(s)" in replies[0].text
    assert "[FIRING:2] GpuIdle" in json.dumps(parent.updates[-1]["blocks"])
    await run_for(d, clock, 60)  # repeat_interval: a reminder in the thread, not a new message
    assert len(slack.top_level()) == 1
    assert any("Still firing" in r.text for r in slack.replies(parent.ts))
    await d.stop()


async def test_a_storm_is_paced_to_one_message_per_second_per_channel(tmp_path, slack):
    clock = Clock()
    d = Dispatcher(
        config(
            slack,
            slack={"token": TOKEN, "base_url": slack.base_url, "charts": False},
            group_by=["alertname", "n"],
        ),
        store(tmp_path),
        clock=clock,
    )
    d.alerts_changed([fire("Storm", {"n": str(i)}, clock.now) for i in range(6)], clock.now)
    await run_for(d, clock, 10, step=0.25)
    assert len(slack.top_level()) == 6
    with d.engine.connect() as conn:
        sent = [r.sent_at for r in conn.execute(select(outbox.c.sent_at).order_by(outbox.c.id))]
    gaps = [b - a for a, b in zip(sent, sent[1:])]
    assert all(g >= 1.0 for g in gaps), gaps
    await d.stop()


async def test_status_and_metrics_report_slack_failures(tmp_path, slack, catalog_check):
    clock = Clock()
    d = Dispatcher(
        config(slack, slack={"token": TOKEN, "base_url": slack.base_url, "charts": False}),
        store(tmp_path),
        clock=clock,
    )
    slack.fail("500")
    d.alerts_changed([fire("A", {"n": "1"}, clock.now)], clock.now)
    await run_for(d, clock, 30)
    st = d.status()["receivers"]["slack"]
    assert st["sent"] == 0 and st["failed_attempts"] >= 2 and "HTTP 500" in st["last_error"]
    result = d.metrics(clock.now)
    catalog_check(result)
    by_name = {
        (s.metric, s.tag("reason")): s.value for s in result.samples if s.tag("receiver") == "slack"
    }
    assert by_name[("mlwarden.alerting.notifications.pending", None)] == 1
    assert by_name[("mlwarden.alerting.delivery.failures", "server_error")] >= 2
    assert by_name[("mlwarden.alerting.notifications.oldest_pending_age", None)] >= 29
    await d.stop()


async def test_chart_failure_never_holds_back_the_alert(tmp_path, slack):
    clock = Clock()
    history = History([(clock.now - 60 + i, float(i)) for i in range(60)])
    d = Dispatcher(config(slack), store(tmp_path), reader=history, clock=clock)
    slack.fail("500", {"files.completeUploadExternal"})
    d.alerts_changed(
        [fire("A", {"node": "gpu-3"}, clock.now, annotations={"summary": "a", "metric": "m"})],
        clock.now,
    )
    await run_for(d, clock, 3)
    assert len(slack.top_level()) == 1 and slack.files == []
    assert d.notifiers["slack"].chart_errors == 1
    assert d.status()["receivers"]["slack"]["sent"] == 1
    await d.stop()


async def test_lost_thread_reply_is_found_in_the_thread_not_repeated(tmp_path, slack):
    clock = Clock()
    slack.hang_seconds = 3
    d = Dispatcher(
        config(
            slack, slack={"token": TOKEN, "base_url": slack.base_url, "timeout": 1, "charts": False}
        ),
        store(tmp_path),
        clock=clock,
    )
    ev = fire("A", {"n": "1"}, clock.now)
    d.alerts_changed([ev], clock.now)
    await run_for(d, clock, 2)
    parent = slack.top_level()[0]
    slack.fail("lost_response", {"chat.postMessage"}, times=1)
    d.alerts_changed([resolve(ev, clock.now)], clock.now)
    await run_for(d, clock, 40)
    assert len(slack.replies(parent.ts)) == 1
    assert any(c[0] == "conversations.replies" for c in slack.calls)
    assert "[RESOLVED] A" in json.dumps(parent.updates[-1]["blocks"])
    await d.stop()


async def test_no_secret_in_logs_or_status(tmp_path, slack, caplog):
    from agent.secrets import register_secret

    register_secret(TOKEN)
    clock = Clock()
    cfg = config(slack, receivers=[{"name": "hook", "type": "webhook", "url": slack.webhook_url}])
    d = Dispatcher(cfg, store(tmp_path), clock=clock)
    slack.fail("invalid_auth")
    d.alerts_changed([fire("A", {"n": "1"}, clock.now)], clock.now)
    await run_for(d, clock, 3)
    assert d.status()["receivers"]["slack"]["broken"]
    dumped = json.dumps(d.status()) + caplog.text
    assert TOKEN not in dumped and "XXXX" not in dumped
    await d.stop()


async def test_webhook_429_waits_and_revoked_url_stops_with_one_error(tmp_path, slack):
    clock = Clock()
    d = Dispatcher(
        AlertingConfig.model_validate(
            {"slack": {"webhook_url": slack.webhook_url}, "group_wait": 0, "group_by": ["n"]}
        ),
        store(tmp_path),
        clock=clock,
    )
    slack.fail("429", {"webhook"}, retry_after=20, times=1)
    d.alerts_changed([fire("A", {"n": "1"}, clock.now)], clock.now)
    await run_for(d, clock, 19)
    assert slack.webhook_posts == []
    await run_for(d, clock, 3)
    assert len(slack.webhook_posts) == 1

    revoked = slack.webhook_url.replace("XXXX", "gone")
    d2 = Dispatcher(
        AlertingConfig.model_validate(
            {"slack": {"webhook_url": revoked}, "group_wait": 0, "group_by": ["n"]}
        ),
        store(tmp_path, "second.db"),
        clock=clock,
    )
    d2.alerts_changed([fire("A", {"n": str(i)}, clock.now) for i in range(3)], clock.now)
    await run_for(d2, clock, 5)
    st = d2.status()["receivers"]["slack"]
    assert "no_service" in st["broken"] and st["failed_attempts"] == 1 and st["dropped"] == 3
    await d.stop()
    await d2.stop()


async def test_group_by_labels_an_alert_lacks_are_not_shown_empty(tmp_path, slack):
    clock = Clock()
    d = Dispatcher(
        config(slack, slack={"token": TOKEN, "base_url": slack.base_url, "charts": False},
               group_by=["alertname", "model"]),
        store(tmp_path),
        clock=clock,
    )
    d.alerts_changed([fire("EndpointDown", {"endpoint": "http://x:8080", "check": "x",
                                            "model": ""}, clock.now,
                           annotations={"summary": "x is down"})], clock.now)
    await run_for(d, clock, 2)
    await d.stop()
    body = json.dumps(slack.top_level()[0].blocks)
    assert "(empty)" not in body and "model" not in body, body
    assert "http://x:8080" in body
