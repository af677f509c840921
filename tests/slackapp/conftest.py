"""Fixtures for the Slack actions tests: the store on SQLite and on the real PostgreSQL."""

from __future__ import annotations

from tests.history.conftest import db_url, pg_url, sqlite_url  # noqa: F401 - fixtures
