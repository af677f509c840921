"""Exporters: where samples go besides the history store (Prometheus, Datadog)."""
