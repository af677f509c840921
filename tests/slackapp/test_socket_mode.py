"""Socket Mode end to end: the agent's client against the Socket Mode stand-in
(tests/slackapp/socket_stand_in.py), presses made on the rendered alert message, the
store on a SQLite file shared by the agents of a test.

Slack cannot run here, so its side is the stand-in; everything on the agent's side is the
code that runs in production (slack-sdk's Web API client for apps.connections.open and
response_url, aiohttp's WebSocket, the real store and silence store).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

from agent.alerting.silences import SilenceStore
from agent.slackapp.config import SlackActionsConfig
from agent.slackapp.service import SlackActions
from agent.slackapp.socket import SocketModeClient
from agent.slackapp.store import ActionStore
from tests.slackapp.helpers import engine_for, incident, matchers_of, message
from tests.slackapp.socket_stand_in import APP_TOKEN, BOT_TOKEN, SocketModeStandIn

pytestmark = [pytest.mark.integration]
FAST = {"backoff_initial": 0.05, "min_healthy": 0.0, "hello_timeout": 5.0}
ALLOW = {"default": {"users": ["U0ANA", "U0BOB"]},
         "unsilence": {"users": ["U0ANA"], "usergroups": ["S0ONCALL"]}}


@pytest.fixture
async def slack():
    stand_in = await SocketModeStandIn(ack_timeout=1.5, usergroups={"S0ONCALL": ["U0CAROL"]},
                                       close_after_disconnect=10.0).start()
    yield stand_in
    await stand_in.stop()
    assert stand_in.errors == []


@pytest.fixture
def db(tmp_path):
    return f"sqlite:///{tmp_path / 'history.db'}"


@contextlib.asynccontextmanager
async def agent(slack, db, *, allow=None, app_token=APP_TOKEN, **options):
    config = SlackActionsConfig(app_token=app_token, base_url=slack.base_url,
                                allow=allow or ALLOW, reconnect_max=0.4)
    engine = engine_for(db)
    actions = SlackActions(config, engine, bot_token=BOT_TOKEN, **{**FAST, **options})
    await actions.start()
    try:
        yield actions
    finally:
        await actions.stop()
        engine.dispose()


async def connected(slack, count=1):
    await slack.wait(lambda: len(slack.open_conns()) >= count, 10, f"{count} connection(s)")


async def acked(slack, delivery):
    await slack.wait(lambda: delivery.acked.is_set(), 15, f"ack of {delivery.envelope_id}")


async def replies(slack, count):
    await slack.wait(lambda: len(slack.replies) >= count, 10, f"{count} ephemeral answer(s)")
    return [r.body for r in slack.replies]


async def until(predicate, timeout, what):
    """Poll agent-side state (the stand-in's ``wait`` sees only its own changes)."""
    for _ in range(int(timeout / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{what} did not happen within {timeout}s")


def now():
    import time
    return time.time()


async def test_connects_with_the_app_token_and_every_button_changes_the_store(slack, db):
    async with agent(slack, db) as actions:
        await connected(slack)
        hello = actions.receiver.hello
        assert hello["type"] == "hello" and hello["connection_info"]["app_id"] == "A0MLWARDEN"
        store, silences = actions.store, actions.silences
        target = incident(store, now=now())

        d = await slack.press(message(target, store, silences, now()), "mlwarden:acknowledge",
                              user="U0ANA", name="ana")
        await acked(slack, d)
        assert store.acknowledged(target.id).by_id == "U0ANA"
        (answer,) = await replies(slack, 1)
        assert answer["response_type"] == "ephemeral" and answer["replace_original"] is False
        assert "Acknowledged by <@U0ANA>" in answer["text"]

        d = await slack.press(message(store.target(target.id), store, silences, now()),
                              "mlwarden:silence:4h", user="U0BOB", name="bob")
        await acked(slack, d)
        (silence,) = silences.list(now=now())
        assert silence.created_by == "bob (Slack U0BOB)"
        assert 4 * 3600 - 30 < silence.ends_at - silence.starts_at <= 4 * 3600
        assert "model=ranker" in matchers_of(silence)

        d = await slack.press(message(target, store, silences, now()), "mlwarden:unsilence",
                              user="U0ANA")
        await acked(slack, d)
        assert silences.list(now=now()) == []

        d = await slack.press(message(target, store, silences, now()),
                              "mlwarden:silence:resolved", user="U0ANA")
        await acked(slack, d)
        (silence,) = silences.list(now=now())
        assert silence.ends_at - silence.starts_at == 7 * 86400

        d = await slack.press(message(target, store, silences, now()), "mlwarden:chart:24h",
                              user="U0BOB")
        await acked(slack, d)
        answers = await replies(slack, 5)
        assert "over the last 24h" in answers[-1]["text"]
        assert [(a.action, a.arg, a.state) for a in store.actions(target_id=target.id)] == [
            ("acknowledge", "", "done"), ("silence", "4h", "done"), ("unsilence", "", "done"),
            ("silence", "resolved", "done"), ("chart", "24h", "done")]
        assert actions.status()["outcomes"] == {"applied": 5}


async def test_an_unacknowledged_envelope_is_redelivered_and_applied_once(slack, db):
    async with agent(slack, db) as actions:
        await connected(slack)
        target = incident(actions.store, now=now())
        blocks = message(target, actions.store, actions.silences, now())
        # the agent applies the press, but its ack dies with the connection
        d = await slack.press(blocks, "mlwarden:silence:1h", user="U0ANA", fate="lose_ack")
        await acked(slack, d)
        assert len(d.attempts) >= 2 and d.acked_on != d.attempts[0]
        assert len(actions.silences.list(now=now())) == 1
        assert actions.counts == {"applied": 1, "duplicate": len(d.attempts) - 1}
        await asyncio.sleep(0.2)  # a second answer would have been sent by now
        assert len(slack.replies) == 1  # the redelivery answers nobody again


async def test_connection_dropped_mid_action_reconnects_nothing_lost_or_doubled(slack, db):
    async with agent(slack, db) as actions:
        await connected(slack)
        target = incident(actions.store, now=now())
        blocks = message(target, actions.store, actions.silences, now())
        # the envelope is lost with the connection: it comes again on the next one
        lost = await slack.press(blocks, "mlwarden:acknowledge", user="U0ANA",
                                 fate="lose_envelope")
        await acked(slack, lost)
        assert actions.store.acknowledged(target.id).by_id == "U0ANA"
        assert lost.attempts[0] != lost.acked_on and slack.opened_urls >= 2
        # network loss between presses: the client reconnects with a new URL
        await slack.drop(slack.open_conns()[0])
        d = await slack.press(blocks, "mlwarden:silence:1h", user="U0BOB")
        await acked(slack, d)
        assert len(actions.silences.list(now=now())) == 1
        assert actions.counts == {"applied": 2}
        assert actions.receiver.connections >= 3


async def test_refresh_requested_opens_the_next_connection_before_the_old_closes(slack, db):
    async with agent(slack, db) as actions:
        await connected(slack)
        (old,) = slack.open_conns()
        target = incident(actions.store, now=now())
        blocks = message(target, actions.store, actions.silences, now())
        await slack.disconnect(old, "refresh_requested")
        # a press delivered on the old connection while it is being replaced
        d = await slack.press(blocks, "mlwarden:silence:1h", user="U0ANA", to=old.number)
        await slack.wait(lambda: old.closed and slack.open_conns(), 5,
                         "the client closing the old connection for a new one")
        # the client closed it (the stand-in would have after 10 s), after the new hello
        new = slack.open_conns()[0]
        assert new.number == old.number + 1 and slack.opened_urls == 2
        await acked(slack, d)
        assert len(actions.silences.list(now=now())) == 1
        # the new connection carries presses
        d2 = await slack.press(blocks, "mlwarden:acknowledge", user="U0BOB")
        await acked(slack, d2)
        assert d2.acked_on == new.number
        assert actions.receiver.failures == 0


async def test_two_agents_connected_one_press_one_silence(slack, db):
    async with agent(slack, db) as one, agent(slack, db) as two:
        await connected(slack, 2)
        target = incident(one.store, now=now())
        blocks = message(target, one.store, one.silences, now())
        # the harshest form of a redelivery reaching the other agent: both at once
        d = await slack.press(blocks, "mlwarden:silence:1h", user="U0ANA", broadcast=True)
        await acked(slack, d)
        await until(lambda: sum(sum(a.counts.values()) for a in (one, two)) == 2, 10,
                    "both agents handling the press")
        outcomes = sorted(s for a in (one, two) for s, n in a.counts.items() for _ in range(n))
        assert outcomes in (["applied", "busy"], ["applied", "duplicate"])
        assert len(SilenceStore(one.store.engine).list(now=now())) == 1
        # a lost ack redelivered to the other agent: applied once as well
        d = await slack.press(blocks, "mlwarden:acknowledge", user="U0BOB", fate="lose_ack",
                              to=slack.open_conns()[0].number)
        await acked(slack, d)
        assert one.store.acknowledged(target.id).by_id == "U0BOB"
        assert len([a for a in one.store.actions(target_id=target.id)
                    if a.action == "acknowledge"]) == 1


async def test_someone_not_allowed_changes_nothing_and_is_told(slack, db):
    async with agent(slack, db) as actions:
        await connected(slack)
        target = incident(actions.store, now=now())
        blocks = message(target, actions.store, actions.silences, now())
        d = await slack.press(blocks, "mlwarden:silence:1h", user="U0EVE", name="eve")
        await acked(slack, d)
        (answer,) = await replies(slack, 1)
        assert answer["response_type"] == "ephemeral"
        assert "You are not allowed to silence alerts" in answer["text"]
        assert "slack_actions.allow.silence" in answer["text"] and "U0EVE" in answer["text"]
        assert actions.silences.list(now=now()) == []
        (record,) = actions.store.actions(target_id=target.id)
        assert (record.user_id, record.state) == ("U0EVE", "refused")


async def test_user_group_members_may_act_others_may_not(slack, db):
    async with agent(slack, db) as actions:
        await connected(slack)
        store, silences = actions.store, actions.silences
        target = incident(store, now=now())
        d = await slack.press(message(target, store, silences, now()), "mlwarden:silence:1h",
                              user="U0ANA")
        await acked(slack, d)
        silenced = message(target, store, silences, now())
        # Bob may silence (default) but not unsilence; Carol is in S0ONCALL
        d = await slack.press(silenced, "mlwarden:unsilence", user="U0BOB")
        await acked(slack, d)
        assert len(silences.list(now=now())) == 1
        d = await slack.press(silenced, "mlwarden:unsilence", user="U0CAROL", name="carol")
        await acked(slack, d)
        assert silences.list(now=now()) == []
        texts = [r["text"] for r in await replies(slack, 3)]
        assert "not allowed to unsilence" in texts[1] and "Unsilenced by <@U0CAROL>" in texts[2]


async def test_a_slow_press_is_acknowledged_in_time_and_applied_after(slack, db):
    slack.usergroups_delay = 2.0  # the user group lookup is slow: applying takes ~2 s
    async with agent(slack, db, allow={"default": {"usergroups": ["S0ONCALL"]}},
                     ack_deadline=0.3) as actions:
        await connected(slack)
        target = incident(actions.store, now=now())
        d = await slack.press(message(target, actions.store, actions.silences, now()),
                              "mlwarden:silence:1h", user="U0CAROL")
        await acked(slack, d)
        assert actions.silences.list(now=now()) == []  # acked before it was applied
        await until(lambda: actions.silences.list(now=now()), 10, "the silence")
        await until(lambda: actions.counts.get("applied") == 1, 10, "applied once")
        assert len(actions.silences.list(now=now())) == 1


async def test_user_groups_without_usergroups_read_are_refused_with_the_reason(tmp_path, db):
    manifest = tmp_path / "manifest.yaml"
    from tests.slackapp.socket_stand_in import MANIFEST
    manifest.write_text(MANIFEST.read_text().replace("      - usergroups:read", ""))
    slack = await SocketModeStandIn(manifest=manifest, usergroups={"S0ONCALL": ["U0CAROL"]})\
        .start()
    try:
        async with agent(slack, db, allow={"default": {"usergroups": ["S0ONCALL"]}}) as actions:
            await connected(slack)
            target = incident(actions.store, now=now())
            d = await slack.press(message(target, actions.store, actions.silences, now()),
                                  "mlwarden:silence:1h", user="U0CAROL")
            await acked(slack, d)
            (answer,) = await replies(slack, 1)
            assert actions.silences.list(now=now()) == []
            assert "could not check whether you may silence" in answer["text"]
            assert "lacks usergroups:read" in answer["text"]
    finally:
        await slack.stop()


async def test_link_buttons_and_foreign_payloads_are_acknowledged_and_ignored(slack, db):
    async with agent(slack, db) as actions:
        await connected(slack)
        target = incident(actions.store, now=now())
        blocks = message(target, actions.store, actions.silences, now())
        d = await slack.press(blocks, "link-runbook_url", user="U0ANA")
        await acked(slack, d)
        assert actions.counts == {} and actions.store.actions() == []
        assert slack.replies == []


async def test_a_wrong_app_token_is_named_and_retried_with_backoff(slack, db, caplog):
    caplog.set_level(logging.WARNING, "agent.slackapp.socket")
    async with agent(slack, db, app_token="xapp-1-A0OTHER-1-wrong") as actions:
        client = actions.receiver
        await until(lambda: client.failures >= 3, 10, "three failed attempts")
        assert "invalid_auth (the app-level token is invalid" in client.last_error
        assert client.state in ("waiting", "connecting") and slack.open_conns() == []
        said = [r.getMessage() for r in caplog.records if "invalid_auth" in r.getMessage()]
        assert len(said) == 1  # once per outage, not once per attempt
        assert "xapp-1-A0OTHER-1-wrong" not in caplog.text


async def test_an_outage_of_apps_connections_open_is_ridden_out(slack, db):
    slack.fail_open = "500"
    async with agent(slack, db) as actions:
        await slack.wait(lambda: slack.connections_open_failures >= 2, 10, "failed opens")
        assert actions.receiver.state in ("waiting", "connecting")
        slack.fail_open = None
        await until(lambda: actions.receiver.state == "connected", 10, "connected")
        assert actions.receiver.failures == 0 and actions.receiver.last_error.endswith("HTTP 500")


async def test_a_link_that_dies_after_each_hello_is_retried_with_backoff(slack, db):
    async with agent(slack, db, min_healthy=30.0) as actions:
        for n in range(1, 4):
            await connected(slack)
            await slack.drop(slack.open_conns()[0])
            await until(lambda: actions.receiver.status()["retry_streak"] == n, 10,
                        f"{n} short-lived connection(s) counted")
        await connected(slack)
        assert slack.opened_urls == 4 and not slack.errors


def test_backoff_doubles_up_to_its_bound_with_jitter():
    client = SocketModeClient(APP_TOKEN, None, backoff_initial=1.0,  # type: ignore[arg-type]
                              backoff_max=60.0, rng=lambda: 1.0)
    assert [client.backoff(n) for n in range(0, 9)] == [0, 1, 2, 4, 8, 16, 32, 60, 60]
    low = SocketModeClient(APP_TOKEN, None, backoff_max=60.0,  # type: ignore[arg-type]
                           rng=lambda: 0.0)
    assert low.backoff(3) == 2.0 and low.backoff(50) == 30.0


def test_store_holder_names_are_unique_per_store(tmp_path):
    engine = engine_for(f"sqlite:///{tmp_path / 'h.db'}")
    assert ActionStore(engine).holder != ActionStore(engine).holder
    engine.dispose()
