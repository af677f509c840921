"""The console receiver: the human table on a terminal, one JSON object per line elsewhere.

The end-to-end case (a real `mlwarden run` with stdout piped, an alert firing) is in
tests/agent/test_stdout_json.py; these pin the two renderings and the choice between them.
"""

from __future__ import annotations

import io
import json

import pytest

from agent.alerting.config import AlertingConfig
from agent.alerting.dispatch import Dispatcher
from agent.logs import setup_logging
from agent.notify.console import ConsoleNotifier
from tests.alerting.helpers import Clock, fire, resolve, store


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def auto_format():
    setup_logging("info", "auto", stream=io.StringIO())
    yield
    setup_logging("info", "auto", stream=io.StringIO())


async def _notify(tmp_path, out) -> None:
    clock = Clock()
    d = Dispatcher(AlertingConfig.model_validate({"group_wait": 0, "group_interval": "1s"}),
                   store(tmp_path), clock=clock,
                   notifiers={"console": ConsoleNotifier("console", stream=out)})
    fired = [fire("GpuIdle", {"node": "gpu-3"}, clock.now, severity="critical"),
             fire("GpuIdle", {"node": "gpu-4"}, clock.now)]
    d.alerts_changed(fired, clock.now)
    await d.tick(clock.now)
    clock.now += 5
    d.alerts_changed([resolve(e, clock.now) for e in fired], clock.now)
    await d.tick(clock.now)
    await d.stop()


async def test_piped_stdout_gets_one_json_record_per_notification(tmp_path):
    out = io.StringIO()
    await _notify(tmp_path, out)
    lines = out.getvalue().splitlines()
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert [r["msg"] for r in records] == ["[FIRING:2] GpuIdle", "[RESOLVED] GpuIdle"]
    firing, resolved = records
    assert firing["logger"] == "mlwarden.alerts" and firing["level"] == "error"  # a critical one
    assert firing["event"] == "firing" and firing["receiver"] == "console"
    assert sorted(a["labels"]["node"] for a in firing["alerts"]) == ["gpu-3", "gpu-4"]
    assert {a["state"] for a in firing["alerts"]} == {"firing"}
    assert resolved["level"] == "info" and {a["state"] for a in resolved["alerts"]} == {"resolved"}
    assert firing["ts"].endswith("Z") and set(firing) >= {"ts", "level", "logger", "msg"}


async def test_a_terminal_gets_the_human_table(tmp_path):
    out = Terminal()
    await _notify(tmp_path, out)
    text = out.getvalue()
    assert text.startswith("[FIRING:2] GpuIdle\n") and "node=gpu-3" in text
    assert "[RESOLVED] GpuIdle" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text.splitlines()[0])


@pytest.mark.parametrize(("fmt", "stream", "expect_json"), [
    ("json", Terminal(), True),      # log_format: json wins over a terminal
    ("text", io.StringIO(), False),  # log_format: text wins over a pipe
])
async def test_log_format_decides_for_the_console_too(tmp_path, fmt, stream, expect_json):
    setup_logging("info", fmt, stream=io.StringIO())
    await _notify(tmp_path, stream)
    first = stream.getvalue().splitlines()[0]
    assert first.startswith("{") is expect_json
