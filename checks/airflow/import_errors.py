"""DAG files that do not import: a count, and one series per broken file.

Each broken file's series carries the file name and the first line of the error (the
exception line, e.g. ``ModuleNotFoundError: No module named 'x'``) so an alert names both.
A file that was broken and is fixed gets one last 0 (remembered in the store), so an alert
on it resolves instead of waiting for its series to go stale.
"""

from __future__ import annotations

from typing import Any

__all__ = ["collect_import_errors", "first_error_line"]

STATE_KEY = "import_error_files"
MAX_LINE = 200


def first_error_line(trace: object) -> str:
    """The exception line of a Python traceback (or the first line of a plain message)."""
    if not isinstance(trace, str):
        return ""
    lines = [line.rstrip() for line in trace.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    if lines[0].startswith("Traceback"):
        unindented = [line for line in lines[1:] if not line[:1].isspace()]
        line = unindented[-1] if unindented else lines[-1].strip()
    else:
        line = lines[0].strip()
    return line if len(line) <= MAX_LINE else line[:MAX_LINE - 3] + "..."


async def collect_import_errors(check: Any) -> None:
    store = check.context.state
    errors = await check.client.get_all("/importErrors", "import_errors")
    check.gauge("airflow.import_errors", len(errors))
    broken: dict[str, str] = {}
    for err in errors:
        filename = str(err.get("filename") or "?")  # v2: absolute; v3: relative to its bundle
        broken[filename] = first_error_line(err.get("stack_trace"))
    for filename, line in sorted(broken.items()):
        check.gauge("airflow.import_error", 1, tags={"filename": filename, "error": line})
    before = await store.get_state(check.name, STATE_KEY) or {}
    if isinstance(before, dict):
        for filename, line in sorted(before.items()):
            if filename not in broken:
                check.gauge("airflow.import_error", 0,
                            tags={"filename": filename, "error": str(line)})
    await store.set_state(check.name, STATE_KEY, broken)
