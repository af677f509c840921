"""The status page over HTTP against an in-process agent: content, escaping, the silence
form and its cross-site defences, charts, series, and the token rule on real binds.

One agent for the module (the browser tests in test_page_browser.py drive a daemon
subprocess); its checks are real model_endpoint checks against a port nothing listens on,
so they fail the way a dead model server does.
"""

from __future__ import annotations

import asyncio
import base64
import re
import time

import aiohttp
import pytest
import pytest_asyncio

from agent.alerting.silences import SilenceStore
from agent.app import Agent
from agent.config import parse_config
from agent.secrets import register_secret
from tests.support.procs import free_port

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

XSS = "<script>alert(1)</script>"
TAG_XSS = '"><img src=x onerror=alert(2)>'
CONFIG = """
agent: {listen: "127.0.0.1:PORT", history: "sqlite:///DB", hostname: page-test, self_check: false}
alerting: {group_wait: 1h}
checks:
  - {type: model_endpoint, name: ranker, protocol: v2, model: ranker, url: "http://127.0.0.1:DEAD", interval: 1h}
  - {type: model_endpoint, name: scripted, protocol: v2, model: "XSS", url: "http://127.0.0.1:DEAD",
     interval: 1h, tags: {team: 'TAGXSS'}}
rules:
  - alert: EndpointDown
    metric: mlwarden.endpoint.up
    op: "<"
    threshold: 1
    group_by: [check, model]
    severity: critical
    summary: "{model} is down"
    runbook_url: "javascript:alert(3)"
    dashboard_url: "https://dashboards.example/d/{check}"
"""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def agent(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("page")
    text = (CONFIG.replace("PORT", str(free_port())).replace("DEAD", str(free_port()))
            .replace("DB", str(tmp / "h.db")).replace("TAGXSS", TAG_XSS.replace("'", "''"))
            .replace('"XSS"', '"' + XSS + '"'))
    agent = Agent(parse_config(text))
    await agent.start()
    try:
        for name in ("ranker", "scripted"):
            await agent.scheduler.run_once(name)
        await agent.pipeline.drain(5)
        for _ in range(100):  # the rules hear the samples through the pipeline
            if len(agent.rules.evaluator.alerts()) == 2:
                break
            await asyncio.sleep(0.05)
        assert len(agent.rules.evaluator.alerts()) == 2
        assert agent.history.flush(10)
        yield agent
    finally:
        await agent.stop()


def base(agent: Agent) -> str:
    return f"http://127.0.0.1:{agent.server.bound_port}"


async def fetch(method: str, url: str, **kwargs) -> tuple[int, str, dict]:
    async with aiohttp.ClientSession() as s:
        async with s.request(method, url, allow_redirects=False, **kwargs) as r:
            return r.status, await r.text(), dict(r.headers)


def csrf_of(body: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', body).group(1)


async def test_page_lists_checks_worst_first_with_alerts_and_health(agent):
    code, body, headers = await fetch("GET", base(agent) + "/")
    assert code == 200 and headers["Content-Type"].startswith("text/html")
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY" and headers["Cache-Control"] == "no-store"
    checks = body[body.index('id="live-checks"'):body.index('id="alerts"')]
    row = checks[checks.index('<span class="name">ranker</span>'):]
    row = row[:row.index("</tr>")]
    assert '<span class="badge st-critical">CRITICAL</span>' in row
    assert "model ranker: refused: GET http://127.0.0.1:" in row
    assert 'href="/ui/chart?metric=mlwarden.endpoint.latency&amp;tag=agent%3Dpage-test&amp;tag=check%3Dranker"' in row
    assert "Agent health" in body and "sqlite:///" in body
    assert "EndpointDown" in body and "ranker is down" in body
    assert 'href="https://dashboards.example/d/ranker"' in body
    assert "javascript:" not in body  # the runbook template made a javascript: link: not shown
    assert "Silence…" in body and "Alert receivers and their outbox" in body
    assert "2 firing, 0 pending" in body


async def test_every_value_from_data_is_text(agent):
    code, body, _ = await fetch("GET", base(agent) + "/")
    assert code == 200
    assert XSS not in body and "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "<img" not in body  # the page has no image of its own
    assert re.findall(r"<script[^>]*>", body) == ['<script src="/ui/static/page.js" defer>']
    # the series list of that check (its tags hold the other payload)
    code, body, _ = await fetch("GET", base(agent) + "/ui/series?check=scripted")
    assert code == 200 and "<img" not in body and "&lt;img src=x onerror=alert(2)&gt;" in body


async def test_registered_secrets_are_masked_as_on_status(agent):
    register_secret("ranker: refused")  # a secret that happens to be in a message
    code, body, _ = await fetch("GET", base(agent) + "/")
    assert code == 200 and "ranker: refused" not in body and "model ********" in body


@pytest.mark.parametrize("query,shown,hidden", [
    ("status=CRITICAL", ["ranker", "scripted"], []),
    ("status=OK", [], ["ranker", "scripted"]),
    ("type=model_endpoint&status=failing", ["ranker", "scripted"], []),
    ("type=gpu", [], ["ranker", "scripted"]),
])
async def test_filters(agent, query, shown, hidden):
    code, body, _ = await fetch("GET", base(agent) + "/?" + query)
    refresh_url = re.search(r'data-refresh="15" data-refresh-url="/\?([^"]*)"', body).group(1)
    assert sorted(refresh_url.split("&amp;")) == sorted(query.split("&"))  # keeps the filters
    table = body[body.index('id="live-checks"'):body.index('id="alerts"')]
    assert code == 200
    for name in shown:
        assert f'<span class="name">{name}</span>' in table
    for name in hidden:
        assert f'<span class="name">{name}</span>' not in table


async def test_silence_form_adds_to_the_cli_store_and_expires(agent):
    url = base(agent)
    code, body, _ = await fetch("GET", url + "/?silence=alertname%3D%22EndpointDown%22&silence=check%3D%22ranker%22")
    assert code == 200 and "alertname=&#34;EndpointDown&#34;\ncheck=&#34;ranker&#34;</textarea>" in body
    form = {"csrf": csrf_of(body), "matchers": 'alertname="EndpointDown"\ncheck="ranker"',
            "duration": "1h", "author": "maria", "comment": "deploying <b>v2</b>"}
    headers = {"Origin": url, "Sec-Fetch-Site": "same-origin"}
    code, _, h = await fetch("POST", url + "/ui/silences", data=form, headers=headers)
    assert code == 303 and h["Location"].startswith("/?added=")
    store = SilenceStore(agent.history.engine)  # the table `mlwarden silence` reads
    [silence] = store.list(now=time.time())
    assert [str(m) for m in silence.matchers] == ["alertname=EndpointDown", "check=ranker"]
    assert silence.created_by == "maria" and 3590 < silence.ends_at - silence.starts_at <= 3600
    code, body, _ = await fetch("GET", url + h["Location"])
    assert f"Silence <code>{silence.id[:8]}</code> added" in body
    assert f'Silenced by <a href="#silence-{silence.id}">' in body  # next to the ranker alert
    assert "deploying &lt;b&gt;v2&lt;/b&gt;" in body
    # expire it through its own form
    code, _, h = await fetch("POST", url + "/ui/silences/expire", headers=headers,
                             data={"csrf": csrf_of(body), "id": silence.id})
    assert code == 303 and h["Location"].startswith("/?expired=")
    assert store.list(now=time.time()) == []


async def test_a_bad_silence_form_comes_back_filled_in_with_the_reasons(agent):
    url = base(agent)
    _, body, _ = await fetch("GET", url + "/")
    form = {"csrf": csrf_of(body), "matchers": "check=~(unclosed\n<i>x</i>", "duration": "soon",
            "author": "", "comment": "<script>x</script>"}
    code, body, _ = await fetch("POST", url + "/ui/silences", data=form)
    assert code == 400 and 'data-refresh="0"' in body  # no refresh while it is being fixed
    assert 'aria-invalid="true"' in body and "invalid regex" in body
    assert "expected a duration like" in body and "Say who silences" in body
    assert "&lt;script&gt;x&lt;/script&gt;" in body and "<script>x</script>" not in body
    assert SilenceStore(agent.history.engine).list(now=time.time()) == []


@pytest.mark.parametrize("headers,csrf,why", [
    ({"Sec-Fetch-Site": "cross-site"}, "page", "another site"),
    ({"Sec-Fetch-Site": "same-site", "Origin": "http://127.0.0.1:1"}, "page", "another site"),
    ({"Origin": "http://evil.example"}, "page", "another origin"),
    ({}, "", "not issued by this agent"),
    ({}, "1.forged", "not issued by this agent"),
])
async def test_cross_site_posts_are_refused(agent, headers, csrf, why):
    url = base(agent)
    _, body, _ = await fetch("GET", url + "/")
    token = csrf_of(body) if csrf == "page" else csrf
    form = {"csrf": token, "matchers": "alertname=EndpointDown", "duration": "1h", "author": "x"}
    code, body, _ = await fetch("POST", url + "/ui/silences", data=form, headers=headers)
    assert code == 403 and why in body
    assert SilenceStore(agent.history.engine).list(now=time.time()) == []


async def test_forms_are_post_only(agent):
    assert (await fetch("GET", base(agent) + "/ui/silences"))[0] == 405
    assert (await fetch("GET", base(agent) + "/ui/silences/expire?id=x"))[0] == 405


async def test_chart_page_png_and_series(agent):
    url = base(agent)
    code, body, _ = await fetch("GET", url + "/")
    chart = re.search(r'href="(/ui/chart\?metric=mlwarden\.endpoint\.up[^"]*check%3Dranker[^"]*)"',
                      body).group(1)
    code, body, _ = await fetch("GET", url + chart.replace("&amp;", "&"))
    assert code == 200 and "History of <code>mlwarden.endpoint.up</code>" in body
    assert "<code>check=ranker</code>" in body and 'alt="Line chart of mlwarden.endpoint.up' in body
    png = re.search(r'<img src="([^"]+)"', body).group(1).replace("&amp;", "&")
    async with aiohttp.ClientSession() as s:
        async with s.get(url + png) as r:
            assert r.status == 200 and r.content_type == "image/png"
            assert (await r.read()).startswith(b"\x89PNG\r\n\x1a\n")
    code, body, _ = await fetch("GET", url + "/ui/chart?metric=mlwarden.nothing.here")
    assert code == 200 and "No point of <code>mlwarden.nothing.here</code>" in body
    assert (await fetch("GET", url + "/ui/chart"))[0] == 400
    assert (await fetch("GET", url + "/ui/chart?metric=m&tag=novalue"))[0] == 400
    code, body, _ = await fetch("GET", url + "/ui/series")
    assert code == 200 and 'href="/ui/series?metric=mlwarden.endpoint.up"' in body
    code, body, _ = await fetch("GET", url + "/ui/series?check=ranker")
    assert code == 200 and "mlwarden.check.status" in body


async def test_assets_are_our_own_files(agent):
    code, body, headers = await fetch("GET", base(agent) + "/ui/static/page.js")
    assert code == 200 and headers["Content-Type"].startswith("text/javascript")
    assert "fetch(" in body and "http://" not in body and "https://" not in body  # talks to no one else
    assert (await fetch("GET", base(agent) + "/ui/static/..%2Fapp.py"))[0] == 404
    assert (await fetch("GET", base(agent) + "/ui/static/other.js"))[0] == 404


async def test_no_loopback_host_name_no_page(agent):
    code, body, _ = await fetch("GET", base(agent) + "/", headers={"Host": "rebound.example"})
    assert code == 403 and "loopback host names" in body


# -- the token rule on real binds --------------------------------------------------------------
async def _other_agent(tmp_path, listen: str, token: str | None, extra: str = "") -> Agent:
    auth = f", auth_token: {token}" if token else ""
    cfg = parse_config(f'agent: {{listen: "{listen}", history: "sqlite:///{tmp_path}/o.db", '
                       f'self_check: false{auth}}}\n{extra}')
    agent = Agent(cfg)
    await agent.start()
    return agent


async def test_no_token_on_a_non_loopback_bind_refuses_the_page(tmp_path):
    port = free_port()
    agent = await _other_agent(tmp_path, f"0.0.0.0:{port}", None)
    try:
        for path in ("/", "/ui/chart?metric=mlwarden.check.status", "/ui/series", "/ui/static/page.js"):
            code, body, _ = await fetch("GET", f"http://127.0.0.1:{port}{path}")
            assert code == 403 and "agent.auth_token is not set" in body, path
        code, _, _ = await fetch("POST", f"http://127.0.0.1:{port}/ui/silences", data={"x": "y"})
        assert code == 403
    finally:
        await agent.stop()


async def test_a_token_is_asked_for_and_taken_as_bearer_or_basic(tmp_path):
    port = free_port()
    token = "tok-page-4711"
    agent = await _other_agent(tmp_path, f"127.0.0.1:{port}", token)
    url = f"http://127.0.0.1:{port}/"
    try:
        code, body, headers = await fetch("GET", url)
        assert code == 401 and headers["WWW-Authenticate"].startswith('Basic realm="mlwarden agent"')
        assert "token as password" in body and "Agent health" not in body
        basic = "Basic " + base64.b64encode(f"maria:{token}".encode()).decode()
        code, body, _ = await fetch("GET", url, headers={"Authorization": basic})
        assert code == 200 and "Agent health" in body and 'name="author" value="maria"' in body
        assert token not in body
        assert (await fetch("GET", url, headers={"Authorization": f"Bearer {token}"}))[0] == 200
        assert (await fetch("GET", url, headers={"Authorization": "Bearer nope"}))[0] == 401
        # /status keeps its own rule: bearer only
        assert (await fetch("GET", url + "status", headers={"Authorization": basic}))[0] == 401
    finally:
        await agent.stop()


async def test_without_alerting_the_page_says_so_and_silences_nothing(tmp_path):
    port = free_port()
    agent = await _other_agent(tmp_path, f"127.0.0.1:{port}", None, "alerting: {enabled: false}\n")
    url = f"http://127.0.0.1:{port}"
    try:
        code, body, _ = await fetch("GET", url + "/")
        assert code == 200 and "Alerting is disabled on this agent" in body
        assert 'id="silence-form"' not in body and "Alert receivers" not in body
        code, body, _ = await fetch("POST", url + "/ui/silences", data={
            "csrf": agent.server.page.access.csrf_token(), "matchers": "a=b", "duration": "1h",
            "author": "x"})
        assert code == 409 and "nothing to silence" in body
    finally:
        await agent.stop()
