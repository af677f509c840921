"""Route matching, grouping timers, silences, inhibition and quiet hours (no network)."""

from __future__ import annotations

import io

import pytest

from agent.alerting.config import AlertingConfig
from agent.alerting.dispatch import Dispatcher, Router
from agent.alerting.matchers import LabelMatcher, parse_label_matcher
from agent.alerting.config import timer_warnings
from agent.alerting.routing import build_routes, in_quiet_hours
from agent.alerting.silences import SilenceNotFound, SilenceStore
from agent.config import parse_config
from agent.errors import ConfigError
from agent.notify.console import ConsoleNotifier
from tests.alerting.helpers import T0, Clock, fire, resolve, store

pytestmark = pytest.mark.unit

TREE = {
    "receivers": [
        {"name": "oncall", "type": "console"},
        {"name": "ml", "type": "console"},
        {"name": "audit", "type": "console"},
    ],
    "receiver": "ml",
    "group_by": ["alertname"],
    "routes": [
        {"match": {"team": "audit"}, "receiver": "audit", "continue": True},
        {
            "match": {"severity": "critical"},
            "receiver": "oncall",
            "group_wait": "10s",
            "routes": [{"match_re": {"node": "gpu-[0-9]+"}, "group_by": ["alertname", "node"]}],
        },
    ],
}


def test_route_tree_matches_like_alertmanager():
    root = build_routes(AlertingConfig.model_validate(TREE))
    hit = root.match({"alertname": "X", "severity": "critical", "node": "gpu-12"})
    assert [(r.id, r.receiver, r.group_by, r.group_wait) for r in hit] == [
        ("root/1/0", "oncall", ("alertname", "node"), 10.0)
    ]
    assert [
        r.receiver for r in root.match({"alertname": "X", "severity": "critical", "node": "cpu-1"})
    ] == ["oncall"]
    assert [r.receiver for r in root.match({"team": "audit", "severity": "critical"})] == [
        "audit",
        "oncall",
    ]
    assert [r.receiver for r in root.match({"severity": "warning"})] == ["ml"]
    # regexes are anchored: gpu-1x does not match gpu-[0-9]+
    assert root.match({"severity": "critical", "node": "gpu-1x"})[0].id == "root/1"


def test_matchers_parse_and_anchor():
    assert parse_label_matcher("alert=GpuIdle") == LabelMatcher("alert", "=", "GpuIdle")
    assert parse_label_matcher("node!=gpu-3").matches({"node": "gpu-4"})
    m = parse_label_matcher("node=~gpu-1")
    assert m.matches({"node": "gpu-1"}) and not m.matches({"node": "gpu-10"})
    assert parse_label_matcher("node!~gpu-.*").matches({})
    with pytest.raises(ValueError, match="expected a matcher"):
        parse_label_matcher("justaword")
    with pytest.raises(ValueError, match="invalid regex"):
        parse_label_matcher("node=~(")


def test_config_errors_name_the_path():
    with pytest.raises(ConfigError) as exc:
        parse_config(
            "alerting:\n  routes:\n    - {match: {a: b}, receiver: nope}\n  receivers:\n"
            "    - {name: hook, type: webhook}\n"
        )
    text = str(exc.value)
    assert "receiver 'hook' of type webhook needs `url`" in text
    with pytest.raises(ConfigError, match="alerting.routes\\[0\\].receiver: 'nope' is not defined"):
        parse_config("alerting:\n  routes:\n    - {match: {a: b}, receiver: nope}\n")
    with pytest.raises(ConfigError, match="did you mean 'group_by'"):
        parse_config("alerting:\n  grop_by: [a]\n")
    with pytest.raises(ConfigError, match="unknown time zone"):
        parse_config(
            "alerting:\n  quiet_hours: {start: '22:00', end: '07:00', timezone: Mars/Base}\n"
        )


def test_suspicious_timers_warn_where_they_are_set():
    raw = {"group_interval": "10m", "repeat_interval": "5m",
           "routes": [{"receiver": "console"}, {"receiver": "console", "repeat_interval": "1h"},
                      {"receiver": "console", "routes": [{"group_interval": "2h"}]}]}
    assert timer_warnings(raw) == [
        "alerting: repeat_interval (5m) is shorter than group_interval (10m); "
        "repeats happen only every group_interval",
        "alerting.routes[2].routes[0]: repeat_interval (5m) is shorter than group_interval (2h); "
        "repeats happen only every group_interval",
    ]


