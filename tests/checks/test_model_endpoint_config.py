"""Bad model_endpoint / openmetrics configs: every problem named by its path, in words."""

from __future__ import annotations

import pytest

from agent.config import parse_config
from agent.errors import ConfigError

pytestmark = pytest.mark.unit

ME = "{type: model_endpoint, name: a, "
OM = "{type: openmetrics, name: a, url: 'http://x', "
CASES = [
    (ME + "url: 'http://x:1', protocol: v2}",
     "checks[0]: protocol 'v2' needs `model` (the model's name); none found"),
    (ME + "url: 'http://x:1', protocol: grpc, model: m}",
     "checks[0].protocol: input should be 'v2', 'torchserve', 'tfserving', 'kserve-v1', "
     "'mlflow' or 'http', found a string 'grpc'"),
    (ME + "url: 'ftp://x', protocol: http}",
     "checks[0].url: expected an http:// or https:// URL with a host, found 'ftp://x'"),
    (ME + "url: 'http://u:pw-in-url@x', protocol: http}",
     "checks[0].url: put credentials in `username`/`password` or `bearer_token`, not in the URL "
     "(URLs appear in tags and messages); found some"),
    (ME + "url: 'http://x', protocol: http, bearer_token: abcd, username: u, password: pppp}",
     "checks[0]: use either `bearer_token` or `username`/`password`; found both"),
    (ME + "url: 'http://x', protocol: http, password: pppp}",
     "checks[0]: basic auth needs both `username` and `password`; found only one"),
    (ME + "url: 'http://x', protocol: http, headers: {Authorization: x}}",
     "checks[0].headers: set `bearer_token` or `username`/`password` instead of an Authorization "
     "header, so the secret is never logged; found one"),
    (ME + "url: 'http://x', protocol: http, canary: {request: {}}}",
     "checks[0]: protocol http has no inference route: set `canary.path` (none found)"),
    (ME + "url: 'http://x', protocol: v2, model: m, expected_status: [204]}",
     "checks[0]: `expected_status`/`expect` apply to protocol http only (use `canary.expect` for "
     "inference answers); found them with protocol 'v2'"),
    (ME + "url: 'http://x', protocol: v2, model: m, management_token: abcdef}",
     "checks[0]: `management_url`/`management_token` apply to protocol torchserve only; found "
     "them with protocol 'v2'"),
    (ME + "url: 'http://x', protocol: v2, model: m, request_timeout: fast}",
     "checks[0].request_timeout: expected a duration like '15s', '5m' or '1h30m', found 'fast'"),
    (ME + "url: 'http://x', protocol: v2, model: m, canary: {request: {}, path: infer}}",
     "checks[0].canary.path: expected a path starting with '/', found 'infer'"),
    (OM + "metrics: [{name: a, regex: b}]}",
     "checks[0].metrics[0]: give exactly one of `name` or `regex`; found both"),
    (OM + "metrics: [{regex: '('}]}",
     "checks[0].metrics[0].regex: invalid regex '(': missing ), unterminated subpattern at "
     "position 0, found a string '('"),
    (OM + "metrics: [{name: a, rename: 'Bad-Name'}]}",
     "checks[0].metrics[0].rename: rename 'Bad-Name' must be lower-case words joined by dots, "
     "like 'triton.inference_count', found a string 'Bad-Name'"),
    (OM + "metrics: [{name: a, rename: scrape.duration}]}",
     "checks[0].metrics[0].rename: rename 'scrape.duration' collides with the check's own "
     "metrics (names starting with scrape, up, errors), found a string 'scrape.duration'"),
    (OM + "metrics: []}", "checks[0].metrics: list at least one metric to forward; found none"),
]


@pytest.mark.parametrize(("entry", "message"), CASES, ids=[str(i) for i in range(len(CASES))])
def test_bad_config_message(entry, message):
    with pytest.raises(ConfigError) as info:
        parse_config("checks:\n  - " + entry, source="t.yaml")
    assert info.value.problems == [message]
    assert "pw-in-url" not in str(info.value)


def test_typo_suggests_the_option():
    with pytest.raises(ConfigError) as info:
        parse_config("checks:\n  - " + ME + "url: 'http://x', protocol: torchserve, model: m, "
                     "managment_url: 'http://x:8081'}")
    assert info.value.problems[0].startswith(
        "checks[0].managment_url: unknown key (did you mean 'management_url'?)")


def test_secrets_are_secret_str_and_registered():
    from agent.secrets import scrub

    config = parse_config("checks:\n  - " + ME + "url: 'http://x', protocol: torchserve, "
                          "model: m, bearer_token: inf-secret-1, management_token: mgmt-secret-2}")
    check = config.checks[0]
    assert "inf-secret-1" not in repr(check) and "mgmt-secret-2" not in repr(check)
    assert scrub("a inf-secret-1 b mgmt-secret-2") == "a ******** b ********"
    # the timeout is capped by the instance's deadline
    assert check.probe_deadline == 5.0
