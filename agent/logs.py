"""Structured logging: JSON lines when the stream is not a terminal, text otherwise.

Every record passes through :func:`agent.secrets.scrub`, so a secret that reaches a log
message (inside a foreign exception, a URL) is masked before it is written. When the
output is JSON, nothing else may write plain text beside it: Python warnings and uncaught
exceptions of threads are turned into records too, and the console receiver asks
:func:`wants_json` before it prints an alert (a container's log pipeline parses every line).
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from typing import Any

from agent.secrets import scrub

__all__ = ["json_line", "setup_logging", "wants_json"]

_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
_FORMAT = "auto"  # agent.log_format as last set up: auto | json | text


def _stamp(created: float) -> str:
    millis = int(created * 1000) % 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{millis:03d}Z"


def json_line(level: str, logger: str, msg: str, created: float | None = None,
              **fields: Any) -> str:
    """One log record as a JSON object on one line (the shape of every JSON log line)."""
    doc: dict[str, Any] = {"ts": _stamp(time.time() if created is None else created),
                           "level": level, "logger": logger, "msg": scrub(msg)}
    for key, value in fields.items():
        doc[key] = _plain(value)
    return json.dumps(doc, ensure_ascii=False)


def _plain(value: Any) -> Any:
    if isinstance(value, (int, float, bool, type(None))):
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return scrub(str(value))


def wants_json(stream: Any) -> bool:
    """Whether a line written to ``stream`` must be JSON: log_format json, or auto and no TTY."""
    if _FORMAT != "auto":
        return _FORMAT == "json"
    return not getattr(stream, "isatty", lambda: False)()


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
        extra = {k: v if isinstance(v, (int, float, bool, type(None))) else scrub(str(v))
                 for k, v in self._extra(record).items()}
        return json_line(record.levelname.lower(), record.name, self._text(record),
                         record.created, **extra)


class TextFormatter(_Scrubbed):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        extra = " ".join(f"{k}={scrub(str(v))}" for k, v in self._extra(record).items())
        return f"{stamp} {record.levelname:<7} {record.name}: {self._text(record)}" + (f"  {extra}" if extra else "")


def _thread_excepthook(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    logging.getLogger("agent.threads").error(
        "uncaught exception in thread %s", getattr(args.thread, "name", "?"),
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback))  # type: ignore[arg-type]


def setup_logging(level: str = "info", fmt: str = "auto", stream: object = None) -> None:
    """Configure the root logger once (again on reload)."""
    global _FORMAT
    _FORMAT = fmt
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
    logging.captureWarnings(True)  # warnings.warn() becomes a record, not a bare stderr line
    threading.excepthook = _thread_excepthook