def test_quiet_hours_window_overnight_and_exempt():
    from agent.alerting.config import QuietHours

    q = QuietHours(start="22:00", end="07:00", timezone="UTC")
    day = 1_790_000_000 - 1_790_000_000 % 86400  # 00:00 UTC
    assert in_quiet_hours(q, day + 23 * 3600, "warning")
    assert in_quiet_hours(q, day + 6 * 3600, "warning")
    assert not in_quiet_hours(q, day + 12 * 3600, "warning")
    assert not in_quiet_hours(q, day + 23 * 3600, "critical")


class Terminal(io.StringIO):
    """The console receiver prints its human table on a terminal (JSON lines elsewhere)."""

    def isatty(self) -> bool:
        return True


def console_dispatcher(tmp_path, doc):
    out = Terminal()
    cfg = AlertingConfig.model_validate(doc)
    names = ["console"] + [r.name for r in cfg.receivers]
    clock = Clock()
    d = Dispatcher(
        cfg,
        store(tmp_path),
        clock=clock,
        notifiers={n: ConsoleNotifier(n, stream=out) for n in names},
    )
    return d, clock, out


async def test_group_wait_interval_and_repeat(tmp_path):
    d, clock, out = console_dispatcher(
        tmp_path,
        {
            "group_by": ["alertname"],
            "group_wait": 30,
            "group_interval": 300,
            "repeat_interval": 3600,
        },
    )
    d.alerts_changed([fire("GpuIdle", {"node": "gpu-1"}, clock.now)], clock.now)
    await d.tick(clock.advance(10))
    d.alerts_changed([fire("GpuIdle", {"node": "gpu-2"}, clock.now)], clock.now)
    await d.tick(clock.advance(19))
    assert out.getvalue() == ""  # group_wait holds the first notification
    await d.tick(clock.advance(1))
    assert out.getvalue().count("[FIRING:2] GpuIdle") == 1  # both, in one message
    d.alerts_changed([fire("GpuIdle", {"node": "gpu-3"}, clock.now)], clock.now)
    await d.tick(clock.advance(100))
    assert "FIRING:3" not in out.getvalue()  # changes wait for group_interval
    await d.tick(clock.advance(200))
    assert out.getvalue().count("[FIRING:3] GpuIdle") == 1
    for _ in range(11):
        await d.tick(clock.advance(300))
    assert (
        out.getvalue().count("[FIRING:3] GpuIdle") == 1
    )  # unchanged: nothing until repeat_interval
    await d.tick(clock.advance(300))
    assert out.getvalue().count("[FIRING:3] GpuIdle") == 2  # repeat after 4h... here 3600 s
    await d.stop()


async def test_silence_mutes_and_survives_restart(tmp_path):
    d, clock, out = console_dispatcher(
        tmp_path, {"group_wait": 0, "group_by": ["alertname", "node"]}
    )
    SilenceStore(d.engine).add(
        [parse_label_matcher("alert=GpuIdle"), parse_label_matcher("node=gpu-3")],
        starts_at=clock.now,
        ends_at=clock.now + 7200,
        now=clock.now,
        comment="maintenance",
    )
    await d.stop()
    d2 = Dispatcher(
        d.config,
        d.engine,
        clock=clock,
        notifiers={"console": ConsoleNotifier("console", stream=out)},
    )
    d2.alerts_changed(
        [
            fire("GpuIdle", {"node": "gpu-3"}, clock.now),
            fire("GpuIdle", {"node": "gpu-4"}, clock.now),
        ],
        clock.now,
    )
    await d2.tick(clock.now)
    assert "gpu-4" in out.getvalue() and "gpu-3" not in out.getvalue()
    assert d2.status()["alerts_muted"] == 1
    await d2.tick(clock.advance(7201))  # silence over: the still-firing alert is notified
    await d2.tick(clock.advance(300))
    assert "gpu-3" in out.getvalue()
    await d2.stop()


def test_silence_store_add_list_expire(tmp_path):
    s = SilenceStore(store(tmp_path))
    a = s.add(
        [parse_label_matcher("alert=GpuIdle")], starts_at=T0, ends_at=T0 + 60, now=T0, created_by="me"
    )
    assert [x.id for x in s.list(now=T0)] == [a.id]
    assert s.list(now=T0 + 61) == []
    s.expire(a.id[:8], now=T0 + 1)
    assert (
        s.list(now=T0 + 2) == []
        and s.list(now=T0 + 2, include_expired=True)[0].state(T0 + 2) == "expired"
    )
    with pytest.raises(SilenceNotFound, match="no silence with id 'zzz'"):
        s.expire("zzz", now=T0)
    with pytest.raises(ValueError, match="at least one matcher"):
        s.add([], starts_at=T0, ends_at=T0 + 1, now=T0)


