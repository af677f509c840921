"""Fixtures of the dashboard tests: a fresh PostgreSQL database for the fleet agent."""

from tests.fleet.conftest import pg_url  # noqa: F401 - re-exported fixture
