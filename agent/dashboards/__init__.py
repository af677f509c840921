"""Dashboards users import: one description in code, rendered to Datadog and Grafana JSON."""
