"""The status page in a real browser (headless Chromium) against a real `mlwarden run`.

The agent listens on every address with a token, as in a pod; two of its model endpoints
point at a port nothing listens on, so they fail and fire EndpointDown, which goes to a
Slack incoming webhook. The webhook is a strict fake (tests/notify/fake_slack.py: Slack
cannot run here), and it is what proves that a silence added through the page's form
stops the notifications of the alert it matches while the other alert keeps repeating.

One agent and one browser for the module.
"""

from __future__ import annotations

import http.server
import json
import subprocess
import threading
import time

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import sync_playwright

from tests.faults.threaded_slack import ThreadedSlack
from tests.support.procs import free_port, wait_for
from tests.web.browser import MLWARDEN, launch, start_agent

pytestmark = pytest.mark.integration

TOKEN = "tok-browser-5b2e9c"
XSS = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def slack():
    with ThreadedSlack() as s:
        yield s


@pytest.fixture(scope="module")
def agent(tmp_path_factory, slack):
    tmp = tmp_path_factory.mktemp("browser-agent")
    proc, port, cfg = start_agent(tmp, token=TOKEN, dead_port=free_port(),
                                  webhook=slack.fake.webhook_url)
    try:
        yield {"url": f"http://127.0.0.1:{port}", "config": cfg, "proc": proc}
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = launch(p)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser):
    """A signed-in tab: Basic auth with the token as password, as a person types it."""
    context = browser.new_context(http_credentials={"username": "maria", "password": TOKEN})
    dialogs: list[str] = []
    tab = context.new_page()
    tab.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    tab.dialogs = dialogs  # type: ignore[attr-defined]
    yield tab
    context.close()


def posts_about(slack, check: str) -> int:
    texts = slack.call(lambda: [p.get("text", "") for p in slack.fake.webhook_posts])
    return sum(1 for t in texts if f"{check} is down" in t)


def test_without_the_token_the_page_is_refused(browser, agent):
    # no credentials: Chromium asks for them; Playwright dismisses the prompt, as a person
    # without the token would, and the page never loads
    context = browser.new_context()
    try:
        with pytest.raises(PlaywrightError, match="ERR_INVALID_AUTH_CREDENTIALS"):
            context.new_page().goto(agent["url"] + "/")
    finally:
        context.close()
    # a wrong token: the refusal, and nothing of the agent's
    context = browser.new_context(http_credentials={"username": "maria", "password": "guess"})
    try:
        tab = context.new_page()
        for path in ("/", "/ui/series", "/ui/chart?metric=mlwarden.endpoint.up", "/ui/static/page.js"):
            response = tab.goto(agent["url"] + path)
            assert response is not None and response.status == 401, path
            assert "needs its token" in tab.inner_text("#refused")
            assert "ranker" not in tab.content()
    finally:
        context.close()


def test_page_shows_the_failing_check_and_data_as_text(page, agent):
    page.goto(agent["url"] + "/")
    ranker = page.locator("table.checks tr", has=page.locator("th .name", has_text="ranker"))
    wait_for(lambda: page.reload() and "CRITICAL" in ranker.inner_text(), 20, interval=0.5,
             what="ranker CRITICAL on the page")
    assert "refused" in ranker.locator("td.msg").inner_text()
    healthy = page.locator("table.checks tr", has=page.locator("th .name", has_text="agent-healthz"))
    assert "OK" in healthy.inner_text()
    # the failing check's alert is on the page, with its sparkline-free latency and a chart link
    alerts = page.locator("table.alerts")
    wait_for(lambda: page.reload() and "ranker is down" in alerts.inner_text(), 20, interval=0.5,
             what="EndpointDown for ranker on the page")
    # the model named <script>alert(1)</script> is shown as those characters, never run
    scripted = page.locator("table.checks tr", has=page.locator("th .name", has_text="scripted"))
    assert XSS in scripted.locator("td.msg").inner_text()
    assert XSS in alerts.inner_text()
    assert page.evaluate("Array.from(document.scripts).map(s => s.src || s.text)") == [
        agent["url"] + "/ui/static/page.js"]
    assert page.dialogs == []
    # a sparkline from the local history for the check that answers, linked to its chart
    wait_for(lambda: page.reload() and healthy.locator("svg.spark").count() == 1, 20, interval=0.5,
             what="a sparkline for agent-healthz")
    label = healthy.locator("svg.spark").get_attribute("aria-label")
    assert label.startswith("mlwarden.endpoint.latency of agent-healthz over the last hour: last ")
    healthy.locator("td.trend a").click()
    page.wait_for_url("**/ui/chart?metric=mlwarden.endpoint.latency*")
    from agent.charts import DPI, WIDTH

    # the chart loaded (a broken image has no natural width) and is the one agent.charts draws
    assert page.locator("figure.chart img").evaluate("img => img.complete && img.naturalWidth") \
        == round(WIDTH * DPI)
    assert page.dialogs == []


