"""The console receiver: notifications as plain text on stdout (the embedded default, so an
agent with no Slack configured still shows its alerts somewhere)."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from agent.notify.base import Notification, Notifier, SendContext
from agent.notify.render import plain_text

__all__ = ["ConsoleNotifier"]


class ConsoleNotifier(Notifier):
    type = "console"

    def __init__(self, name: str = "console", stream: TextIO | None = None) -> None:
        self.name = name
        self.description = "stdout"
        self._stream = stream

    async def send(self, note: Notification, ctx: SendContext) -> dict[str, Any]:
        stream = self._stream or sys.stdout
        print(plain_text(note, ctx.now, ctx.late_note), file=stream, flush=True)
        return {"printed": True}
