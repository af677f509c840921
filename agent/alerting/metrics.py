"""What the ``alerting`` component says about itself: its metrics (a check result for the
pipeline, ``check="alerting"``) and its receivers' part of /status.

Both read the delivery's per-receiver counts and the outbox's backlog; neither changes
anything. The metric names are in the catalog (docs/metrics.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agent.notify.base import Notifier
from agent.notify.stages import Delivery
from agent.samples import AGENT_CHECK_TYPE, CheckResult, Kind, Sample, Status, make_tags

__all__ = ["dispatcher_metrics", "receivers_status"]

_PREFIX = "mlwarden.alerting."


def receivers_status(notifiers: Mapping[str, Notifier], delivery: Delivery) -> dict[str, Any]:
    """Per receiver: its counts, last error, whether it is stopped, its fallback, its setup."""
    receivers = {}
    for name, notifier in notifiers.items():
        s = delivery.stats[name]
        receivers[name] = {
            "type": notifier.type,
            "target": notifier.description,
            "sent": s.sent,
            "failed_attempts": s.failed_attempts,
            "dropped": s.dropped,
            "forwarded": s.forwarded,
            "muted": s.muted,
            "last_success": s.last_success,
            "last_error": s.last_error,
            "last_error_at": s.last_error_at,
            "broken": s.broken,
            "fallback": delivery.fallback_of(name),
        }
        setup = notifier.setup()
        if setup is not None:
            receivers[name]["setup"] = setup
    return receivers


def broken_receivers(delivery: Delivery) -> dict[str, str]:
    """Receivers stopped on a config error, with what to fix."""
    return {n: s.broken for n, s in delivery.stats.items() if s.broken}


def _receiver_samples(name: str, notifier: Notifier, delivery: Delivery,
                      pending: Mapping[str, Any], now: float) -> list[Sample]:
    s = delivery.stats[name]
    tags = make_tags({"receiver": name, "receiver_type": notifier.type})
    p = pending.get(name, {"pending": 0, "oldest_age": 0.0})
    samples = [
        Sample(_PREFIX + "notifications.sent", s.sent, tags, now, Kind.MONOTONIC_COUNT),
        Sample(_PREFIX + "notifications.dropped", s.dropped, tags, now, Kind.MONOTONIC_COUNT),
        Sample(_PREFIX + "notifications.pending", p["pending"], tags, now, Kind.GAUGE),
        Sample(_PREFIX + "notifications.oldest_pending_age", p["oldest_age"], tags, now,
               Kind.GAUGE),
        Sample(_PREFIX + "receiver.up", 0.0 if s.broken else 1.0, tags, now, Kind.GAUGE),
    ]
    for reason, count in s.failures_by_reason.items():
        samples.append(Sample(_PREFIX + "delivery.failures", count,
                              make_tags(tags, {"reason": reason}), now, Kind.MONOTONIC_COUNT))
    return samples


def dispatcher_metrics(notifiers: Mapping[str, Notifier], delivery: Delivery, groups: int,
                       now: float, interval: float) -> CheckResult:
    """The component's own metrics as a check result for the pipeline (blocking: it reads
    the outbox's backlog). CRITICAL while a receiver is stopped on a config error."""
    pending = delivery.pending(now)
    samples = []
    for name, notifier in notifiers.items():
        samples += _receiver_samples(name, notifier, delivery, pending, now)
    samples.append(Sample(_PREFIX + "groups", groups, (), now, Kind.GAUGE))
    broken = broken_receivers(delivery)
    message = (
        "receivers stopped: " + "; ".join(f"{n}: {why}" for n, why in broken.items())
        if broken
        else f"{groups} alert groups"
    )
    return CheckResult(
        check="alerting",
        check_type=AGENT_CHECK_TYPE,
        status=Status.CRITICAL if broken else Status.OK,
        message=message,
        samples=samples,
        started=now,
        interval=interval,
    )
