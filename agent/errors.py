"""The agent's error tree.

Every error a user can see is one of these, with a message that says what is wrong,
where, and what to do. Foreign errors (pydantic, YAML, aiohttp, SQLAlchemy, slack_sdk)
are translated at the edge of the module that talks to them, with ``raise ... from exc``.

    AgentError
     ├── ConfigError(ValueError)        bad or unreadable config; lists every problem
     ├── DataError(ValueError)          a bad input data file (`rules test` CSV); lists every problem
     ├── UnknownCheckError(LookupError) a check type no installed plugin provides
     ├── CheckError                      a check failed to run (carries a Status)
     │    └── CheckTimeout(TimeoutError) a check overran its own timeout
     ├── StoreError                      the history store failed
     └── DeliveryError                   sending to a peer failed, with the verdict as data
          ├── ExportError                an exporter could not deliver
          └── NotifyError                a notifier could not deliver
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "AgentError",
    "CheckError",
    "CheckTimeout",
    "ConfigError",
    "DataError",
    "DeliveryError",
    "ExportError",
    "NotifyError",
    "StoreError",
    "UnknownCheckError",
]


class AgentError(Exception):
    """Base of every error the agent raises on purpose."""


class ConfigError(AgentError, ValueError):
    """The config file (or one of its parts) is invalid.

    ``problems`` holds one line per problem, each naming the key path; ``str()`` lists
    them all under the file name so a user can fix everything in one pass.
    """

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        super().__init__(f"{source}: {count} config {noun}:\n{lines}")


class DataError(AgentError, ValueError):
    """An input data file (a recorded CSV for ``rules test``) is malformed.

    Kept apart from ConfigError: the rules are fine, the recording is not, and the command
    line says so with its own exit code (65).
    """

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        noun = "problem" if len(self.problems) == 1 else "problems"
        super().__init__(f"{source}: {len(self.problems)} data {noun}:\n{lines}")


class UnknownCheckError(AgentError, LookupError):
    """No installed plugin provides the check type asked for."""

    def __init__(self, type_name: str, known: Sequence[str]) -> None:
        self.type_name = type_name
        known_list = ", ".join(sorted(known)) or "none"
        super().__init__(
            f"unknown check type {type_name!r}; installed types: {known_list} "
            "(third-party types register in the 'mlwarden.checks' entry-point group)"
        )

    def __str__(self) -> str:  # LookupError would repr() the message
        return str(self.args[0])


class CheckError(AgentError):
    """A check could not complete; the check's status says how bad."""


class CheckTimeout(CheckError, TimeoutError):
    """A check overran its timeout and was cancelled."""

    def __init__(self, name: str, timeout: float) -> None:
        self.name = name
        self.timeout = timeout
        super().__init__(f"check {name!r} did not finish within its timeout of {timeout:g}s")


class StoreError(AgentError):
    """The history store failed (unreachable database, full disk, locked file)."""


class DeliveryError(AgentError):
    """Sending to a peer (Slack, a webhook, Alertmanager, Datadog's intake) failed.

    The verdict is data, set where the peer's answer is read (Alertmanager's
    ``Retrier.Check``), so whoever retries never re-reads the message text:
    ``retryable`` (trying later can help), ``retry_after`` (seconds the peer asked to wait),
    ``reason`` (one of :data:`REASONS`, the ``reason`` tag of the delivery failure metrics)
    and ``status`` (the HTTP status, when there was one).
    """

    #: why a delivery failed, coarsely (the notifiers' ``reason`` tag); the Datadog lane
    #: also says ``backoff`` (its client pausing after repeated timeouts)
    REASONS = ("rate_limited", "timeout", "server_error", "network", "rejected", "config")

    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None,
                 reason: str | None = None, status: int | None = None) -> None:
        self.retryable = retryable
        self.retry_after = retry_after
        self.status = status
        self.reason = reason or ("network" if retryable else "rejected")
        super().__init__(message)


class ExportError(DeliveryError):
    """An exporter could not deliver; ``retryable`` says whether trying later can help."""


class NotifyError(DeliveryError):
    """A notifier could not deliver; ``retryable`` says whether trying later can help."""
