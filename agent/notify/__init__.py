"""Notifiers: one module per receiver type (Slack, webhook, Alertmanager, console)."""
