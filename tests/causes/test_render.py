"""The linked message in words: cause first, each effect with why, the thread reply of a late
effect, and what still fires when the cause resolves. Block Kit output is checked against
Slack's published limits and slack-sdk's own models (tests/notify/fake_slack.py), escaped
with the Slack notifier's own escape."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from agent.causes import Signal, explain, link
from agent.causes.render import (
    MAX_SHOWN,
    describe,
    joined_text,
    linked_blocks,
    linked_text,
    resolved_text,
)
from agent.notify.render import escape
from tests.causes.test_link import T, down, errors, task, xid
from tests.notify.fake_slack import validate_blocks

pytestmark = pytest.mark.unit


def the_example():
    """The issue's own example: XID 79 on GPU 3 of gpu-node-7 at 10:02."""
    signals = [xid(), errors(at=T + 40), task(host="gpu-node-7", at=T + 70)]
    [only] = explain(link(signals, signals, T + 300))
    return only


def test_the_message_says_the_cause_first_then_what_it_explains():
    assert linked_text(the_example()) == (
        "Cause: GPU 3 on gpu-node-7 fell off the bus (XID 79) at 10:02. Explains: model ranker "
        "failing probes since 10:02; task train_ranker.fit failed on gpu-node-7")


def test_the_blocks_say_why_each_effect_was_linked_and_fit_slack():
    blocks = linked_blocks(the_example(), escape=escape)
    validate_blocks(blocks)
    assert blocks[0]["text"]["text"] == (
        "*Cause:* GPU 3 on gpu-node-7 fell off the bus (XID 79) at 10:02")
    assert blocks[1]["text"]["text"] == (
        "*Explains:*\n"
        "• model ranker failing probes since 10:02  _(same node gpu-node-7 within 10m)_\n"
        "• task train_ranker.fit failed on gpu-node-7  "
        "_(node gpu-node-7 = hostname gpu-node-7 within 10m)_")
    assert blocks[2]["elements"][0]["text"] == "Linked by mlwarden's cause graph · times UTC"


def test_values_from_data_are_escaped_for_slack_and_left_alone_on_the_console():
    cause = xid(node="<!channel>")
    model = Signal.of("EndpointDown", {"check": "x", "model": "*m*", "node": "<!channel>"},
                      T + 10, fingerprint="d")
    [found] = explain(link([cause], [model], T + 60))
    blocks = linked_blocks(found, escape=escape)
    validate_blocks(blocks)
    text = "\n".join(b["text"]["text"] for b in blocks[:2])
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text
    assert "GPU 3 on <!channel> fell off the bus" in linked_text(found)


def test_many_or_long_effects_are_cut_to_slacks_limits_with_and_n_more():
    cause = xid()
    many = [task(at=T + i, task_id=f"t{i}-" + "x" * 400) for i in range(30)]
    [found] = explain(link([cause], many, T + 600))
    assert len(found.links) == 30
    blocks = linked_blocks(found, escape=escape)
    validate_blocks(blocks)
    body = blocks[1]["text"]["text"]
    assert body.count("• ") <= MAX_SHOWN and body.endswith(f"and {30 - body.count('• ')} more")
    text = linked_text(found)
    assert len(text) <= 4000 and text.endswith(" more")
    long_cause = xid(node="n" * 5000)
    [found] = explain(link([long_cause], [down(node="n" * 5000)], T + 60))
    validate_blocks(linked_blocks(found, escape=escape))


def test_an_effect_that_starts_later_joins_the_thread_with_its_reason():
    [late] = link([xid()], [down(at=T + 420)], T + 480)
    assert joined_text(late) == ("Also explained by this cause: model ranker on gpu-node-7 down "
                                 "since 10:09 (same node gpu-node-7 within 10m)")


def test_when_the_cause_resolves_the_effects_still_firing_are_named():
    found = the_example()
    resolved = Signal.of(found.cause.rule, dict(found.cause.labels), found.cause.since,
                         fingerprint=found.cause.fingerprint, until=T + 38 * 60)
    still = [x for x in found.links if x.effect.rule == "EndpointErrors"]
    assert resolved_text(resolved, found.kind, still) == (
        "Cause resolved at 10:40: GPU 3 on gpu-node-7 fell off the bus (XID 79) at 10:02. "
        "Still firing, now on their own: model ranker failing probes since 10:02.")
    assert resolved_text(resolved, found.kind, []) == (
        "Cause resolved at 10:40: GPU 3 on gpu-node-7 fell off the bus (XID 79) at 10:02. "
        "Nothing it explained is still firing.")


def test_times_name_the_day_across_midnight_and_follow_the_zone():
    night = T + 14 * 3600  # 00:02 the next day, UTC
    [found] = explain(link([xid(at=T)], [down(at=T + 500)], T + 600))
    assert describe(found.effects[0], "model_down", day_of=night) == (
        "model ranker on gpu-node-7 down since Dec 06 10:10")
    berlin = ZoneInfo("Europe/Berlin")
    assert linked_text(found, tz=berlin).startswith(
        "Cause: GPU 3 on gpu-node-7 fell off the bus (XID 79) at 11:02.")
    assert linked_blocks(found, escape=escape, tz=berlin)[2]["elements"][0]["text"].endswith(
        "times Europe/Berlin")


def test_an_alert_no_phrase_fits_is_said_by_its_summary():
    bare = Signal.of("GpuXidCritical", {"node": "gpu-node-7", "xid": "79"}, T,
                     summary="XID 79 (fallen_off_bus) on GPU ? of node gpu-node-7")
    assert describe(bare, "gpu_fault", as_cause=True) == (
        "XID 79 (fallen_off_bus) on GPU ? of node gpu-node-7 at 10:02")
    assert describe(Signal.of("Mine", {}, T), None) == "Mine since 10:02"
