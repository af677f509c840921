"""What every notifier shares: the notification payload, the notifier interface and the
retry verdict.

A notifier gives the verdict on its own failures (Alertmanager's ``Retrier.Check``): it
raises :class:`~agent.errors.NotifyError` carrying the verdict as data: ``retryable``
(network errors, 5xx, 429), ``retry_after`` (what the peer asked), ``reason`` (``timeout``,
``rate_limited``, ``server_error``, ``network``, ``rejected``) and ``status``; or
:class:`ReceiverBroken` (reason ``config``) when trying again cannot help until a person
fixes something (``invalid_auth``, ``channel_not_found``): the receiver then stops with one
clear error and its notifications go to its fallback receiver.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from agent.alert import Alert
from agent.errors import NotifyError

__all__ = [
    "Alert",
    "MessageActions",
    "Notification",
    "Notifier",
    "NotifyError",
    "ReceiverBroken",
    "SendContext",
    "backoff",
]


class ReceiverBroken(NotifyError):
    """The receiver cannot deliver anything until its config is fixed."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False, reason="config")


@dataclass
class Notification:
    """One message to one receiver about one group of alerts.

    ``event`` is ``firing`` (a new incident: the first message), ``update`` (alerts joined
    or resolved while others fire), ``repeat`` (still firing after repeat_interval) or
    ``resolved`` (every alert of the group resolved). ``incident`` is the dedup key of the
    incident's first message, which later messages thread under.
    """

    receiver: str
    group_key: str
    group_labels: dict[str, str]
    event: str
    incident: str
    alerts: list[Alert]
    created_at: float
    seq: int = 0
    # explanations this message says, cause first (agent.alerting.causes.CauseLinks.docs)
    causes: list[dict[str, Any]] | None = None

    def to_json(self) -> dict[str, Any]:
        doc = dict(vars(self))
        doc["alerts"] = [a.to_json() for a in self.alerts]
        return doc

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> "Notification":
        data = dict(doc)
        data["alerts"] = [Alert.from_json(a) for a in data.get("alerts", [])]
        return cls(**data)

    @property
    def firing(self) -> list[Alert]:
        return [a for a in self.alerts if a.state == "firing"]

    @property
    def resolved(self) -> list[Alert]:
        return [a for a in self.alerts if a.state == "resolved"]


@dataclass
class SendContext:
    """What a notifier may need besides the notification, all passed in (never read from clocks).

    ``record`` stores a partial result (a posted message's channel and ts) in the outbox
    *before* the next step, so a crash in between never posts the message again;
    ``previous`` is what an earlier, interrupted attempt recorded; ``parent`` is the
    result of the incident's first message (to thread under and update).
    """

    now: float
    dedup_key: str
    late_note: str | None = None
    previous: Mapping[str, Any] | None = None
    parent: Mapping[str, Any] | None = None
    record: Callable[[dict[str, Any]], Awaitable[None]] | None = None
    queued_at: float = 0.0


class MessageActions(Protocol):
    """What a Slack notifier asks of the buttons on its messages (agent.slackapp gives it):
    the action area of a message, and where a posted message landed."""

    async def message_blocks(self, note: "Notification", blocks: list[dict[str, Any]],
                             now: float) -> list[dict[str, Any]]: ...

    async def posted(self, note: "Notification", channel: str, ts: str, now: float) -> None: ...


class Notifier(abc.ABC):
    """Sends notifications to one receiver."""

    name: str
    type: str
    pace_key: str | None = None  # notifications sharing a key are paced (one Slack channel)
    description: str = ""

    @abc.abstractmethod
    async def send(self, note: Notification, ctx: SendContext) -> dict[str, Any]:
        """Deliver ``note``; returns what to record (e.g. channel and ts); raises NotifyError."""

    async def preflight(self) -> None:  # noqa: B027 - optional hook
        """Check, before the first send, what this receiver can do (e.g. a Slack token's
        scopes); called at start and after a reload. Raises ReceiverBroken when it can do
        nothing, NotifyError when the check itself failed (it is tried again later)."""

    def setup(self) -> dict[str, Any] | None:
        """What :meth:`preflight` found, for /status; None when there is nothing to say."""
        return None

    async def close(self) -> None:  # noqa: B027 - optional hook, most notifiers hold a session
        """Release connections."""


def backoff(attempts: int, initial: float, maximum: float) -> float:
    """Exponential backoff without jitter: deterministic, so tests can pin it."""
    return min(maximum, initial * (2 ** max(0, attempts)))
