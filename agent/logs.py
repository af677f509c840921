"""Structured logging: JSON lines when stdout is not a terminal, text otherwise.

Every record passes through :func:`agent.secrets.scrub`, so a secret that reaches a log
message (inside a foreign exception, a URL) is masked before it is written.
"""

from __future__ import annotations

import json
import logging
import sys
import time

from agent.secrets import scrub

__all__ = ["setup_logging"]

_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class _Scrubbed(logging.Formatter):
    def _text(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            text = f"{text}\n{record.exc_text}"
        return scrub(text)

    def _extra(self, record: logging.LogRecord) -> dict[str, object]:
        return {k: v for k, v in vars(record).items() if k not in _RESERVED and not k.startswith("_")}


class JsonFormatter(_Scrubbed):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": self._text(record),
        }
        for key, value in self._extra(record).items():
            doc[key] = value if isinstance(value, (int, float, bool, type(None))) else scrub(str(value))
        return json.dumps(doc, ensure_ascii=False)


class TextFormatter(_Scrubbed):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        extra = " ".join(f"{k}={scrub(str(v))}" for k, v in self._extra(record).items())
        return f"{stamp} {record.levelname:<7} {record.name}: {self._text(record)}" + (f"  {extra}" if extra else "")


def setup_logging(level: str = "info", fmt: str = "auto", stream: object = None) -> None:
    """Configure the root logger once (again on reload)."""
    out = stream or sys.stderr
    if fmt == "auto":
        fmt = "text" if getattr(out, "isatty", lambda: False)() else "json"
    handler = logging.StreamHandler(out)  # type: ignore[arg-type]
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for noisy in ("apscheduler", "aiohttp.access", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
