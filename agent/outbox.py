"""Where the outbox used to live: it is :mod:`agent.history.outbox` now, with the store
that owns its table. Kept for the importers not yet moved (``agent/alerting/dispatch.py``)."""

from agent.history.outbox import CLAIM_TIMEOUT, Outbox, OutboxBatch, OutboxItem

__all__ = ["Outbox", "OutboxBatch", "OutboxItem", "CLAIM_TIMEOUT"]
