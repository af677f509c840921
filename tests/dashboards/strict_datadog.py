"""Strict validation of Datadog dashboard JSON against the official datadog-api-client models.

The client's own deserialiser accepts unknown widget types (its oneOf falls back to a
bare container) and unknown fields (additional properties); dashboards that rot that way
import with broken widgets. This walks the JSON beside the deserialised model and fails
on either.
"""

from __future__ import annotations

from typing import Any

from datadog_api_client import Configuration
from datadog_api_client.model_utils import ModelComposed, ModelNormal, validate_and_convert_types
from datadog_api_client.v1.model.dashboard import Dashboard

__all__ = ["validate_dashboard"]


def validate_dashboard(doc: dict[str, Any]) -> Dashboard:
    model = validate_and_convert_types(doc, (Dashboard,), ["dashboard"], True, True, Configuration())
    _walk(doc, model, "dashboard")
    return model


def _walk(raw: Any, model: Any, path: str) -> None:
    if isinstance(model, ModelComposed):
        inner = model.get_oneof_instance()
        if inner is None or getattr(model, "_unparsed", False):
            raise AssertionError(f"{path}: no {type(model).__name__} variant matches {raw!r:.200}")
        _walk(raw, inner, path)
        return
    if isinstance(model, ModelNormal):
        if getattr(model, "_unparsed", False):
            raise AssertionError(f"{path}: {type(model).__name__} could not parse {raw!r:.200}")
        known = set(type(model).attribute_map.values())
        unknown = set(raw) - known
        if unknown:
            raise AssertionError(f"{path}: unknown fields {sorted(unknown)} for {type(model).__name__}")
        by_json = {v: k for k, v in type(model).attribute_map.items()}
        for key, value in raw.items():
            _walk(value, getattr(model, by_json[key]), f"{path}.{key}")
        return
    if isinstance(raw, list):
        for i, (r, m) in enumerate(zip(raw, model)):
            _walk(r, m, f"{path}[{i}]")
