"""Notifiers: Slack (bot and webhook), Alertmanager and the console, and the delivery stages."""
