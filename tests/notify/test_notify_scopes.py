"""Scopes known at start: the token's X-OAuth-Scopes (from auth.test) are compared with what
each bot-mode feature needs, at start and on reload, and the log names the missing scope and
the feature it turns off; features known to be off are not tried.

Slack is the strict fake (fake_slack.py; Slack cannot run here), whose answers carry
X-OAuth-Scopes and which refuses a method without its scope (``missing_scope``).
"""

from __future__ import annotations

import logging

import pytest

from agent.alerting.config import AlertingConfig
from agent.alerting.dispatch import Dispatcher
from agent.notify.slack_scopes import FEATURES
from tests.alerting.helpers import Clock, fire, store
from tests.notify.fake_slack import ALL_SCOPES, SCOPES, TOKEN, FakeSlack

pytestmark = pytest.mark.integration


class History:
    def read_series(self, metric, since, until=None, tags=None):
        return {(("model", "a"),): [(since + i * 10, float(i % 3)) for i in range(30)]}


def config(fake: FakeSlack, channel: str = "#ml-alerts", **extra: object) -> AlertingConfig:
    return AlertingConfig.model_validate({
        "slack": {"token": TOKEN, "default_channel": channel, "base_url": fake.base_url,
                  "timeout": 1},
        "group_wait": 0,
        **extra,
    })


def alert(now: float):
    return fire("AlphaDown", {"model": "a"}, now,
                annotations={"summary": "a is down", "metric": "mlwarden.endpoint.up"})


async def ticks(d: Dispatcher, clock: Clock, n: int) -> None:
    for _ in range(n):
        await d.tick(clock.now)
        clock.advance(1)


def warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_every_method_the_receiver_calls_is_covered_by_a_feature():
    """The scope table names every scope the fake (like Slack) demands of a method we call."""
    needed = set().union(*SCOPES.values())
    covered = {s for f in FEATURES for s in f.scopes}
    assert needed <= covered, needed - covered