async def test_node_down_inhibits_endpoint_alerts_of_that_node(tmp_path):
    d, clock, out = console_dispatcher(
        tmp_path,
        {
            "group_wait": 0,
            "group_by": ["alertname", "node"],
            "inhibit_rules": [
                {
                    "source_match": {"alertname": "NodeDown"},
                    "target_match": {"alertname": "EndpointDown"},
                    "equal": ["node"],
                }
            ],
        },
    )
    down = fire("NodeDown", {"node": "gpu-3"}, clock.now, severity="critical")
    d.alerts_changed(
        [
            down,
            fire("EndpointDown", {"node": "gpu-3", "model": "r"}, clock.now),
            fire("EndpointDown", {"node": "gpu-4", "model": "r"}, clock.now),
        ],
        clock.now,
    )
    await d.tick(clock.now)
    text = out.getvalue()
    assert "[FIRING:1] NodeDown" in text and "{model=r,node=gpu-4}" in text
    assert "{model=r,node=gpu-3}" not in text
    router = Router(d.config, None)
    assert "inhibited by NodeDown" in router.mute_reason(
        {"alertname": "EndpointDown", "node": "gpu-3"},
        clock.now,
        [{"alertname": "NodeDown", "node": "gpu-3"}],
    )
    await d.stop()


async def test_resolved_notification_is_on_by_default_and_can_be_turned_off(tmp_path):
    for send_resolved, expected in ((True, 1), (False, 0)):
        (tmp_path / str(send_resolved)).mkdir()
        d, clock, out = console_dispatcher(
            tmp_path / str(send_resolved),
            {"group_wait": 0, "group_interval": 5, "send_resolved": send_resolved},
        )
        ev = fire("A", {"n": "1"}, clock.now)
        d.alerts_changed([ev], clock.now)
        await d.tick(clock.now)
        d.alerts_changed([resolve(ev, clock.advance(60))], clock.now)
        await d.tick(clock.advance(5))
        assert out.getvalue().count("[RESOLVED] A") == expected
        assert d.groups == {}
        await d.stop()


async def test_silence_added_after_firing_does_not_swallow_the_resolution(tmp_path):
    d, clock, out = console_dispatcher(tmp_path, {"group_wait": 0, "group_interval": 5})
    ev = fire("GpuIdle", {"node": "gpu-3"}, clock.now)
    d.alerts_changed([ev], clock.now)
    await d.tick(clock.now)
    SilenceStore(d.engine).add(
        [parse_label_matcher("node=gpu-3")], starts_at=clock.now, ends_at=clock.now + 3600, now=clock.now
    )
    await d.tick(clock.advance(5))
    d.alerts_changed([resolve(ev, clock.advance(60))], clock.now)
    await d.tick(clock.advance(5))
    assert out.getvalue().count("[FIRING:1] GpuIdle") == 1
    assert out.getvalue().count("[RESOLVED] GpuIdle") == 1
    assert d.status()["alerts_muted"] == 0  # it was never held back: it had already been sent
    await d.stop()


async def test_reconfigure_swaps_routes_and_keeps_incidents(tmp_path):
    d, clock, out = console_dispatcher(tmp_path, {"group_wait": 0, "group_interval": 5})
    ev = fire("GpuIdle", {"node": "gpu-3"}, clock.now)
    d.alerts_changed([ev], clock.now)
    await d.tick(clock.now)
    new = AlertingConfig.model_validate(
        {
            "group_wait": 0,
            "group_interval": 5,
            "receivers": [{"name": "oncall", "type": "console"}],
            "routes": [{"match": {"severity": "critical"}, "receiver": "oncall"}],
        }
    )
    await d.reconfigure(new)
    assert set(d.notifiers) == {"console", "oncall"}
    for name in d.notifiers:  # point the rebuilt console notifiers at the test's stream
        d.notifiers[name]._stream = out  # type: ignore[attr-defined]
    d.alerts_changed(
        [fire("NodeDown", {"node": "gpu-4"}, clock.now, severity="critical")], clock.now
    )
    d.alerts_changed([resolve(ev, clock.advance(30))], clock.now)
    await d.tick(clock.advance(5))
    text = out.getvalue()
    assert "[FIRING:1] NodeDown" in text and "[RESOLVED] GpuIdle" in text
    assert d.status()["receivers"]["oncall"]["sent"] == 1
    assert d.status()["receivers"]["console"]["sent"] == 2  # counts carried over the reload
    await d.stop()
