"""Config models of the receivers and of delivery, owned by notify: the Slack credentials,
the Alertmanager defaults, the named receivers and how the outbox is drained.

They are parts of the ``alerting:`` section (``agent/alerting/config.py`` holds the route
tree that names these receivers); notify reads only these, never the routes.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from agent.durations import Duration

__all__ = ["AlertmanagerSettings", "DeliveryConfig", "ReceiverConfig", "SlackSettings"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class SlackSettings(_Model):
    """Slack credentials shared by the Slack receivers (bot token and/or incoming webhook)."""

    token: SecretStr | None = Field(
        None, description="Bot token (xoxb-...): chat.postMessage, threads, updates, charts."
    )
    webhook_url: SecretStr | None = Field(
        None, description="Incoming webhook URL: plain messages, no threads, updates or files."
    )
    default_channel: str = Field("#ml-alerts", description="Channel of the `slack` bot receiver.")
    base_url: str = Field(
        "https://slack.com/api/", description="Slack Web API base URL (tests, proxies)."
    )
    timeout: Duration = Field(10.0, gt=0, description="Timeout of one Slack API call.")
    charts: bool = Field(
        True,
        description="Attach a chart of the metric's recent history (bot mode; needs the "
        "`charts` extra, else alerts go without it).",
    )
    chart_window: Duration = Field(
        3600.0, gt=0, description="History shown on the chart and sparkline."
    )
    fallback: str | None = Field(
        None,
        description="Receiver that gets the `slack` receiver's notifications when Slack "
        "refuses them or the receiver cannot post at all (default: `console`).",
    )


class AlertmanagerSettings(_Model):
    """Defaults of the Alertmanager receivers."""

    resend_interval: Duration = Field(
        60.0,
        gt=0,
        description="Re-post firing alerts this often, so Alertmanager keeps them active.",
    )
    timeout: Duration = Field(10.0, gt=0, description="Timeout of one POST to /api/v2/alerts.")


class ReceiverConfig(_Model):
    """One place notifications go."""

    name: str = Field(..., min_length=1, description="Name that routes refer to.")
    type: Literal["slack", "webhook", "alertmanager", "console"] = Field(
        ...,
        description="`slack` (bot token), `webhook` (Slack incoming webhook), `alertmanager`, `console`.",
    )
    channel: str | None = Field(None, description="Slack channel (`slack` receivers).")
    url: SecretStr | None = Field(
        None, description="Webhook URL (`webhook`) or Alertmanager base URL (`alertmanager`)."
    )
    token: SecretStr | None = Field(None, description="Bot token; default: `alerting.slack.token`.")
    fallback: str | None = Field(
        None,
        description="Receiver that gets this one's notifications when it refuses them or "
        "cannot post at all (invalid_auth, channel_not_found; default: `console`).",
    )
    send_resolved: bool | None = Field(None, description="Default: `alerting.send_resolved`.")

    @model_validator(mode="after")
    def _needs(self) -> "ReceiverConfig":
        if self.type == "webhook" and self.url is None:
            raise ValueError(
                f"receiver {self.name!r} of type webhook needs `url` (the incoming webhook URL)"
            )
        if self.type == "alertmanager" and self.url is None:
            raise ValueError(
                f"receiver {self.name!r} of type alertmanager needs `url` "
                "(e.g. http://alertmanager:9093)"
            )
        if self.fallback == self.name:
            raise ValueError(f"receiver {self.name!r} cannot be its own fallback")
        return self


class DeliveryConfig(_Model):
    """How the outbox is drained."""

    retry_initial: Duration = Field(5.0, gt=0, description="First retry delay after a failed send.")
    retry_max: Duration = Field(
        300.0, gt=0, description="Longest retry delay (exponential backoff)."
    )
    pace: Duration = Field(
        1.0, ge=0, description="Minimum time between two messages to one channel."
    )
    late_after: Duration = Field(
        60.0, ge=0, description="A message sent this much later than due says how late and why."
    )
    tick: Duration = Field(
        0.5, gt=0, description="How often groups are flushed and the outbox is drained."
    )
    keep_sent: Duration = Field(
        7 * 86400.0, gt=0, description="Delivered rows are pruned after this."
    )
