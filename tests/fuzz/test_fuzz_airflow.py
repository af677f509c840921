"""Fuzzing the Airflow check with mutated recorded answers, end to end over HTTP.

The strict fake (tests/checks/airflow_fake.py) serves responses recorded from real Airflow
3.3.2 and 2.10.5; here every route's answer is mutated per example (a node of the JSON
replaced by a value of another type, out of range or NaN; the body cut short; a non-JSON
page; another status code), so the check's JSON reading meets what a broken proxy, an
upgraded Airflow or a half-written answer could send. The verdict must be a status with a
message, never "check crashed", and the pure parsing helpers must never raise.
"""

from __future__ import annotations

import asyncio
import copy
import json
import random
from typing import Any

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.check import CheckContext, MemoryState
from agent.errors import CheckError
from agent.samples import Status
from checks.airflow.auth import jwt_expiry
from checks.airflow.check import AirflowCheck
from checks.airflow.config import AirflowConfig
from checks.airflow.health import parse_health
from checks.airflow.import_errors import first_error_line
from checks.airflow.times import parse_ts
from tests.checks.airflow_fake import PASSWORD, USER, FakeAirflow
from tests.support.targets import load_fixture

pytestmark = pytest.mark.unit

T0 = 1_795_000_000.0
ODD_VALUES: list[Any] = [None, "", "garbage", "2026-13-45T99:00:00Z", -1, 0, 10**30, 1e308,
                         float("nan"), float("inf"), True, [], {}, [None], {"x": None},
                         "<!channel>", "0" * 300]


def mutate(doc: Any, rng: random.Random, edits: int) -> Any:
    """``doc`` with ``edits`` nodes (objects, lists, scalars) replaced or removed."""
    doc = json.loads(json.dumps(doc))
    for _ in range(edits):
        nodes: list[tuple[Any, Any]] = []  # (container, key)

        def walk(node: Any) -> None:
            if isinstance(node, dict):
                for k, v in node.items():
                    nodes.append((node, k))
                    walk(v)
            elif isinstance(node, list):
                for i, v in enumerate(node):
                    nodes.append((node, i))
                    walk(v)
        walk(doc)
        if not nodes:
            return copy.deepcopy(rng.choice(ODD_VALUES))
        parent, key = rng.choice(nodes)
        if isinstance(parent, dict) and rng.random() < 0.25:
            del parent[key]
        else:
            parent[key] = copy.deepcopy(rng.choice(ODD_VALUES))
    return doc


def fuzzing(handler: Any, seed: int, mode_weights: tuple[int, ...]) -> Any:
    """Wrap a route's handler so its answer is mutated, deterministically per seed and path."""
    async def wrapped(request: web.Request) -> web.StreamResponse:
        resp = await handler(request)
        rng = random.Random(f"{seed}:{request.path}")
        mode = rng.choices(["keep", "mutate", "cut", "html", "status"], weights=mode_weights)[0]
        body = resp.body if isinstance(resp, web.Response) else b""
        if mode == "keep" or not body:
            return resp
        if mode == "cut":
            return web.Response(body=body[: rng.randrange(len(body))], status=resp.status,
                                content_type="application/json")
        if mode == "html":
            return web.Response(text="<html><body>502 Bad Gateway</body></html>", status=200,
                                content_type="text/html")
        if mode == "status":
            return web.Response(body=body, status=rng.choice([201, 204, 301, 400, 404, 409, 500, 502]),
                                content_type="application/json")
        return web.json_response(mutate(json.loads(body), rng, rng.randint(1, 4)), status=resp.status)
    return wrapped


def scenario(major: str) -> FakeAirflow:
    fake = FakeAirflow(major, lambda: T0)
    fake.run("train_ranker", "r_failed", "failed", T0 - 60, T0 - 10)
    fake.ti("train_ranker", "r_failed", "train", "failed", try_number=3, duration=5.4)
    fake.ti("train_ranker", "r_failed", "publish", "upstream_failed")
    fake.run("etl_daily_features", "r_ok", "success", T0 - 50, T0 - 20)
    fake.run("train_ranker", "r_running", "running", T0 - 30, None)
    fake.ti("train_ranker", "r_running", "train", "up_for_retry", try_number=1)
    fake.queued_tis.append({"dag_id": "batch_score", "dag_run_id": "q", "task_id": "score",
                            "state": "queued", "queued_when": "2026-11-28T15:00:00Z"})
    fake.import_errors = load_fixture(f"airflow{major}", "import_errors_one.json")["import_errors"] \
        if major == "3" else []
    return fake