def test_page_at_phone_width_is_labelled_and_fits(page, agent):
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(agent["url"] + "/")
    page.wait_for_selector("table.checks th .name")
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"the page is {overflow}px wider than a phone"
    unlabelled = page.evaluate("""Array.from(document.querySelectorAll('input, select, textarea, button'))
        .filter(e => e.type !== 'hidden' && !e.labels?.length && !e.getAttribute('aria-label')
                     && !(e.tagName === 'BUTTON' && e.textContent.trim()))
        .map(e => e.outerHTML)""")
    assert unlabelled == []
    assert page.evaluate("Array.from(document.querySelectorAll('table')).every(t => t.caption)")
    # one card per check, and the table's roles stay, so a screen reader still hears a table
    assert page.evaluate("getComputedStyle(document.querySelector('table.checks tr')).display") == "block"
    checks = page.get_by_role("table", name="check instances")
    assert checks.count() == 1 and checks.get_by_role("rowheader", name="ranker").count() == 1
    assert checks.get_by_role("columnheader").all_inner_texts() == [
        "Check", "Status", "Message", "Last hour", "Last run"]


def test_the_page_refreshes_itself_but_not_under_the_users_hands(page, agent):
    page.clock.install()  # the page's timers run on Playwright's clock; the agent's do not
    page.goto(agent["url"] + "/")
    before = page.locator("#live-summary time").get_attribute("datetime")
    runs = page.locator("table.checks").inner_text()
    time.sleep(1.1)  # the agent's clock: the next render says a later second
    page.clock.run_for(16_000)
    page.wait_for_selector("body[data-refreshed]", state="attached")
    assert page.locator("#live-summary time").get_attribute("datetime") > before
    assert page.locator("table.checks").inner_text() != runs  # "just now", durations...
    assert page.is_visible("#autorefresh") and page.inner_text("#refresh-state") == ""
    # typing into the silence form holds the refresh back
    refreshed = page.evaluate("document.body.dataset.refreshed")
    page.fill("#s-comment", "half-written")
    page.locator("body").click(position={"x": 5, "y": 300})  # focus leaves the field
    page.clock.run_for(32_000)
    time.sleep(0.5)
    assert page.evaluate("document.body.dataset.refreshed") == refreshed
    assert page.input_value("#s-comment") == "half-written"


def test_silence_from_the_page_mutes_the_firing_alert(page, agent, slack):
    wait_for(lambda: posts_about(slack, "ranker") >= 1 and posts_about(slack, "scripted") >= 1, 30,
             interval=0.3, what="both alerts notified to the webhook")
    page.goto(agent["url"] + "/")
    row = page.locator("table.alerts tr", has_text="ranker is down")
    row.get_by_role("link", name="Silence…").click()
    page.wait_for_url("**/?silence=*")
    assert page.input_value("#s-matchers") == 'alertname="EndpointDown"\ncheck="ranker"\nmodel="ranker"'
    assert page.input_value("#s-author") == "maria"  # the Basic-auth user name, editable
    page.fill("#s-duration", "1h")
    page.fill("#s-comment", "redeploying the ranker")
    with page.expect_response(lambda r: r.url.endswith("/ui/silences")) as answer:
        page.get_by_role("button", name="Add silence").click()
    assert answer.value.status == 303, page.content()[:3000]
    page.wait_for_url("**/?added=*")
    assert "added: alertname=EndpointDown, check=ranker, model=ranker" in page.inner_text(".notice")
    row = page.locator("table.alerts tr", has_text="ranker is down")
    assert "Silenced by" in row.inner_text() and "maria: redeploying the ranker" in row.inner_text()
    # a send already in flight may land; from then on, nothing about ranker
    time.sleep(1.0)
    muted, control = posts_about(slack, "ranker"), posts_about(slack, "scripted")
    time.sleep(5.0)  # 2.5 repeat intervals
    assert posts_about(slack, "scripted") > control, "the unsilenced alert stopped repeating"
    assert posts_about(slack, "ranker") == muted, "a notification went out for the silenced alert"
    # the same store as the CLI
    out = subprocess.run([str(MLWARDEN), "silence", "list", "--json", "--config", str(agent["config"])],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    [listed] = [s for s in json.loads(out) if s["comment"] == "redeploying the ranker"]
    assert listed["created_by"] == "maria" and listed["state"] == "active"


class _Attacker(http.server.BaseHTTPRequestHandler):
    """A page on another origin (same host, another port) that posts the silence form."""

    body = b""

    def do_GET(self):  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


def test_a_form_posted_from_another_origin_is_refused(page, agent):
    page.goto(agent["url"] + "/")
    csrf = page.locator("#silence-form input[name=csrf]").get_attribute("value")  # even a valid one
    _Attacker.body = f"""<!doctype html><form id="f" method="post" action="{agent['url']}/ui/silences">
      <input name="csrf" value="{csrf}"><input name="matchers" value="alertname=EndpointDown">
      <input name="duration" value="30d"><input name="author" value="mallory"></form>
      <script>document.getElementById('f').submit()</script>""".encode()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Attacker)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with page.expect_response(lambda r: r.url.endswith("/ui/silences")) as answer:
            page.goto(f"http://127.0.0.1:{server.server_address[1]}/")
        assert answer.value.status == 403
        page.wait_for_selector("#refused")
        assert "another site" in page.inner_text("#refused")
    finally:
        server.shutdown()
        server.server_close()
    out = subprocess.run([str(MLWARDEN), "silence", "list", "--json", "--config", str(agent["config"])],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    assert "mallory" not in out
