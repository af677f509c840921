"""Alertmanager users' keys: `matchers:` (and source/target_matchers) beside match/match_re,
and named `time_intervals` used as a route's mute_time_intervals / active_time_intervals.

The routing part is checked against the real Alertmanager's own tool: the same routes,
time intervals and inhibit rules, pasted into an Alertmanager config, pass
`amtool check-config`, and `amtool config routes test` picks the receiver our router picks
for each label set (Debian's alertmanager package, tests/peers/install-promstack.sh).
"""

from __future__ import annotations

import io
import json
import subprocess
from datetime import datetime, timezone

import pytest
import yaml

from agent.alerting.config import AlertingConfig
from agent.alerting.dispatch import Dispatcher, Router
from agent.alerting.matchers import parse_label_matchers
from agent.alerting.timeintervals import TimeIntervalSpec
from agent.config import parse_config
from agent.errors import ConfigError
from agent.notify.console import ConsoleNotifier
from tests.alerting.helpers import Clock, fire, resolve, store
from tests.support.procs import PEERS, require_peer

SHARED = """
routes:
  - matchers: ['severity="critical"', 'team=~"ml|data"']
    receiver: oncall
  - matchers: ['{env="prod", team!="ops"}']
    receiver: prod
    mute_time_intervals: [weekends]
  - matchers: [alertname = Watchdog]
    receiver: default
    active_time_intervals: [office]
  - match: {team: legacy}
    match_re: {node: "gpu-.*"}
    receiver: oncall
time_intervals:
  - name: weekends
    time_intervals:
      - weekdays: ['saturday', 'sunday']
  - name: office
    time_intervals:
      - weekdays: ['monday:friday']
        times: [{start_time: '09:00', end_time: '17:00'}]
        location: Europe/Berlin
inhibit_rules:
  - source_matchers: ['alertname="NodeDown"']
    target_matchers: ['severity=~"warning|info"']
    equal: [node]
"""
LABEL_SETS = [
    {"alertname": "X", "severity": "critical", "team": "ml"},
    {"alertname": "X", "severity": "critical", "team": "mlops"},   # =~ is anchored: no match
    {"alertname": "X", "env": "prod", "team": "data"},
    {"alertname": "X", "env": "prod", "team": "ops"},
    {"alertname": "Watchdog"},
    {"alertname": "X", "team": "legacy", "node": "gpu-3"},
    {"alertname": "X", "team": "legacy", "node": "cpu-3"},
]


def ours() -> AlertingConfig:
    shared = yaml.safe_load(SHARED)
    receivers = [{"name": n, "type": "console"} for n in ("default", "oncall", "prod")]
    return parse_config(yaml.safe_dump({"alerting": {"receiver": "default", "receivers": receivers,
                                                      **shared}})).alerting