async def poll_once(major: str, seed: int, weights: tuple[int, ...]) -> tuple[Status, str, str | None]:
    fake = scenario(major)
    target = fake.target()
    if major == "3":  # detection falls back to v1 when a mutated v2 answer is not a version
        target.routes[("GET", "/api/v1/version")] = fake._not_found  # noqa: SLF001
    for key, handler in list(target.routes.items()):
        target.routes[key] = fuzzing(handler, seed, weights)
    async with target as t:
        config = AirflowConfig(type="airflow", name="af", url=t.url, username=USER, password=PASSWORD,
                               timeout=5)
        check = AirflowCheck(config, CheckContext(state=MemoryState(), clock=lambda: T0))
        try:
            first = await check.run()
            second = await check.run()  # the cursor and caches built from the first answer
        finally:
            await check.context.close()
        # a mutated dag_id or run_id leads the check to paths the fake does not serve (it
        # answers those 599): expected here, unlike in the unit tests
        t.unknown.clear()
    for result in (first, second):
        assert result.error != "exception", f"check crashed: {result.message}"
        assert result.status == Status.OK or result.message, result
    return second.status, second.message, second.error


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["3", "2"]), st.integers(0, 2**32),
       st.sampled_from([(1, 6, 1, 1, 1), (4, 2, 1, 0, 1)]))
def test_mutated_answers_give_a_status_never_a_crash(major: str, seed: int,
                                                     weights: tuple[int, ...]) -> None:
    asyncio.run(poll_once(major, seed, weights))


# Examples that crashed the check before their fixes ("check crashed: ..."), kept as
# regressions: a `dag_runs` item that is not a dict in the freshness lookup, a run without a
# `dag_run_id`, a queued task whose `dag_id` is a dict or a list, DAG `tags` that are a number.
@pytest.mark.parametrize("major,seed,weights", [
    ("3", 431, (4, 2, 1, 0, 1)), ("2", 40, (1, 6, 1, 1, 1)), ("2", 31, (4, 2, 1, 0, 1)),
    ("3", 44, (6, 1, 0, 0, 0)), ("3", 50, (6, 1, 0, 0, 0)), ("3", 62, (6, 1, 0, 0, 0)),
    ("3", 137, (1, 6, 1, 1, 1)),
])
def test_answers_that_crashed_the_check(major: str, seed: int, weights: tuple[int, ...]) -> None:
    asyncio.run(poll_once(major, seed, weights))


def test_unmutated_scenario_is_read_in_full() -> None:
    """The baseline the mutations start from: every route answers and the check reads it."""
    status, message, error = asyncio.run(poll_once("3", 0, (1, 0, 0, 0, 0)))
    assert error in (None, "CheckError"), message
    assert "answered" in message or "failed" in message or status != Status.UNKNOWN, message


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20)


@settings(max_examples=200, deadline=None)
@given(json_values | st.sampled_from(["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59",
                                      "2026-11-28T15:18:00.123456789Z", "2026-11-28", "T", "\x00"]))
def test_parsing_helpers_never_raise(value: Any) -> None:
    parse_ts(value)
    first_error_line(value)
    for body in (value, {"metadatabase": value}, {"scheduler": value},
                 {"scheduler": {"status": value, "latest_scheduler_heartbeat": value}}):
        try:
            parse_health(body, T0, 60.0)
        except CheckError as exc:  # a clear "not a health report" is fine
            assert "health" in str(exc)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80) | st.lists(st.text(max_size=30), min_size=3, max_size=3).map(".".join))
def test_jwt_expiry_never_raises(token: str) -> None:
    exp = jwt_expiry(token)
    assert exp is None or isinstance(exp, float)
