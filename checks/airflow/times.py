"""Airflow timestamps <-> epoch seconds.

Airflow 2 writes ``2026-11-28T15:19:44.687708+00:00`` and Airflow 3 ``...Z``; both parse
with :func:`datetime.fromisoformat`. Queries are sent with ``Z`` so no ``+`` needs escaping.
"""

from __future__ import annotations

from datetime import datetime, timezone

__all__ = ["parse_ts", "format_ts"]


def parse_ts(value: object) -> float | None:
    """Epoch seconds of an Airflow timestamp; None for null or a value that is not one."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:  # Airflow stores UTC; a naive value is UTC
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()


def format_ts(epoch: float) -> str:
    """An epoch as the ISO form both API versions accept in query filters."""
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat().replace("+00:00", "Z")
