"""`mlwarden silence` and `mlwarden routes test` against a real SQLite store."""

from __future__ import annotations

import json

import pytest

from agent.alert import fingerprint
from agent.cli import main
from tests.alerting.helpers import store

pytestmark = pytest.mark.unit


@pytest.fixture
def cfg(tmp_path):
    path = tmp_path / "mlwarden.yaml"
    path.write_text(f"""
agent: {{history: "sqlite:///{tmp_path / 'm.db'}"}}
alerting:
  receivers: [{{name: oncall, type: console}}]
  routes: [{{match: {{severity: critical}}, receiver: oncall, group_by: [alertname, node]}}]
  inhibit_rules: [{{source_match: {{alertname: NodeDown}}, target_match: {{alertname: GpuIdle}}, equal: [node]}}]
""")
    return str(path)


def test_silence_add_list_expire(cfg, capsys):
    assert (
        main(
            [
                "silence",
                "add",
                "-c",
                cfg,
                "--match",
                "alert=GpuIdle",
                "--match",
                "node=gpu-3",
                "--for",
                "2h",
                "--comment",
                "driver upgrade",
            ]
        )
        == 0
    )
    sid = capsys.readouterr().out.split()[0]
    assert main(["silence", "list", "-c", cfg, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [s["id"] for s in listed] == [sid] and listed[0]["comment"] == "driver upgrade"
    assert (
        main(["routes", "test", "-c", cfg, "--label", "alert=GpuIdle", "--label", "node=gpu-3"])
        == 0
    )
    assert f"muted: silenced by {sid}" in capsys.readouterr().out
    assert main(["silence", "expire", "-c", cfg, sid[:8]]) == 0
    capsys.readouterr()
    assert main(["silence", "list", "-c", cfg, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    with pytest.raises(SystemExit) as exc:
        main(["silence", "expire", "-c", cfg, "nope"])
    assert exc.value.code == 1 and "no silence with id 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["silence", "add", "-c", cfg, "--match", "justaword"])
    assert exc.value.code == 64 and "expected a matcher" in capsys.readouterr().err


def test_routes_test_shows_route_receiver_inhibition_and_message(cfg, tmp_path, capsys):
    engine = store(tmp_path, "m.db")
    from agent.history.tables import alerts

    labels = {"node": "gpu-3"}  # the rule's own labels, as the rules engine stores them
    with engine.begin() as conn:
        conn.execute(
            alerts.insert().values(
                fingerprint=fingerprint("NodeDown", labels),
                rule="NodeDown",
                labels=json.dumps(labels),
                annotations="{}",
                state="firing",
                severity="critical",
            )
        )
    assert (
        main(
            [
                "routes",
                "test",
                "-c",
                cfg,
                "--label",
                "alert=GpuIdle",
                "--label",
                "node=gpu-3",
                "--severity",
                "critical",
                "--blocks",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "route root/0 -> receiver oncall" in out
    assert "group_by [alertname, node]" in out
    assert "muted: inhibited by NodeDown" in out
    assert "[FIRING:1] GpuIdle" in out and '"type": "header"' in out
    assert (
        main(["routes", "test", "-c", cfg, "--label", "alert=GpuIdle", "--label", "node=gpu-4"])
        == 0
    )
    out = capsys.readouterr().out
    assert "route root -> receiver console" in out and "muted: no" in out
