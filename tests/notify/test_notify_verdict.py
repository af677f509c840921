"""The failure verdict is data on the error: each notifier sets ``retryable``,
``retry_after``, ``reason`` and ``status`` where it reads the peer's answer, and delivery
counts and schedules by those fields, never by the error's text.

Slack (bot and incoming webhook) cannot run here, so it is the strict fake of
fake_slack.py; the Alertmanager case is a real refused connection on 127.0.0.1.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest

from agent.errors import DeliveryError, NotifyError
from agent.history.outbox import Outbox
from agent.notify.base import Alert, Notification, Notifier, ReceiverBroken, SendContext
from agent.notify.config import DeliveryConfig, ReceiverConfig, SlackSettings
from agent.notify.receivers import ReceiverSettings, build_notifiers, slack_bot
from agent.notify.stages import KIND, Delivery
from tests.alerting.helpers import store
from tests.notify.fake_slack import TOKEN

T0 = 1_790_000_000.0


def note(receiver: str = "slack") -> Notification:
    alert = Alert(fingerprint="f1", rule="EndpointDown", labels={"model": "ranker"},
                      state="firing", severity="critical")
    return Notification(receiver=receiver, group_key="g", group_labels={"alertname": "EndpointDown"},
                        event="firing", incident="i1", alerts=[alert], created_at=T0)


async def failure_of(notifier: Notifier) -> NotifyError:
    try:
        await notifier.send(note(), SendContext(now=T0, dedup_key="d1"))
    except NotifyError as exc:
        return exc
    finally:
        await notifier.close()
    raise AssertionError("the send succeeded")


@pytest.mark.parametrize(
    ("mode", "retryable", "reason", "status", "retry_after"),
    [
        ("429", True, "rate_limited", 429, 7.0),
        ("500", True, "server_error", 500, None),
        ("timeout", True, "timeout", None, None),
        ("invalid_blocks", False, "rejected", None, None),
        ("invalid_auth", False, "config", None, None),
    ],
)
async def test_the_slack_bot_sets_its_verdict(slack, mode, retryable, reason, status, retry_after):
    slack.hang_seconds = 2.0
    slack.fail(mode, {"chat.postMessage"}, retry_after=7)
    # a short client timeout only where the fake hangs: elsewhere a slow, loaded machine must
    # not turn the fake's answer into a timeout
    timeout = 0.5 if mode == "timeout" else 30
    settings = SlackSettings(token=TOKEN, base_url=slack.base_url, timeout=timeout, charts=False)
    exc = await failure_of(slack_bot("slack", settings))
    assert isinstance(exc, DeliveryError)
    assert (exc.retryable, exc.reason, exc.status, exc.retry_after) == (
        retryable, reason, status, retry_after)
    assert isinstance(exc, ReceiverBroken) == (reason == "config")


@pytest.mark.parametrize(
    ("mode", "retryable", "reason", "status"),
    [("429", True, "rate_limited", 429), ("500", True, "server_error", 500),
     ("invalid_auth", False, "config", None)],
)
async def test_the_webhook_sets_its_verdict(slack, mode, retryable, reason, status):
    slack.fail(mode, {"webhook"}, retry_after=3)
    settings = ReceiverSettings(slack=SlackSettings(webhook_url=slack.webhook_url, timeout=2))
    exc = await failure_of(build_notifiers(settings)["slack"])
    assert (exc.retryable, exc.reason, exc.status) == (retryable, reason, status)


async def test_alertmanager_unreachable_is_a_network_verdict():
    with socket.socket() as sock:  # a port nothing listens on: connecting is refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    settings = ReceiverSettings(receivers=(ReceiverConfig(name="am", type="alertmanager", url=url),))
    exc = await failure_of(build_notifiers(settings)["am"])
    assert (exc.retryable, exc.reason, exc.status) == (True, "network", None)


class Saying(Notifier):
    """A notifier whose error text says one thing and whose verdict says another."""

    type = "test"

    def __init__(self, error: NotifyError) -> None:
        self.name = "r"
        self.error = error

    async def send(self, n: Notification, ctx: SendContext) -> dict[str, Any]:
        raise self.error


async def test_delivery_counts_and_waits_by_the_verdict_not_the_text(tmp_path):
    misleading = NotifyError("peer: rate limited, HTTP 500, Slack error, timed out",
                             retryable=True, retry_after=40.0, reason="timeout")
    outbox = Outbox(store(tmp_path))
    delivery = Delivery(outbox, {"r": Saying(misleading)},
                        config=DeliveryConfig(retry_initial=5, retry_max=60))
    delivery.enqueue(note("r"), dedup_key="k1", now=T0)
    assert await delivery.run_once(T0) == 0
    stats = delivery.stats["r"]
    assert stats.failures_by_reason == {"timeout": 1} and stats.last_failure_kind == "timeout"
    head = outbox.head(KIND, "r")
    assert head is not None and head.due_at == T0 + 40.0  # retry_after beats the 5 s backoff

    refused = NotifyError("peer: rate limited (it says so, but it refused)", retryable=False,
                          reason="rejected")
    delivery = Delivery(outbox, {"r": Saying(refused)}, config=DeliveryConfig())
    assert await delivery.run_once(T0 + 40.0) == 1  # refused: no retry, kept as a dead row
    assert delivery.stats["r"].failures_by_reason == {"rejected": 1}
    assert outbox.head(KIND, "r") is None
