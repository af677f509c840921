"""Settings of a ``model_endpoint`` instance, and the HTTP options every probe check shares."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from yarl import URL

from agent.check import InstanceConfig
from agent.durations import Duration

__all__ = ["CanaryConfig", "HttpOptions", "JsonAssertion", "ModelEndpointConfig", "PROTOCOLS"]

PROTOCOLS = ("v2", "torchserve", "tfserving", "kserve-v1", "mlflow", "http")
_NEEDS_MODEL = {"v2", "torchserve", "tfserving", "kserve-v1"}


def check_url(value: str) -> str:
    """An absolute http(s) URL with a host; credentials belong in the auth fields."""
    try:
        url = URL(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"not a URL: {value!r} ({exc})") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"expected an http:// or https:// URL with a host, found {value!r}")
    if url.user or url.password:
        raise ValueError("put credentials in `username`/`password` or `bearer_token`, "
                         "not in the URL (URLs appear in tags and messages); found some")
    return value


class HttpOptions(BaseModel):
    """How a check talks HTTP to its target: deadline, body cut-off, TLS and auth."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(description="Base URL of the target (for `protocol: http`, the URL probed).")
    request_timeout: Duration = Field(
        5.0, gt=0, description="Deadline of one HTTP request, body included (capped at `timeout`)."
    )
    max_body_bytes: int = Field(
        1_048_576, ge=1, description="Answers longer than this are cut off and reported malformed."
    )
    tls_verify: bool = Field(True, description="Verify the target's TLS certificate.")
    ca_bundle: Path | None = Field(
        None, description="PEM file of CA certificates to verify the target with."
    )
    headers: dict[str, str] = Field(
        default_factory=dict, description="Extra request headers (not secret; use the auth fields)."
    )
    bearer_token: SecretStr | None = Field(
        None, description="Sent as `Authorization: Bearer ...` (TorchServe: the inference key)."
    )
    username: str | None = Field(None, description="HTTP basic auth user.")
    password: SecretStr | None = Field(None, description="HTTP basic auth password.")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_url(value)

    @field_validator("headers")
    @classmethod
    def _no_auth_header(cls, value: dict[str, str]) -> dict[str, str]:
        if any(k.lower() == "authorization" for k in value):
            raise ValueError("set `bearer_token` or `username`/`password` instead of an "
                             "Authorization header, so the secret is never logged; found one")
        return value

    @model_validator(mode="after")
    def _auth(self) -> HttpOptions:
        if self.bearer_token is not None and (self.username or self.password):
            raise ValueError("use either `bearer_token` or `username`/`password`; found both")
        if (self.password is None) != (self.username is None):
            raise ValueError("basic auth needs both `username` and `password`; found only one")
        if self.ca_bundle is not None and not self.tls_verify:
            raise ValueError("`ca_bundle` has no effect with `tls_verify: false`; "
                             "found both, remove one")
        return self


class JsonAssertion(BaseModel):
    """One expectation on a JSON answer: the value at ``path`` exists or equals something."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(min_length=1, description="Dotted path with indexes: `outputs[0].name`.")
    equals: Any = Field(None, description="The value expected there (omit to only require it).")
    exists: bool = Field(True, description="false: the path must be absent.")


class CanaryConfig(BaseModel):
    """A sample inference POSTed at its own interval."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    interval: Duration = Field(60.0, gt=0, description="Time between canary inferences.")
    path: str | None = Field(
        None, description="Path to POST to (default: the protocol's inference route)."
    )
    request: dict[str, Any] | list[Any] = Field(description="The JSON body to send.")
    expect: tuple[JsonAssertion, ...] = Field(
        default=(), description="Checks on the JSON answer's shape."
    )

    @field_validator("path")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError(f"expected a path starting with '/', found {value!r}")
        return value


class ModelEndpointConfig(InstanceConfig, HttpOptions):
    """One model on one model server (or one plain HTTP URL)."""

    protocol: Literal["v2", "torchserve", "tfserving", "kserve-v1", "mlflow", "http"] = Field(
        description="How the server says it is ready: v2 (KServe/Triton/MLServer), torchserve, "
        "tfserving, kserve-v1, mlflow or http."
    )
    model: str | None = Field(
        None, min_length=1, description="Model name (required except for mlflow and http)."
    )
    version: str | None = Field(
        None, min_length=1,
        description="Model version to probe (default: whatever the server serves).",
    )
    management_url: str | None = Field(
        None, description="TorchServe management API (default: `url` with port 8081)."
    )
    management_token: SecretStr | None = Field(
        None, description="TorchServe management key (token authorisation)."
    )
    expected_status: tuple[int, ...] = Field(
        (200,), description="`protocol: http`: status codes that mean up."
    )
    expect: tuple[JsonAssertion, ...] = Field(
        default=(), description="`protocol: http`: checks on the JSON body."
    )
    canary: CanaryConfig | None = Field(None, description="Optional canary inference.")

    @field_validator("management_url")
    @classmethod
    def _mgmt_url(cls, value: str | None) -> str | None:
        return None if value is None else check_url(value)

    @model_validator(mode="after")
    def _per_protocol(self) -> ModelEndpointConfig:
        if self.protocol in _NEEDS_MODEL and not self.model:
            raise ValueError(f"protocol {self.protocol!r} needs `model` (the model's name); "
                             "none found")
        if self.protocol != "torchserve" and (self.management_url or self.management_token):
            raise ValueError("`management_url`/`management_token` apply to protocol "
                             "torchserve only; "
                             f"found them with protocol {self.protocol!r}")
        if self.protocol != "http" and (self.expect or self.expected_status != (200,)):
            raise ValueError("`expected_status`/`expect` apply to protocol http only (use "
                             f"`canary.expect` for inference answers); found them with protocol "
                             f"{self.protocol!r}")
        if self.protocol == "http" and self.canary is not None and self.canary.path is None:
            raise ValueError("protocol http has no inference route: set `canary.path` (none found)")
        return self

    @property
    def probe_deadline(self) -> float:
        return min(float(self.request_timeout), self.deadline)
