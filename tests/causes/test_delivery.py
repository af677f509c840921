"""Linked alerts delivered: the dispatcher with the shipped cause graph, the real Slack
notifier and the strict Slack fake (tests/notify/fake_slack.py: Slack cannot run here).

Alerts are handed to the dispatcher as the rules engine hands them, with the labels the
shipped rule packs give them (the real checks and rules making those labels are
tests/causes/test_scenario.py and test_daemon.py); time is moved by hand.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest
from sqlalchemy import select

from agent.alerting.config import AlertingConfig
from agent.alerting.dispatch import Dispatcher
from agent.causes.config import CausesConfig
from agent.history.tables import alert_links, outbox
from agent.notify.base import Notification
from agent.notify.console import ConsoleNotifier, alert_record
from tests.alerting.helpers import Clock, fire, resolve, store
from tests.notify.fake_slack import TOKEN, FakeSlack

pytestmark = pytest.mark.integration


class Terminal(io.StringIO):
    def isatty(self) -> bool:  # the console's human form
        return True


@pytest.fixture
async def slack():
    fake = await FakeSlack().start()
    fake.dispatchers = []
    yield fake
    for d in fake.dispatchers:
        await d.stop()
    await fake.stop()

N7, N8 = "gpu-node-7", "gpu-node-8"


def xid(node: str, at: float):
    return fire("GpuXidCritical", {"node": node, "gpu": "3", "uuid": f"GPU-{node}-3",
                                   "xid": "79", "xid_meaning": "GPU fell off the bus"}, at,
                severity="critical",
                annotations={"summary": f"XID 79 (GPU fell off the bus) on GPU 3 of node {node}"})


def model_down(model: str, node: str, at: float):
    return fire("EndpointDown", {"check": model, "model": model, "node": node}, at,
                severity="critical", annotations={"summary": f"{model} is down: HTTP 503"})


def task_failed(dag: str, run: str, host: str, at: float):
    return fire("AirflowTaskFailed", {"check": "prod-airflow", "dag_id": dag, "task_id": "train",
                                      "run_id": run, "try_number": "1", "hostname": host}, at,
                annotations={"summary": f"Airflow task {dag}.train failed (run {run})"})


def config(fake, **over) -> AlertingConfig:
    doc = {"slack": {"token": TOKEN, "default_channel": "#ml-alerts", "base_url": fake.base_url,
                     "timeout": 2, "charts": False},
           "group_by": ["alertname", "node", "check"], "group_wait": 30, "group_interval": 60,
           "repeat_interval": 3600, "delivery": {"retry_initial": 5, "retry_max": 60, "pace": 0}}
    doc.update(over)
    return AlertingConfig.model_validate(doc)


def dispatcher(tmp_path, slack, clock, causes=None, **over) -> Dispatcher:
    d = Dispatcher(config(slack, **over), store(tmp_path), clock=clock,
                   causes=CausesConfig.model_validate(causes or {}))
    slack.dispatchers.append(d)
    return d


async def run_for(d: Dispatcher, clock: Clock, seconds: float, step: float = 5.0) -> None:
    end = clock.now + seconds
    while clock.now < end:
        await d.tick(clock.now)
        clock.advance(step)


def texts(messages) -> list[str]:
    return [m.text for m in messages]


async def test_one_message_cause_first_later_effects_in_its_thread_other_node_alone(
        tmp_path, slack):
    clock = Clock()
    d = dispatcher(tmp_path, slack, clock)
    t0 = clock.now
    # 10:02: the GPU of gpu-node-7 falls off the bus; its model and its training task fail,
    # and the same failures happen on gpu-node-8 (whose GPUs are fine)
    d.alerts_changed([xid(N7, t0), model_down("ranker", N7, t0 + 5),
                      task_failed("train_ranker", "r1", f"{N7}.ec2.internal", t0 + 10),
                      model_down("scorer", N8, t0 + 5),
                      task_failed("batch_score", "r2", N8, t0 + 10)], t0 + 10)
    await run_for(d, clock, 60)
    top = slack.top_level()
    assert len(top) == 3, texts(top)  # the cause with its two effects; gpu-node-8's two alone
    [cause] = [m for m in top if m.text.startswith("Cause:")]
    assert cause.text.startswith(f"Cause: GPU 3 on {N7} fell off the bus (XID 79) at ")
    assert "model ranker on gpu-node-7 down since" in cause.text
    assert f"task train_ranker.train failed on {N7}.ec2.internal" in cause.text
    body = json.dumps(cause.blocks)
    assert "*Cause:* GPU 3 on gpu-node-7 fell off the bus" in body
    assert f"same node {N7} within 10m" in body  # each effect says why it was linked
    assert f"node {N7} = hostname {N7}.ec2.internal within 10m" in body
    alone = sorted(m.text for m in top if m is not cause)
    assert alone[0].startswith("[FIRING:1] AirflowTaskFailed: Airflow task batch_score")
    assert alone[1].startswith("[FIRING:1] EndpointDown: scorer is down")
    assert not any("scorer" in m.text or "batch_score" in m.text for m in [cause])

    # 3 minutes on, within the window: another task fails on gpu-node-7: it joins the thread
    d.alerts_changed([task_failed("train_ranker", "r3", N7, clock.now)], clock.now)
    await run_for(d, clock, 90)
    assert len(slack.top_level()) == 3, texts(slack.top_level())
    [reply] = slack.replies(cause.ts)
    assert reply.text.startswith("Also explained by this cause: task train_ranker.train failed "
                                 f"on {N7} (node {N7} = hostname {N7} within 10m)"), reply.text
    # the parent is rewritten with the effect in it
    assert "explains 3 alerts" in json.dumps(cause.updates[-1]["blocks"])

    # 20 minutes on (two windows): a task failing on gpu-node-7 is not the GPU's any more
    clock.advance(1200)
    d.alerts_changed([task_failed("train_ranker", "r4", N7, clock.now)], clock.now)
    await run_for(d, clock, 90)
    top = slack.top_level()
    assert len(top) == 3, texts(top)
    # it is news of its own group (the failed tasks of prod-airflow, as `group_by` says),
    # which paged for gpu-node-8's task: a reply there, none in the cause's thread
    [tasks] = [m for m in top if "batch_score" in m.text]
    assert [r for r in slack.replies(tasks.ts) if "(run r4)" in r.text]
    assert len(slack.replies(cause.ts)) == 1
    assert not slack.refused

    # the history keeps why each was linked (and nothing for gpu-node-8)
    with d.engine.connect() as conn:
        rows = conn.execute(select(alert_links.c.effect_rule, alert_links.c.effect_labels,
                                   alert_links.c.reason, alert_links.c.placement)).all()
    assert sorted((r.effect_rule, json.loads(r.effect_labels).get("run_id", ""), r.reason,
                   r.placement) for r in rows) == [
        ("AirflowTaskFailed", "r1", f"node {N7} = hostname {N7}.ec2.internal within 10m",
         "grouped"),
        ("AirflowTaskFailed", "r3", f"node {N7} = hostname {N7} within 10m", "grouped"),
        ("EndpointDown", "", f"same node {N7} within 10m", "grouped")]


async def test_an_effect_that_fires_first_waits_for_its_cause_within_the_hold(tmp_path, slack):
    clock = Clock()
    d = dispatcher(tmp_path, slack, clock)   # hold: each route's group_wait (30 s)
    t0 = clock.now
    d.alerts_changed([model_down("ranker", N7, t0)], t0)
    await run_for(d, clock, 20)
    assert not slack.top_level()
    d.alerts_changed([xid(N7, clock.now)], clock.now)  # the XID is seen 20 s later
    await run_for(d, clock, 60)
    [only] = slack.top_level()
    assert only.text.startswith(f"Cause: GPU 3 on {N7} fell off the bus"), only.text
    assert "model ranker on gpu-node-7 down since" in only.text


async def test_an_effect_past_the_hold_pages_and_its_late_cause_lists_it(tmp_path, slack):
    clock = Clock()
    d = dispatcher(tmp_path, slack, clock, causes={"hold": "0s"})
    t0 = clock.now
    d.alerts_changed([model_down("ranker", N7, t0)], t0)
    await run_for(d, clock, 40)
    [alone] = slack.top_level()
    assert alone.text.startswith("[FIRING:1] EndpointDown"), alone.text
    d.alerts_changed([xid(N7, clock.now)], clock.now)
    await run_for(d, clock, 40)
    top = slack.top_level()
    assert len(top) == 2 and top[1].text.startswith("Cause: GPU 3"), texts(top)
    assert "it paged on its own" in json.dumps(top[1].blocks)


async def test_when_the_cause_resolves_what_still_fires_is_said_and_pages_on_its_own(
        tmp_path, slack):
    clock = Clock()
    d = dispatcher(tmp_path, slack, clock, group_wait=0)
    t0 = clock.now
    gpu, model = xid(N7, t0), model_down("ranker", N7, t0)
    d.alerts_changed([gpu, model], t0)
    await run_for(d, clock, 20)
    [cause] = slack.top_level()
    assert cause.text.startswith("Cause:")
    d.alerts_changed([resolve(gpu, clock.now)], clock.now)
    await run_for(d, clock, 90)
    [reply] = slack.replies(cause.ts)
    assert reply.text.startswith(":white_check_mark: Cause resolved at "), reply.text
    assert reply.text.endswith("Still firing, now on their own: model ranker on gpu-node-7 "
                               f"down since {reply.text.split('down since ')[1]}")
    top = slack.top_level()
    assert len(top) == 2 and top[1].text.startswith("[FIRING:1] EndpointDown: ranker is down")
    assert float(top[1].ts) > float(reply.ts)  # it pages after the cause said it is on its own


async def test_grouped_by_node_the_cause_and_its_effect_are_one_message_said_once(
        tmp_path, slack):
    clock = Clock()
    d = dispatcher(tmp_path, slack, clock, group_by=["node"], group_wait=0)
    d.alerts_changed([xid(N7, clock.now), model_down("ranker", N7, clock.now)], clock.now)
    await run_for(d, clock, 20)
    [only] = slack.top_level()
    body = json.dumps(only.blocks)
    assert only.text.startswith("Cause: GPU 3") and "model ranker on gpu-node-7 down" in body
    assert "ranker is down: HTTP 503" not in body  # not again as an alert of its own


async def test_no_cause_no_link_and_links_off(tmp_path, slack):
    clock = Clock()
    d = dispatcher(tmp_path, slack, clock, causes={"enabled": False}, group_wait=0)
    d.alerts_changed([xid(N7, clock.now), model_down("ranker", N7, clock.now)], clock.now)
    await run_for(d, clock, 20)
    assert sorted(m.text.split(":")[1].split("]")[1].strip() for m in slack.top_level()) == [
        "EndpointDown", "GpuXidCritical"]


async def test_the_console_and_alertmanager_forms(tmp_path):
    """The console prints the cause with why each effect was linked; an effect said on its
    own elsewhere (an Alertmanager receiver here) carries its cause as annotations."""
    clock = Clock()
    out = Terminal()
    d = Dispatcher(AlertingConfig.model_validate({
        "group_by": ["alertname", "node"], "group_wait": 0,
        "delivery": {"pace": 0}}), store(tmp_path), clock=clock,
        notifiers={"console": ConsoleNotifier(stream=out)}, causes=CausesConfig())
    d.alerts_changed([xid(N7, clock.now), model_down("ranker", N7, clock.now)], clock.now)
    await run_for(d, clock, 10)
    text = out.getvalue()
    assert text.startswith("[FIRING] Cause: GpuXidCritical explains 1 alert\n"
                           "  Cause: GPU 3 on gpu-node-7 fell off the bus"), text
    assert f"    - EndpointDown: same node {N7} within 10m" in text
    assert "[FIRING:1] EndpointDown" not in text
    # in a container the console writes one JSON line: the headline and the causes as data
    line = json.loads(alert_record(Notification.from_json(json.loads(
        d.outbox.engine.connect().execute(select(outbox.c.payload)).scalar())), clock.now))
    assert line["msg"] == "[FIRING] Cause: GpuXidCritical explains 1 alert"
    [doc] = line["causes"]
    assert doc["explanation"]["links"][0]["reason"] == f"same node {N7} within 10m"

    from agent.alerting.causes import CauseLinks
    from agent.causes.placement import Decision
    from agent.notify.alertmanager import am_alert

    links = CauseLinks(CausesConfig())
    group = type("G", (), {"key": "am|x", "receiver": "am", "alerts": {}, "notified": {},
                           "linked": {}})()
    for ev in (xid(N7, clock.now), model_down("ranker", N7, clock.now)):
        group.alerts[ev.alert.fingerprint] = ev.alert  # the rules' alert, as the groups hold it
    decision = links.decide([group], clock.now, muted=lambda labels: False,
                            moves=lambda receiver: False)
    assert isinstance(decision, Decision) and not decision.away and not decision.carries
    shown = links.annotate("am|x", list(group.alerts.values()))
    [down] = [am_alert(a, None) for a in shown if a.rule == "EndpointDown"]
    assert down["annotations"]["cause"].startswith(f"GPU 3 on {N7} fell off the bus")
    assert down["annotations"]["cause_reason"] == f"same node {N7} within 10m"


def test_alerts_history_says_why_an_alert_was_linked(tmp_path):
    engine = store(tmp_path, "h.db")
    from agent.alerting.causes import link_row
    from agent.causes import Signal
    from agent.causes.model import Link

    cause = Signal.of("GpuXidCritical", {"node": N7, "gpu": "3", "xid": "79",
                                         "alertname": "GpuXidCritical", "severity": "critical"},
                      100.0, fingerprint="c" * 32)
    effect = Signal.of("EndpointDown", {"node": N7, "check": "ranker"}, 110.0,
                       fingerprint="e" * 32)
    row = link_row(Link(cause, effect, "gpu_fault", "model_down", f"same node {N7} within 10m"),
                   "slack", "grouped", 120.0)
    with engine.begin() as conn:
        conn.execute(alert_links.insert(), [row])
    conf = tmp_path / "agent.yaml"
    conf.write_text(f"agent: {{history: 'sqlite:///{tmp_path / 'h.db'}'}}\n")
    out = subprocess.run([sys.executable, "-m", "agent", "alerts", "history", "EndpointDown",
                          "--config", str(conf)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert (f"linked to cause GpuXidCritical{{gpu=3,node={N7},xid=79}}: same node {N7} "
            "within 10m (grouped in slack)") in out.stdout, out.stdout
    out = subprocess.run([sys.executable, "-m", "agent", "alerts", "history", "GpuXidCritical",
                          "--config", str(conf), "--json"], capture_output=True, text=True,
                         timeout=60)
    [doc] = [json.loads(line) for line in out.stdout.splitlines()]
    assert doc["link"] == "explains" and doc["effect_rule"] == "EndpointDown", doc


def test_routes_test_says_which_firing_cause_would_explain_the_alert(tmp_path, capsys):
    from agent.alert import fingerprint
    from agent.cli import main
    from agent.history.tables import alerts

    engine = store(tmp_path, "m.db")
    labels = {"node": N7, "gpu": "3", "xid": "79"}  # the rule's own, as the rules store them
    import time
    with engine.begin() as conn:
        conn.execute(alerts.insert().values(
            fingerprint=fingerprint("GpuXidCritical", labels), rule="GpuXidCritical",
            labels=json.dumps(labels),
            annotations="{}", state="firing", severity="critical", active_since=time.time() - 60))
    cfg = tmp_path / "mlwarden.yaml"
    cfg.write_text(f"agent: {{history: 'sqlite:///{tmp_path / 'm.db'}'}}\n")
    args = ["routes", "test", "-c", str(cfg), "--label", "alert=AirflowTaskFailed",
            "--label", "dag_id=train_ranker", "--label", "task_id=train"]
    assert main([*args, "--label", f"hostname={N7}.ec2.internal"]) == 0
    out = capsys.readouterr().out
    assert "cause graph: task_failed" in out
    assert (f"  linked to cause GpuXidCritical{{gpu=3,node={N7},xid=79}} (gpu_fault): node {N7} "
            f"= hostname {N7}.ec2.internal within 10m: it would be said in that cause's "
            "message") in out, out
    assert main([*args, "--label", f"hostname={N8}"]) == 0
    out = capsys.readouterr().out
    assert "no firing alert explains it: it pages on its own" in out and "linked to" not in out
    assert main(["routes", "test", "-c", str(cfg), "--label", "alert=GpuIdle"]) == 0
    assert "cause graph: not of any kind (never linked)" in capsys.readouterr().out


async def test_on_postgresql_a_restart_neither_repages_an_effect_nor_records_a_link_twice():
    """The fleet's shared store: what a message said under its cause survives a restart (group
    state), and the second agent's copy of a link is the same row."""
    import uuid

    from sqlalchemy import text

    from agent.history.db import create_schema, make_engine

    url = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    schema = f"issue22_{uuid.uuid4().hex[:10]}"
    base = make_engine(url)
    try:
        with base.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"PostgreSQL at {url} is needed for this test: {exc}", pytrace=False)
    engine = base.execution_options(schema_translate_map={None: schema})
    try:
        create_schema(engine)
        clock, out = Clock(), Terminal()
        cfg = AlertingConfig.model_validate({"group_by": ["alertname", "node"], "group_wait": 0,
                                             "group_interval": 10, "delivery": {"pace": 0}})

        def agent() -> Dispatcher:
            return Dispatcher(cfg, engine, clock=clock, causes=CausesConfig(),
                              notifiers={"console": ConsoleNotifier(stream=out)})

        first = agent()
        first.alerts_changed([xid(N7, clock.now), model_down("ranker", N7, clock.now)],
                             clock.now)
        await run_for(first, clock, 10)
        await first.stop()
        second = agent()  # the restarted agent: the same groups, and the same alerts again
        second.alerts_changed([xid(N7, clock.now - 10), model_down("ranker", N7, clock.now - 10),
                               task_failed("train_ranker", "r1", N7, clock.now)], clock.now)
        await run_for(second, clock, 20)
        await second.stop()
        text_out = out.getvalue()
        assert text_out.count("[FIRING] Cause: GpuXidCritical") == 2, text_out  # then + joined
        assert "    - joined: AirflowTaskFailed:" in text_out
        assert "ranker is down: HTTP 503" not in text_out  # never paged on its own
        with engine.connect() as conn:
            rows = conn.execute(select(alert_links.c.effect_rule)).scalars().all()
        assert sorted(rows) == ["AirflowTaskFailed", "EndpointDown"]
    finally:
        with base.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        base.dispose()


