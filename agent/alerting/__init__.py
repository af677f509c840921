"""Alerts: rules decide when something is wrong; routing and notifiers say so."""