def test_alertmanager_accepts_the_same_config_and_routes_like_us(tmp_path):
    amtool = require_peer(PEERS / "promstack" / "root" / "usr" / "bin" / "amtool",
                          "bash tests/peers/install-promstack.sh")
    shared = yaml.safe_load(SHARED)
    am = {"route": {"receiver": "default", "routes": shared["routes"]},
          "receivers": [{"name": n} for n in ("default", "oncall", "prod")],
          "time_intervals": shared["time_intervals"], "inhibit_rules": shared["inhibit_rules"]}
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(am))
    check = subprocess.run([str(amtool), "check-config", str(path)], capture_output=True,
                           text=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr
    router = Router(ours(), silences=None)
    for labels in LABEL_SETS:
        theirs = subprocess.run([str(amtool), "config", "routes", "test", f"--config.file={path}",
                                 *(f"{k}={v}" for k, v in labels.items())],
                                capture_output=True, text=True, timeout=30)
        assert theirs.returncode == 0, theirs.stderr
        mine = ",".join(r.receiver for r in router.routes_for(labels))
        assert mine == theirs.stdout.strip(), labels


@pytest.mark.parametrize(("text", "expected"), [
    ('severity="critical"', ["severity=critical"]),
    ('team=~"ml|data"', ["team=~ml|data"]),
    ('{env="prod", team!="o,ps"}', ["env=prod", "team!=o,ps"]),
    ("alertname = Watchdog", ["alertname=Watchdog"]),
    ('summary="say \\"hi\\""', ['summary=say "hi"']),
])
def test_matcher_syntax(text, expected):
    assert [str(m) for m in parse_label_matchers(text)] == expected


@pytest.mark.parametrize(("text", "message"), [
    ("=x", "expected a matcher like"),
    ('a="x', "a quoted value is not closed"),
    ("a=b,", "a trailing comma"),
    ('a=~"("', "a=~'(': invalid regex: missing ), unterminated subpattern at position 0"),
])
def test_bad_matchers_say_what_is_wrong(text, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_label_matchers(text)


def test_inhibit_rules_with_matchers_mute_the_target():
    router = Router(ours(), silences=None)
    source = {"alertname": "NodeDown", "node": "gpu-3", "severity": "critical"}
    target = {"alertname": "EndpointDown", "node": "gpu-3", "severity": "warning"}
    assert router.mute_reason(target, 0.0, [source]).startswith("inhibited by NodeDown")
    assert router.mute_reason({**target, "node": "gpu-4"}, 0.0, [source]) is None
    assert router.mute_reason({**target, "severity": "critical"}, 0.0, [source]) is None


def _ts(iso: str) -> float:
    return datetime.fromisoformat(iso).astimezone(timezone.utc).timestamp()


@pytest.mark.parametrize(("spec", "inside", "outside"), [
    ({"weekdays": ["saturday", "sunday"]}, "2026-12-05T12:00:00+00:00", "2026-12-07T12:00:00+00:00"),
    ({"weekdays": ["monday:friday"], "times": [{"start_time": "09:00", "end_time": "17:00"}],
      "location": "Europe/Berlin"}, "2026-12-07T08:30:00+00:00", "2026-12-07T16:30:00+00:00"),
    ({"days_of_month": ["-1"]}, "2027-02-28T10:00:00+00:00", "2027-02-27T10:00:00+00:00"),
    ({"months": ["december"], "years": ["2026"]}, "2026-12-31T23:59:00+00:00", "2027-12-01T00:00:00+00:00"),
    ({"times": [{"start_time": "22:00", "end_time": "24:00"}]}, "2026-12-07T23:59:00+00:00",
     "2026-12-08T00:00:00+00:00"),
])
def test_time_interval_fields(spec, inside, outside):
    interval = TimeIntervalSpec.model_validate(spec)
    assert interval.contains(_ts(inside)) and not interval.contains(_ts(outside))


@pytest.mark.parametrize(("spec", "message"), [
    ({"weekdays": ["funday"]}, "'funday' is not a weekday"),
    ({"days_of_month": ["-3:5"]}, "must end there too"),
    ({"months": ["march:january"]}, "the range's start comes after its end"),
    ({"times": [{"start_time": "22:00", "end_time": "06:00"}]}, "split an overnight window in two"),
    ({"location": "Mars/Base"}, "unknown time zone 'Mars/Base'"),
])
def test_bad_time_intervals_say_what_is_wrong(spec, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(yaml.safe_dump({"alerting": {"time_intervals": [
            {"name": "x", "time_intervals": [spec]}]}}))


def test_the_older_top_level_name_mute_time_intervals_works_too():
    config = parse_config("alerting:\n  mute_time_intervals:\n    - {name: nights, time_intervals: "
                          "[{times: [{start_time: '00:00', end_time: '06:00'}]}]}\n"
                          "  routes:\n    - {receiver: console, mute_time_intervals: [nights]}\n")
    assert set(config.alerting.intervals()) == {"nights"}


async def _console_dispatcher(tmp_path, out, alerting: dict, clock: Clock) -> Dispatcher:
    config = AlertingConfig.model_validate({"group_wait": 0, "group_interval": "1m", **alerting})
    return Dispatcher(config, store(tmp_path), clock=clock,
                      notifiers={"console": ConsoleNotifier("console", stream=out)})


WEEKEND_MUTE = {
    "time_intervals": [{"name": "weekends", "time_intervals": [{"weekdays": ["saturday", "sunday"]}]}],
    "routes": [{"matchers": ['team="ml"'], "receiver": "console", "mute_time_intervals": ["weekends"]}],
}


async def test_a_mute_time_interval_holds_notifications_until_it_ends(tmp_path):
    out = io.StringIO()
    clock = Clock(_ts("2026-12-06T23:00:00+00:00"))  # a Sunday, one hour before Monday
    d = await _console_dispatcher(tmp_path, out, WEEKEND_MUTE, clock)
    d.alerts_changed([fire("GpuIdle", {"team": "ml"}, clock.now)], clock.now)
    for _ in range(3):
        await d.tick(clock.now)
        clock.now += 600
    assert out.getvalue() == ""  # held while muted, not sent
    clock.now = _ts("2026-12-07T00:00:30+00:00")  # Monday
    await d.tick(clock.now)
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["msg"] for r in records] == ["[FIRING:1] GpuIdle"]
    await d.stop()


async def test_what_fires_and_resolves_inside_a_mute_interval_is_never_sent(tmp_path):
    out = io.StringIO()
    clock = Clock(_ts("2026-12-05T10:00:00+00:00"))  # a Saturday
    d = await _console_dispatcher(tmp_path, out, WEEKEND_MUTE, clock)
    event = fire("GpuIdle", {"team": "ml"}, clock.now)
    d.alerts_changed([event], clock.now)
    await d.tick(clock.now)
    clock.now += 600
    d.alerts_changed([resolve(event, clock.now)], clock.now)
    await d.tick(clock.now)
    clock.now = _ts("2026-12-07T09:00:00+00:00")
    await d.tick(clock.now)
    assert out.getvalue() == ""
    await d.stop()


async def test_active_time_intervals_hold_notifications_outside_them(tmp_path):
    out = io.StringIO()
    clock = Clock(_ts("2026-12-07T06:00:00+00:00"))  # Monday 07:00 in Berlin: before office hours
    alerting = {
        "time_intervals": [{"name": "office", "time_intervals": [{
            "weekdays": ["monday:friday"], "times": [{"start_time": "09:00", "end_time": "17:00"}],
            "location": "Europe/Berlin"}]}],
        "routes": [{"matchers": ["severity=~warning|info"], "receiver": "console",
                    "active_time_intervals": ["office"]}],
    }
    d = await _console_dispatcher(tmp_path, out, alerting, clock)
    d.alerts_changed([fire("DiskSlow", {"node": "n1"}, clock.now)], clock.now)
    await d.tick(clock.now)
    assert out.getvalue() == ""
    clock.now = _ts("2026-12-07T08:00:30+00:00")  # 09:00:30 in Berlin
    await d.tick(clock.now)
    assert json.loads(out.getvalue().splitlines()[0])["msg"] == "[FIRING:1] DiskSlow"
    await d.stop()


def test_silence_add_with_a_bad_regex_points_into_the_users_text(tmp_path, capsys):
    """The anchoring the matcher adds ((?:...)\\Z) never shows: the position is in what was typed."""
    from agent.cli import main

    cfg = tmp_path / "mlwarden.yaml"
    cfg.write_text(f"agent: {{history: 'sqlite:///{tmp_path}/h.db'}}\n")
    with pytest.raises(SystemExit) as exc:
        main(["silence", "add", "-c", str(cfg), "--match", "node=~a)b"])
    err = capsys.readouterr().err
    assert exc.value.code == 64
    assert "mlwarden: node=~'a)b': invalid regex: unbalanced parenthesis at position 1" in err
    assert "(?:" not in err and "\\Z" not in err
    with pytest.raises(SystemExit):
        main(["silence", "add", "-c", str(cfg), "--match", "node=~(?i)gpu"])
    assert "write flags scoped, like (?i:gpu-.*)" in capsys.readouterr().err
