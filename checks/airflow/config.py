"""Settings of one `airflow` check instance (one Airflow deployment).

Validated at start-up like every other config section; every duration is a
:data:`agent.durations.Duration` and every credential a ``SecretStr`` so it never reaches a
log line, an error, /status or a Slack message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from agent.check import InstanceConfig
from agent.durations import Duration

__all__ = ["AirflowConfig"]


class AirflowConfig(InstanceConfig):
    """One Airflow deployment watched through its REST API (Airflow 2 `/api/v1`, 3 `/api/v2`)."""

    interval: Duration = Field(60.0, gt=0, description="Time between polls of the Airflow API.")
    timeout: Duration | None = Field(
        None, gt=0, description="Deadline for one poll (default: the interval, at most 50s)."
    )
    scope: Literal["local", "cluster"] = Field(
        "cluster",
        description="`cluster` (default): one elected agent polls a shared Airflow.",
    )
    url: str = Field(
        description="Base URL of the Airflow webserver / api-server, e.g. http://airflow:8080."
    )
    ui_url: str | None = Field(
        None, description="Base URL users open in a browser, for log links (default: `url`)."
    )
    api_version: Literal["auto", "1", "2"] = Field(
        "auto",
        description="`2`: Airflow 3 (/api/v2, JWT); `1`: Airflow 2 (/api/v1, basic auth); "
        "`auto` asks /api/v2/version, then /api/v1/version.",
    )
    username: str | None = Field(
        None, description="User for basic auth (v1) or POST /auth/token (v2)."
    )
    password: SecretStr | None = Field(None, description="Password of `username`.")
    token: SecretStr | None = Field(
        None,
        description="A bearer token used as is (no renewal); instead of username/password.",
    )
    tls_verify: bool = Field(True, description="Verify the Airflow API's TLS certificate.")
    ca_bundle: Path | None = Field(
        None, description="PEM file of CA certificates to verify the Airflow API with."
    )
    client_cert: Path | None = Field(
        None, description="Client certificate (PEM) for mutual TLS."
    )
    client_key: Path | None = Field(None, description="Private key of `client_cert` (PEM).")
    dags: tuple[str, ...] = Field(
        ("*",), description="Glob patterns on dag_id; a DAG is watched when any pattern matches."
    )
    exclude_dags: tuple[str, ...] = Field((), description="Glob patterns on dag_id to leave out.")
    dag_tags: tuple[str, ...] = Field(
        (), description="Watch only DAGs carrying at least one of these tags (empty: any)."
    )
    include_paused: bool = Field(False, description="Also watch paused DAGs (never reported late).")
    dag_refresh: Duration = Field(
        60.0, gt=0, description="How often the DAG list (selection, schedules) is re-read."
    )
    initial_lookback: Duration = Field(
        3600.0, ge=0,
        description="On the very first poll (no cursor stored yet), report runs that ended "
        "this long ago.",
    )
    cursor_overlap: Duration = Field(
        120.0, ge=0,
        description="Re-read runs that ended this long before the cursor, to catch rows committed "
        "late or clocks that disagree; already-reported runs are not reported again.",
    )
    stuck_after: Duration | None = Field(
        None, gt=0, description="A run running longer than this is stuck (absolute limit)."
    )
    stuck_factor: float = Field(
        3.0, gt=0,
        description="A run running longer than this many times its DAG's p95 duration is stuck.",
    )
    stuck_min_history: int = Field(
        5, ge=1, description="Successful runs needed before the learned p95 is used."
    )
    late_after: Duration = Field(
        600.0, ge=0,
        description="Grace period: a DAG is late when its scheduled run has not started this long "
        "after the time its schedule promised.",
    )
    queued_too_long: Duration = Field(
        600.0, gt=0, description="A task instance queued longer than this is reported."
    )
    heartbeat_max_age: Duration = Field(
        60.0, gt=0,
        description="A component whose last heartbeat is older than this is unhealthy, "
        "whatever its status field says.",
    )
    page_size: int = Field(
        100, ge=1, le=1000, description="Items per API page (Airflow caps it at 100 by default)."
    )
    max_runs_per_poll: int = Field(
        1000, ge=1,
        description="Finished runs handled per poll; the rest wait for the next poll "
        "(bounded work).",
    )
    task_instances: bool = Field(
        False,
        description="Also report every task instance of each finished run (duration, the host "
        "it ran on, start and end): what GPU cost attribution needs. One more request per run.",
    )
    concurrency: int = Field(4, ge=1, le=64, description="API requests in flight at once.")
    freshness_lookups_per_poll: int = Field(
        50, ge=0,
        description="DAGs whose last success is unknown looked up per poll (one request each).",
    )

    @field_validator("url", "ui_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"expected an http:// or https:// URL, found {value!r}")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _default_timeout(self) -> AirflowConfig:
        # overrides the base validator of the same name: a poll may take longer than 10s
        if self.timeout is None:
            object.__setattr__(self, "timeout", min(self.interval, 50.0))
        return self

    @model_validator(mode="after")
    def _credentials(self) -> AirflowConfig:
        if self.token is not None and (self.username or self.password):
            raise ValueError("give either `token` or `username`/`password`, not both")
        if bool(self.username) != bool(self.password):
            raise ValueError("`username` and `password` go together")
        if self.token is None and not self.username:
            raise ValueError("give `username` and `password` (or a bearer `token`)")
        if self.ca_bundle is not None and not self.tls_verify:
            raise ValueError("`ca_bundle` has no effect with `tls_verify: false`; remove one")
        if self.client_key is not None and self.client_cert is None:
            raise ValueError("`client_key` is set without `client_cert`")
        return self

    @property
    def deadline(self) -> float:
        return float(self.timeout or min(self.interval, 50.0))
