"""Who may open the status page and which form posts it believes (agent/web/access.py)."""

from __future__ import annotations

import base64

import pytest
from pydantic import SecretStr

from agent.web.access import CSRF_LIFETIME, PageAccess, is_loopback

pytestmark = pytest.mark.unit
TOKEN = "tok-0123456789"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def access(token: str | None, listen: str, now: float = 1_000_000.0) -> PageAccess:
    clock = [now]
    a = PageAccess(lambda: SecretStr(token) if token else None, lambda: listen, clock=lambda: clock[0])
    a.clock = clock  # type: ignore[attr-defined]  # the test moves time
    return a


@pytest.mark.parametrize("host,expected", [
    ("127.0.0.1", True), ("127.8.9.1", True), ("::1", True), ("[::1]", True), ("localhost", True),
    ("0.0.0.0", False), ("::", False), ("10.0.0.5", False), ("node-1.example", False), ("", False),
])
def test_loopback(host, expected):
    assert is_loopback(host) is expected


@pytest.mark.parametrize("token,listen,headers,status", [
    # no token on loopback: open, but only under a loopback host name (DNS rebinding)
    (None, "127.0.0.1:9464", {"Host": "127.0.0.1:9464"}, None),
    (None, "127.0.0.1:9464", {"Host": "localhost:9464"}, None),
    (None, "[::1]:9464", {"Host": "[::1]:9464"}, None),
    (None, "127.0.0.1:9464", {"Host": "evil.example:9464"}, 403),
    (None, "127.0.0.1:9464", {}, 403),
    # no token on any other bind: never served, whoever asks
    (None, "0.0.0.0:9464", {"Host": "127.0.0.1:9464"}, 403),
    (None, "10.0.0.5:9464", {"Host": "10.0.0.5:9464"}, 403),
    # a token: bearer (as /status) or Basic with the token as password, any host name
    ("T", "0.0.0.0:9464", {"Host": "node-1:9464"}, 401),
    ("T", "0.0.0.0:9464", {"Authorization": f"Bearer {TOKEN}"}, None),
    ("T", "0.0.0.0:9464", {"Authorization": basic("oncall", TOKEN)}, None),
    ("T", "0.0.0.0:9464", {"Authorization": basic("", TOKEN)}, None),
    ("T", "0.0.0.0:9464", {"Authorization": "Bearer wrong"}, 401),
    ("T", "0.0.0.0:9464", {"Authorization": basic(TOKEN, "x")}, 401),
    ("T", "0.0.0.0:9464", {"Authorization": "Basic !!notbase64"}, 401),
    ("T", "127.0.0.1:9464", {"Host": "127.0.0.1:9464"}, 401),  # loopback does not waive a token
])
def test_refusal(token, listen, headers, status):
    verdict = access(TOKEN if token else None, listen).refusal(headers)
    assert (verdict.status if verdict else None) == status


def test_refusals_say_what_to_do():
    off = access(None, "0.0.0.0:9464").refusal({"Host": "127.0.0.1:9464"})
    assert off is not None and "agent.auth_token" in off.reason and "0.0.0.0:9464" in off.reason
    assert not off.challenge
    need = access(TOKEN, "0.0.0.0:9464").refusal({})
    assert need is not None and need.challenge and "token as password" in need.reason


def test_basic_user_name_is_only_a_default():
    a = access(TOKEN, "0.0.0.0:9464")
    assert a.user({"Authorization": basic("maria", TOKEN)}) == "maria"
    assert a.user({"Authorization": f"Bearer {TOKEN}"}) == ""
    assert a.user({}) == ""


def test_form_posts_need_this_pages_token_and_origin():
    a = access(None, "127.0.0.1:9464")
    same = {"Host": "127.0.0.1:9464", "Origin": "http://127.0.0.1:9464", "Sec-Fetch-Site": "same-origin"}
    token = a.csrf_token()
    assert a.post_refusal(same, "http", token) is None
    assert a.post_refusal({"Host": "127.0.0.1:9464"}, "http", token) is None  # older clients
    # another site, another origin (a page on another port is same-site, not same-origin)
    for headers in ({**same, "Sec-Fetch-Site": "cross-site"}, {**same, "Sec-Fetch-Site": "same-site"},
                    {**same, "Origin": "http://127.0.0.1:8000"}, {**same, "Origin": "null"}):
        verdict = a.post_refusal(headers, "http", token)
        assert verdict is not None and verdict.status == 403, headers
    # a token this process did not issue, a forged one, an old one
    assert a.post_refusal(same, "http", access(None, "127.0.0.1:9464").csrf_token()) is not None
    assert a.post_refusal(same, "http", "") is not None
    assert a.post_refusal(same, "http", token.split(".")[0] + ".0000") is not None
    a.clock[0] += CSRF_LIFETIME + 1  # type: ignore[attr-defined]
    old = a.post_refusal(same, "http", token)
    assert old is not None and "12 hours" in old.reason
