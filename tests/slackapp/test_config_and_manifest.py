"""The ``slack_actions:`` section's errors, each naming its path, and the shipped Slack app
manifest: the file users paste, read as it is."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from agent.config import config_warnings, parse_config
from agent.errors import ConfigError
from agent.notify.slack_scopes import FEATURES

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[2]
MANIFEST = REPO / "deploy" / "slack" / "slack-app-manifest.yaml"
APP = "xapp-1-A0MLWARDEN-1-0123456789abcdef"


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    return info.value.problems


@pytest.mark.parametrize("text,expected", [
    ("slack_actions: {}",
     "slack_actions: mode socket needs `app_token` (the app-level token, xapp-..., e.g. "
     "${SLACK_APP_TOKEN})"),
    ("slack_actions: {app_token: xoxb-1-secret-bot-token}",
     "slack_actions.app_token: expected an app-level token (xapp-...), found one starting with "
     "'xoxb-': create it under Basic Information > App-Level Tokens with the scope "
     "connections:write"),
    (f"slack_actions: {{app_token: {APP}, allow: {{default: {{users: ['@ana']}}}}}}",
     "slack_actions.allow.default.users: expected Slack user IDs like 'U0123ABCD', found "
     "['@ana'] (a name or @handle changes; the ID does not)"),
    (f"slack_actions: {{app_token: {APP}, allow: {{silence: {{usergroups: [oncall]}}}}}}",
     "slack_actions.allow.silence.usergroups: expected Slack user group IDs like 'S0123ABCD', "
     "found ['oncall']"),
    (f"slack_actions: {{app_token: {APP}, allow: {{chart: {{usergroups: [S0ONCALL]}}}}}}",
     "slack_actions.allow.chart.usergroups: looking up a user group needs a bot token with "
     "usergroups:read (slack_actions.bot_token or alerting.slack.token)"),
    ("slack_actions: {mode: http}",
     "slack_actions: mode http needs `http: {signing_secret: ${SLACK_SIGNING_SECRET}}`"),
    ("slack_actions: {mode: http, http: {signing_secret: s3cr3t-value, timestamp_tolerance: 10m}}",
     "slack_actions.http.timestamp_tolerance"),
    ("slack_actions: {mode: http, http: {signing_secret: s3cr3t-value, path: slack}}",
     "slack_actions.http.path: expected a path starting with '/', found 'slack'"),
    (f"slack_actions: {{app_token: {APP}, alow: {{}}}}", "slack_actions.alow"),
])
def test_each_mistake_is_named_with_its_path(text, expected):
    found = problems(text)
    assert any(p.startswith(expected) for p in found), found
    assert all("secret-bot-token" not in p and "s3cr3t-value" not in p for p in found)


def test_a_working_section_and_its_warning_when_nobody_may_act():
    config = parse_config(f"""
alerting: {{slack: {{token: xoxb-1-bot}}}}
slack_actions:
  app_token: {APP}
  allow:
    default: {{usergroups: [S0ONCALL]}}
    chart: {{anyone: true}}
""")
    actions = config.slack_actions
    assert actions.mode == "socket" and actions.allow.for_action("silence").usergroups == \
        ("S0ONCALL",)
    assert actions.allow.for_action("chart").anyone and config_warnings(config) == []
    bare = parse_config(f"alerting: {{slack: {{token: xoxb-1-bot}}}}\n"
                        f"slack_actions: {{app_token: {APP}}}")
    assert config_warnings(bare) == [
        "slack_actions.allow: nobody may acknowledge, silence, unsilence, chart (every press "
        "is answered 'not allowed'); list `users`, `usergroups` or set `anyone: true` under "
        "allow.default or the action"]


@pytest.mark.parametrize("alerting,expected", [
    ("{slack: {webhook_url: 'https://hooks.slack.com/services/T0/B0/x'}}",
     "slack_actions is set but no receiver posts with a bot token"),
    ("{}", "slack_actions is set but no receiver posts with a bot token"),
    ("{enabled: false, slack: {token: xoxb-1-bot}}",
     "slack_actions is set but alerting is disabled"),
])
def test_buttons_with_nowhere_to_go_are_said_at_load_time(alerting, expected):
    config = parse_config(f"alerting: {alerting}\nslack_actions: "
                          f"{{app_token: {APP}, allow: {{default: {{anyone: true}}}}}}")
    assert [w for w in config_warnings(config) if w.startswith(expected)], \
        config_warnings(config)
    fine = parse_config("alerting: {receivers: [{name: oncall, type: slack, token: xoxb-1-bot, "
                        f"channel: C0ONCALL1}}]}}\nslack_actions: {{app_token: {APP}, "
                        "allow: {default: {anyone: true}}}")
    assert config_warnings(fine) == []


def test_the_manifest_turns_on_socket_mode_interactivity_and_every_scope_used():
    manifest = yaml.safe_load(MANIFEST.read_text())
    assert set(manifest) == {"display_information", "features", "oauth_config", "settings"}
    settings = manifest["settings"]
    assert settings["socket_mode_enabled"] is True
    assert settings["interactivity"] == {"is_enabled": True}  # no request_url in Socket Mode
    assert len(manifest["display_information"]["name"]) <= 35
    assert len(manifest["display_information"]["description"]) <= 140
    scopes = manifest["oauth_config"]["scopes"]["bot"]
    assert len(scopes) == len(set(scopes))
    # every scope a bot-mode feature can use (slack_scopes.FEATURES), and the user group lookup
    wanted = {s for f in FEATURES for s in f.scopes} | {"usergroups:read"}
    assert set(scopes) == wanted
    assert manifest["features"]["bot_user"]["display_name"] == "mlwarden"


def test_the_docs_point_at_the_manifest_and_list_its_scopes():
    """docs/alerting.md and the manifest are all a person needs to set the app up."""
    text = (REPO / "docs" / "alerting.md").read_text()
    text = text[text.index("## Acting on alerts from Slack"):]
    text = text[:text.index("\n## ", 5)]
    assert "deploy/slack/slack-app-manifest.yaml" in text
    for scope in yaml.safe_load(MANIFEST.read_text())["oauth_config"]["scopes"]["bot"]:
        assert f"`{scope}`" in text, scope
    assert "connections:write" in text and "xapp-" in text
    assert "app_token:" in text and "allow:" in text and "signing_secret:" in text
