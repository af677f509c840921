"""Fixtures shared by every test: a clean secret registry and catalog assertions."""

from __future__ import annotations

import pytest

from agent.catalog import load_catalog
from agent.samples import CheckResult
from agent.secrets import clear_secrets


@pytest.fixture(autouse=True)
def _fresh_secrets():
    clear_secrets()
    yield
    clear_secrets()


def assert_in_catalog(result: CheckResult) -> None:
    """Every metric a check emitted is declared in the catalog with the same kind."""
    catalog = load_catalog()
    for sample in result.samples:
        spec = catalog.get(sample.metric)
        assert spec is not None, f"{sample.metric} is emitted but not declared in any metadata.csv"
        assert spec.kind == sample.kind, f"{sample.metric}: emitted as {sample.kind}, declared {spec.kind}"


@pytest.fixture
def catalog_check():
    return assert_in_catalog