def test_the_buttons_of_a_linked_message_act_on_what_it_says(tmp_path):
    """Slack actions (issue 21) register a message's alerts as its buttons' target: those of
    a linked message include its effects, so 'Silence 1h' silences what it says."""
    from agent.alerting.silences import SilenceStore
    from agent.slackapp.handlers import silence_matchers
    from agent.slackapp.model import target_id_for
    from agent.slackapp.store import ActionStore
    from agent.slackapp.wiring import AlertActions

    engine = store(tmp_path)
    clock = Clock()
    d = Dispatcher(AlertingConfig.model_validate({"group_by": ["alertname", "node"],
                                                  "group_wait": 0}), engine, clock=clock,
                   notifiers={"console": ConsoleNotifier(stream=Terminal())},
                   causes=CausesConfig())
    d.alerts_changed([xid(N7, clock.now), model_down("ranker", N7, clock.now)], clock.now)
    d.flush(clock.now)
    payload = engine.connect().execute(select(outbox.c.payload)).scalar()
    note = Notification.from_json(json.loads(payload))
    assert note.causes and [a.rule for a in note.alerts] == ["GpuXidCritical"]
    actions = AlertActions(ActionStore(engine), SilenceStore(engine))
    actions._state(note, clock.now)
    target = ActionStore(engine).target(target_id_for(note.receiver, note.incident))
    assert sorted(a.rule for a in target.alerts) == ["EndpointDown", "GpuXidCritical"]
    silenced = [{m.name: m.value for m in ms} for ms in silence_matchers(target)]
    assert any(m.get("alertname") == "EndpointDown" and m.get("node") == N7
               for m in silenced), silenced