async def test_all_scopes_every_feature_on(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    fake = await FakeSlack(scopes=ALL_SCOPES).start()
    clock = Clock()
    d = Dispatcher(config(fake), store(tmp_path), reader=History(), clock=clock)
    try:
        await ticks(d, clock, 1)
        setup = d.status()["receivers"]["slack"]["setup"]
    finally:
        await d.stop()
        await fake.stop()
    assert setup == {"scopes": sorted(ALL_SCOPES), "features_off": {}}
    assert any("allow every feature" in r.getMessage() for r in caplog.records)
    assert not warnings(caplog)
    assert [c[0] for c in fake.calls] == ["auth.test"], "nothing else is needed to know"


async def test_without_files_write_charts_are_off_and_never_tried(tmp_path, caplog):
    fake = await FakeSlack(scopes=ALL_SCOPES - {"files:write"}).start()
    clock = Clock()
    d = Dispatcher(config(fake), store(tmp_path), reader=History(), clock=clock)
    try:
        await ticks(d, clock, 1)  # at start, before any alert
        said = warnings(caplog)
        d.alerts_changed([alert(clock.now)], clock.now)
        await ticks(d, clock, 2)
        status = d.status()
    finally:
        await d.stop()
        await fake.stop()
    assert said == ["slack receiver 'slack': the token lacks files:write: charts is off (alerts "
                    "are posted without the chart of their series); add it under OAuth & "
                    "Permissions > Bot Token Scopes and reinstall the app"]
    assert status["receivers"]["slack"]["setup"]["features_off"] == {"charts": "needs files:write"}
    assert len(fake.top_level()) == 1 and not fake.files
    assert not [c for c in fake.calls if c[0].startswith("files.")]
    assert status["status"] == "ok" and status["receivers"]["slack"]["sent"] == 1


async def test_without_history_scopes_read_back_is_off_and_the_post_goes_out(tmp_path, caplog):
    fake = await FakeSlack(scopes=frozenset({"chat:write", "files:write"})).start()
    fake.hang_seconds = 2
    clock = Clock()
    cfg = config(fake, channel="C0ALERTS01")  # an ID: no channel lookup needed
    d = Dispatcher(cfg, store(tmp_path), clock=clock)
    try:
        await ticks(d, clock, 1)
        said = warnings(caplog)
        fake.fail("lost_response", {"chat.postMessage"}, times=1)
        d.alerts_changed([alert(clock.now)], clock.now)
        await ticks(d, clock, 10)
    finally:
        await d.stop()
        await fake.stop()
    assert len(said) == 1
    assert "lacks channels:history or groups:history: read-back is off" in said[0]
    assert "posted twice" in said[0]
    assert not [c for c in fake.calls if c[0].startswith("conversations.")], "not even tried"
    assert len(fake.top_level()) == 2, "at least once: the lost answer's message is posted again"


async def test_a_channel_name_without_read_scopes_says_so(tmp_path, caplog):
    from tests.notify.fake_slack import DOCUMENTED_BEFORE

    fake = await FakeSlack(scopes=DOCUMENTED_BEFORE).start()
    clock = Clock()
    d = Dispatcher(config(fake), store(tmp_path), clock=clock)
    try:
        await ticks(d, clock, 1)
        off = d.status()["receivers"]["slack"]["setup"]["features_off"]
    finally:
        await d.stop()
        await fake.stop()
    assert off == {"channel lookup": "needs channels:read or groups:read"}
    assert any("lacks channels:read or groups:read: channel lookup is off" in m
               for m in warnings(caplog))


async def test_without_chat_write_the_receiver_stops_at_start(tmp_path, caplog, capsys):
    fake = await FakeSlack(scopes=frozenset({"files:write", "channels:history"})).start()
    clock = Clock()
    d = Dispatcher(config(fake), store(tmp_path), clock=clock)
    try:
        await ticks(d, clock, 1)
        before_any_alert = d.status()
        d.alerts_changed([alert(clock.now)], clock.now)
        await ticks(d, clock, 3)
    finally:
        await d.stop()
        await fake.stop()
    assert before_any_alert["status"] == "critical"
    [problem] = before_any_alert["problems"]
    assert "lacks chat:write: posting, threads and editing are off" in problem
    assert not [c for c in fake.calls if c[0] == "chat.postMessage"]
    assert "[FIRING:1] AlphaDown" in capsys.readouterr().out


async def test_a_bad_token_is_reported_at_start(tmp_path, caplog):
    fake = await FakeSlack().start()
    clock = Clock()
    cfg = AlertingConfig.model_validate({
        "slack": {"token": "xoxb-wrong", "base_url": fake.base_url, "timeout": 1},
    })
    d = Dispatcher(cfg, store(tmp_path), clock=clock)
    try:
        await ticks(d, clock, 1)
        status = d.status()
    finally:
        await d.stop()
        await fake.stop()
    assert status["status"] == "critical"
    assert "auth.test: invalid_auth" in status["problems"][0]
    assert "xoxb-wrong" not in str(status) + caplog.text


async def test_scopes_are_checked_again_on_reload(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    fake = await FakeSlack(scopes=ALL_SCOPES - {"files:write"}).start()
    clock = Clock()
    d = Dispatcher(config(fake), store(tmp_path), reader=History(), clock=clock)
    try:
        await ticks(d, clock, 1)
        assert d.status()["receivers"]["slack"]["setup"]["features_off"] == {
            "charts": "needs files:write"}
        fake.scopes = ALL_SCOPES  # the admin added the scope and reinstalled the app
        await d.reconfigure(config(fake))
        await ticks(d, clock, 1)
        setup = d.status()["receivers"]["slack"]["setup"]
    finally:
        await d.stop()
        await fake.stop()
    assert setup["features_off"] == {} and "files:write" in setup["scopes"]
    assert [c[0] for c in fake.calls].count("auth.test") == 2


async def test_slack_down_at_start_checks_again_later(tmp_path, caplog):
    fake = await FakeSlack().start()
    clock = Clock()
    d = Dispatcher(config(fake), store(tmp_path), clock=clock)
    try:
        fake.fail("500")
        await ticks(d, clock, 3)
        assert "setup" not in d.status()["receivers"]["slack"]
        assert d.status()["status"] == "ok", "not knowing is not broken"
        fake.recover()
        await ticks(d, clock, 61)
        setup = d.status()["receivers"]["slack"]["setup"]
    finally:
        await d.stop()
        await fake.stop()
    assert setup["features_off"] == {}
    assert [c[0] for c in fake.calls].count("auth.test") == 2
    assert any("checking receiver 'slack''s setup again in 1 min" in m for m in warnings(caplog))


def test_the_docs_list_every_scope_per_feature_as_the_agent_checks_them():
    from tests.support.procs import REPO

    text = (REPO / "docs" / "alerting.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ") and "`" in line
            and any(line.startswith(f"| {f.name} |") for f in FEATURES)]
    expected = [f"| {f.name} | {' or '.join(f'`{s}`' for s in f.scopes)} | {f.methods} | "
                f"{f.without} |" for f in FEATURES]
    assert rows == expected
