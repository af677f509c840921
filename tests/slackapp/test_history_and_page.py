"""Where recorded actions are read: `mlwarden alerts history RULE` and the status page's
Acknowledged column (the page's AckReader is the action store)."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from agent.alerting.silences import SilenceStore
from agent.app import Agent
from agent.cli import main
from agent.config import parse_config
from agent.slackapp.handlers import apply
from agent.slackapp.model import AlertRef, requests_from_payload
from agent.slackapp.policy import Permission
from agent.slackapp.store import ActionStore
from tests.rules.test_cli import _record_alerts
from tests.slackapp.helpers import alert, engine_for, incident, message
from tests.slackapp.socket_stand_in import block_actions_payload
from tests.support.procs import free_port

pytestmark = pytest.mark.integration


def press_and_apply(store, silences, target, action_id, *, now, user="U0ANA", name="ana",
                    permission=Permission(True), ts="1.1"):
    blocks = message(target, store, silences, now)
    (req,) = requests_from_payload(block_actions_payload(
        blocks, action_id, user=user, name=name, action_ts=ts), "slack-socket")
    return apply(req, permission=permission, store=store, silences=silences, now=now)


async def test_alerts_history_interleaves_actions_with_transitions(tmp_path, capsys):
    db = f"sqlite:///{tmp_path / 'mlwarden.db'}"
    config = tmp_path / "mlwarden.yaml"
    config.write_text(f"agent: {{history: '{db}'}}\n")
    await _record_alerts(db)  # rule Down fires at t=1000 and resolves at t=1060
    engine = engine_for(db)
    store, silences = ActionStore(engine), SilenceStore(engine)
    target = incident(store, alert("Down", "warning", check="ranker"), now=1000.0,
                      group_labels={"alertname": "Down", "check": "ranker"})
    press_and_apply(store, silences, target, "mlwarden:acknowledge", now=1010.0)
    press_and_apply(store, silences, target, "mlwarden:silence:1h", now=1020.0, user="U0EVE",
                    name="eve", permission=Permission(False, "no"), ts="1.2")
    engine.dispose()

    assert main(["alerts", "history", "Down", "-c", str(config)]) == 0
    out = capsys.readouterr().out
    seen = [out.index(s) for s in ("inactive -> firing", "acknowledged by ana",
                                   "silenced 1h by eve (refused: not allowed)",
                                   "firing -> resolved")]
    assert seen == sorted(seen), out
    ack = next(line for line in out.splitlines() if "acknowledged by ana" in line)
    assert ack.startswith("1970-01-01T00:16:50Z") and "alertname=Down,check=ranker" in ack

    assert main(["alerts", "history", "Down", "-c", str(config), "--json"]) == 0
    docs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    actions = [d for d in docs if "action" in d]
    assert [(d["action"], d["by"], d["user_id"], d["state"]) for d in actions] == [
        ("acknowledge", "ana", "U0ANA", "done"), ("silence", "eve", "U0EVE", "refused")]
    assert [d["at"] for d in docs] == sorted(d["at"] for d in docs)


CONFIG = """
agent: {listen: "127.0.0.1:PORT", history: "sqlite:///DB", hostname: ack-test, self_check: false}
alerting: {group_wait: 1h}
checks:
  - {type: model_endpoint, name: ranker, protocol: v2, model: ranker,
     url: "http://127.0.0.1:DEAD", interval: 1h}
rules:
  - {alert: EndpointDown, metric: mlwarden.endpoint.up, op: "<", threshold: 1,
     group_by: [check, model], severity: critical, summary: "{model} is down"}
"""


async def test_the_status_page_shows_who_acknowledged_a_live_alert(tmp_path):
    db = tmp_path / "h.db"
    text = (CONFIG.replace("PORT", str(free_port())).replace("DEAD", str(free_port()))
            .replace("DB", str(db)))
    agent = Agent(parse_config(text))
    await agent.start()
    try:
        await agent.scheduler.run_once("ranker")
        await agent.pipeline.drain(5)
        for _ in range(100):
            if agent.rules.evaluator.alerts():
                break
            await asyncio.sleep(0.05)
        (live,) = agent.rules.evaluator.alerts()
        engine = engine_for(f"sqlite:///{db}")
        store, silences = ActionStore(engine), SilenceStore(engine)
        ref = AlertRef(live.fingerprint, live.rule, dict(live.labels))
        target = incident(store, ref, now=1000.0, group_labels={"check": "ranker"})
        url = f"http://127.0.0.1:{agent.server.bound_port}/"
        agent.server.page.acks = store  # as agent.app does with slack_actions set (no Slack here)
        async with aiohttp.ClientSession() as s:
            async with s.get(url) as r:
                body = await r.text()
        assert r.status == 200 and "Acknowledged</th>" in body
        row = body[body.index('data-label="Acknowledged"'):]
        assert row[:row.index("</td>")].endswith(">no")
        press_and_apply(store, silences, target, "mlwarden:acknowledge", now=1010.0)
        async with aiohttp.ClientSession() as s:
            async with s.get(url) as r:
                body = await r.text()
        row = body[body.index('data-label="Acknowledged"'):]
        assert "@ana, <time" in row[:row.index("</td>")] and ": in Slack" in row
        engine.dispose()
    finally:
        await agent.stop()
