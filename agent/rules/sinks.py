"""The default alert sink until routing is wired: one log line per notifiable change."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from agent.alert import AlertEvent, AlertState

__all__ = ["LoggingAlertSink"]

log = logging.getLogger("agent.alerts")


class LoggingAlertSink:
    """Logs each alert event (warning when firing or flapping, info otherwise)."""

    name = "log"

    def alerts_changed(self, events: Sequence[AlertEvent], now: float) -> None:
        for event in events:
            alert, state = event.alert, event.state
            level = logging.WARNING if alert.state == "firing" else logging.INFO
            extra = f" (changed {event.flap_count} times)" if state is AlertState.FLAPPING else ""
            log.log(level, "alert %s %s%s: %s%s", alert.rule, state.value.upper(), extra,
                    alert.annotations.get("summary") or alert.labels,
                    "" if alert.value is None else f" [value {alert.value:g}]",
                    extra={"alert": alert.rule, "fingerprint": alert.fingerprint})
