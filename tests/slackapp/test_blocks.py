"""The Block Kit of actions: valid for slack-sdk's models, with the right buttons for each
state, and edits that keep the rest of the message; payload parsing refuses what Slack
never sends."""

from __future__ import annotations

import pytest

from agent.notify.render import blocks_for
from agent.slackapp.blocks import ack_line, action_blocks, silence_line, with_action_blocks
from agent.slackapp.model import Ack, ActionState, BadPayload, requests_from_payload
from tests.notify.fake_slack import validate_with_sdk
from tests.slackapp.helpers import NOW, note
from tests.slackapp.socket_stand_in import block_actions_payload

pytestmark = pytest.mark.unit
TID = "3a6b12e3c60955bf139fefce"
ACK = Ack("ana", "U0ANA", 1_700_000_520.0)  # 22:22 UTC


def buttons(blocks):
    return [(e["action_id"], e["text"]["text"]) for b in blocks if b["type"] == "actions"
            for e in b["elements"]]


def strict(blocks):
    validate_with_sdk(blocks)
    ids = [b["block_id"] for b in blocks if "block_id" in b]
    assert len(ids) == len(set(ids))
    for b in blocks:
        if b["type"] == "actions":
            assert len({e["action_id"] for e in b["elements"]}) == len(b["elements"])
            for e in b["elements"]:
                assert len(e["text"]["text"]) <= 75 and len(e.get("value", "")) <= 2000
    return blocks


def test_a_firing_alert_offers_every_action():
    blocks = strict(action_blocks(ActionState(TID)))
    assert [b["block_id"] for b in blocks] == [f"mlwarden:actions:{TID}"]
    assert buttons(blocks) == [
        ("mlwarden:acknowledge", "Acknowledge"), ("mlwarden:silence:1h", "Silence 1h"),
        ("mlwarden:silence:4h", "Silence 4h"),
        ("mlwarden:silence:resolved", "Silence until resolved"),
        ("mlwarden:chart:24h", "Chart 24h")]
    assert {e["value"] for e in blocks[0]["elements"]} == {f"v1:{TID}"}
    assert blocks[0]["elements"][0]["style"] == "primary"


def test_acknowledged_and_silenced_show_who_and_offer_what_is_left():
    state = ActionState(TID, ack=ACK, silenced_until=NOW + 3600, silenced_by="U0BOB")
    blocks = strict(action_blocks(state))
    lines = [e["text"] for e in blocks[0]["elements"]]
    assert lines == [":eyes: Acknowledged by <@U0ANA> at <!date^1700000520^{time}|22:22 UTC>",
                     ":mute: Silenced by <@U0BOB>, until <!date^1700003600^"
                     "{date_short_pretty} {time}|2023-11-14 23:13 UTC>"]
    assert [a for a, _ in buttons(blocks)] == ["mlwarden:unsilence", "mlwarden:chart:24h"]


def test_a_resolved_alert_loses_its_buttons_and_keeps_its_story():
    blocks = strict(action_blocks(ActionState(TID, ack=ACK, resolved=True)))
    assert buttons(blocks) == [] and len(blocks) == 1
    assert "Acknowledged by <@U0ANA>" in blocks[0]["elements"][0]["text"]
    assert action_blocks(ActionState(TID, resolved=True)) == []


def test_lines_read_as_the_issue_says():
    assert ack_line(ACK).startswith(":eyes: Acknowledged by <@U0ANA> at <!date^")
    line = silence_line("U0ANA", NOW + 7 * 86400, until_resolved=True)
    assert line.startswith(":mute: Silenced by <@U0ANA> until the alert resolves (at the latest")


def test_an_edit_replaces_our_blocks_where_they_were_and_keeps_the_rest():
    base = blocks_for(note(), NOW)
    first = strict(base + action_blocks(ActionState(TID)))
    edited = strict(with_action_blocks(first, ActionState(TID, ack=ACK)))
    assert edited[:len(base)] == base
    assert [b.get("block_id") for b in edited[len(base):]] == [f"mlwarden:state:{TID}",
                                                               f"mlwarden:actions:{TID}"]
    # a message without our blocks gets them at the end
    assert strict(with_action_blocks(base, ActionState(TID)))[-1]["type"] == "actions"
    # never past Slack's 50 blocks: the message's own tail gives way
    long = [{"type": "divider"}] * 50
    cut = with_action_blocks(long, ActionState(TID, ack=ACK))
    assert len(cut) == 50 and cut[-1]["block_id"] == f"mlwarden:actions:{TID}"


def test_payloads_slack_never_sends_for_our_buttons_are_refused():
    blocks = action_blocks(ActionState(TID))
    good = block_actions_payload(blocks, "mlwarden:silence:4h", user="U0ANA")
    (req,) = requests_from_payload(good, "test")
    assert (req.action, req.arg, req.target_id, req.user_id) == ("silence", "4h", TID, "U0ANA")
    assert req.channel_id == "C0ALERTS01" and req.message_ts == "1700000000.000100"
    # the same press delivered twice has one key; another press another
    assert requests_from_payload(good, "other")[0].key == req.key
    again = block_actions_payload(blocks, "mlwarden:silence:4h", user="U0ANA",
                                  action_ts="1.5")
    assert requests_from_payload(again, "test")[0].key != req.key
    assert requests_from_payload({"type": "view_submission"}, "test") == []
    for broken, why in [
        ({**good, "user": {}}, "without `actions` or `user.id`"),
        ({**good, "actions": [{**good["actions"][0], "value": "nope"}]}, "carries no target"),
        ({**good, "actions": [{**good["actions"][0], "action_id": "mlwarden:silence:9y"}]},
         "names no action"),
        ({**good, "actions": [{**good["actions"][0], "action_ts": None}]}, "without `action_ts`"),
    ]:
        with pytest.raises(BadPayload, match=why):
            requests_from_payload(broken, "test")
