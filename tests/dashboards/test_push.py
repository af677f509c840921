"""``mlwarden dashboards push`` against strict fakes of Datadog's and Grafana's dashboard APIs.

Run as the user runs it (a subprocess with keys in the environment): a second push
updates what the first created and never duplicates; a refused key is a clear error; no
key ever appears in the output.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from agent.dashboards.render import render_all
from tests.dashboards.fake_dashboard_apis import FakeDatadog, FakeGrafana

MLWARDEN = Path(sys.executable).with_name("mlwarden")
API_KEY, APP_KEY = "dd-api-8c1f0e2b7a9d4e6f", "dd-app-3b5e7c9d1f2a4b6c8e0d"
GRAFANA_TOKEN = "glsa_Zq8mX2vR7pL4nK9tW1yB5cD3_e0f1a2b3"


def mlwarden(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DD_", "GRAFANA_"))}
    return subprocess.run([str(MLWARDEN), *args], capture_output=True, text=True, timeout=60,
                          env={**clean, **env})


def assert_no_secret(result: subprocess.CompletedProcess[str], *secrets: str) -> None:
    for secret in secrets:
        assert secret not in result.stdout and secret not in result.stderr


def test_datadog_push_creates_then_updates_by_title_never_duplicates():
    expected = {doc["title"]: doc for doc in render_all("datadog").values()}
    with FakeDatadog(API_KEY, APP_KEY) as dd:
        first = mlwarden("dashboards", "push", "--datadog", "--datadog-url", dd.url,
                         DD_API_KEY=API_KEY, DD_APP_KEY=APP_KEY)
        assert first.returncode == 0, first.stderr
        assert first.stdout.count("created") == len(expected) and "updated" not in first.stdout
        ids = set(dd.dashboards)
        assert {d["title"] for d in dd.dashboards.values()} == set(expected)

        # a user edits a dashboard in the UI; the next push puts the shipped one back in place
        some_id = next(iter(ids))
        dd.dashboards[some_id] = {**dd.dashboards[some_id], "description": "edited by hand"}
        second = mlwarden("dashboards", "push", "--datadog", "--datadog-url", dd.url,
                          DD_API_KEY=API_KEY, DD_APP_KEY=APP_KEY)
        assert second.returncode == 0, second.stderr
        assert second.stdout.count("updated") == len(expected) and "created" not in second.stdout
        assert set(dd.dashboards) == ids, "the second push must update in place, not add dashboards"
        assert all(dd.dashboards[i] == expected[dd.dashboards[i]["title"]] for i in ids)
        assert [m for m, _ in dd.requests].count("POST") == len(expected)
        for result in (first, second):
            assert_no_secret(result, API_KEY, APP_KEY)


def test_datadog_refused_keys_are_a_clear_error_without_the_keys():
    with FakeDatadog(API_KEY, APP_KEY) as dd:
        wrong = "dd-app-WRONG-0123456789abcdef"
        result = mlwarden("dashboards", "push", "--datadog", "--datadog-url", dd.url,
                          DD_API_KEY=API_KEY, DD_APP_KEY=wrong)
        assert result.returncode == 1
        assert "HTTP 403" in result.stderr and "check the API and application keys" in result.stderr
        assert_no_secret(result, API_KEY, wrong)
        assert not dd.dashboards


def test_datadog_push_without_keys_says_which_variables_to_set():
    result = mlwarden("dashboards", "push", "--datadog", "--datadog-url", "http://127.0.0.1:9")
    assert result.returncode == 78  # a missing setting: a config error
    assert "DD_API_KEY" in result.stderr and "DD_APP_KEY" in result.stderr


def test_datadog_fake_rejects_what_datadog_would():
    """The fake is strict: an unknown widget field is a 400, so passing pushes mean valid JSON."""
    from agent.dashboards.push import push_datadog
    from agent.errors import ExportError

    doc = next(iter(render_all("datadog").values()))
    bad = {**doc, "widgets": [{"definition": {"type": "note", "content": "x", "colour": "red"}}]}
    with FakeDatadog(API_KEY, APP_KEY) as dd:
        try:
            push_datadog({"bad.json": bad}, api_key=API_KEY, app_key=APP_KEY, base_url=dd.url)
        except ExportError as exc:
            assert "HTTP 400" in str(exc) and "colour" in str(exc)
            assert API_KEY not in str(exc) and APP_KEY not in str(exc)
        else:
            raise AssertionError("an invalid dashboard was accepted")


def test_grafana_push_creates_then_overwrites_by_uid():
    expected = render_all("grafana")
    with FakeGrafana(GRAFANA_TOKEN) as gf:
        for round_ in (1, 2):
            result = mlwarden("dashboards", "push", "--grafana", gf.url,
                              "--grafana-folder", "mlops", GRAFANA_TOKEN=GRAFANA_TOKEN)
            assert result.returncode == 0, result.stderr
            assert result.stdout.count("success") == len(expected)
            assert_no_secret(result, GRAFANA_TOKEN)
            assert set(gf.dashboards) == {doc["uid"] for doc in expected.values()}
            assert set(gf.versions.values()) == {round_}
        assert set(gf.folders.values()) == {"mlops"}
        for doc in expected.values():
            assert gf.dashboards[doc["uid"]] == {**doc, "id": None}


def test_grafana_bad_token_is_a_clear_error_without_the_token():
    with FakeGrafana(GRAFANA_TOKEN) as gf:
        wrong = "glsa_WRONGtoken_0123456789"
        result = mlwarden("dashboards", "push", "--grafana", gf.url, GRAFANA_TOKEN=wrong)
        assert result.returncode == 1
        assert "HTTP 401" in result.stderr and "Invalid API key" in result.stderr
        assert "check GRAFANA_TOKEN" in result.stderr
        assert_no_secret(result, wrong, GRAFANA_TOKEN)
        assert not gf.dashboards


def test_datadog_site_names_the_api_host():
    from agent.dashboards.push import datadog_base_url

    assert datadog_base_url(None) == "https://api.datadoghq.com"
    assert datadog_base_url("datadoghq.eu") == "https://api.datadoghq.eu"
    assert datadog_base_url("https://us5.datadoghq.com/") == "https://api.us5.datadoghq.com"
