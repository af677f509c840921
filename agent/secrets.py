"""Keeps secret values out of every log line, error, /status page and message.

The config loader registers each secret it reads (and the environment values substituted
into secret fields); :func:`scrub` replaces any registered value found in a text. It is
applied by the log formatter, by the check firewall to error messages, and by anything
that renders user-visible text built from foreign error messages.
"""

from __future__ import annotations

import threading

__all__ = ["MASK", "register_secret", "scrub", "clear_secrets"]

MASK = "********"
_lock = threading.Lock()
_secrets: tuple[str, ...] = ()
_MIN_LEN = 4  # shorter values would mask ordinary words


def register_secret(value: str | None) -> None:
    """Remember a secret so that :func:`scrub` hides it from now on."""
    global _secrets
    if not value or len(value) < _MIN_LEN:
        return
    with _lock:
        if value not in _secrets:
            # longest first, so a secret containing another is masked whole
            _secrets = tuple(sorted((*_secrets, value), key=len, reverse=True))


def scrub(text: str) -> str:
    """Return ``text`` with every registered secret replaced by ``********``."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def clear_secrets() -> None:
    """Forget every registered secret (tests and reloads)."""
    global _secrets
    with _lock:
        _secrets = ()
