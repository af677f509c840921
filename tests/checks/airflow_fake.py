"""A strict stand-in for the Airflow REST API, built from responses recorded from real
Airflow 3.3.2 and 2.10.5 (tests/fixtures/airflow3, airflow2), for unit tests of edge cases a
real Airflow cannot be made to show on demand (token expiry, 403 on a revoked token, clock
edges, thousands of DAGs, a page that vanishes). The integration tests use the real thing.

Strict: it checks authentication as the real versions do (Airflow 3: no token 401, bad
token 403; Airflow 2: basic auth 401), accepts only query parameters the real endpoint
documents, and every undeclared route fails the test (tests/support/targets.py).
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from aiohttp import web

from checks.airflow.times import parse_ts
from tests.support.targets import Target, load_fixture

__all__ = ["FakeAirflow", "iso", "USER", "PASSWORD"]

USER, PASSWORD = "admin", "s3cret-pass"

# query parameters each list endpoint accepts (besides limit/offset)
ALLOWED = {
    "dags": {"order_by", "tags", "paused", "dag_id_pattern", "only_active", "exclude_stale"},
    "dagRuns": {"end_date_gte", "end_date_lte", "order_by", "state", "start_date_gte",
                "updated_at_gte"},
    "taskInstances": {"state"},
    "importErrors": {"order_by"},
}


def iso(epoch: float, major: str = "3") -> str:
    text = datetime.fromtimestamp(epoch, timezone.utc).isoformat()
    return text.replace("+00:00", "Z") if major == "3" else text


def jwt(exp: float) -> str:
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")
    return f"{part({'alg': 'HS512'})}.{part({'sub': USER, 'exp': int(exp)})}.{secrets.token_hex(8)}"


class FakeAirflow:
    def __init__(self, major: str, clock: Callable[[], float]) -> None:
        self.major = major
        self.clock = clock
        self.fx = f"airflow{major}"
        self.prefix = "/api/v2" if major == "3" else "/api/v1"
        self.health: Any = load_fixture(self.fx, "health.json")
        self.live_heartbeats = True  # heartbeats 1s before the clock; False: as recorded
        self.dags: list[dict[str, Any]] = load_fixture(self.fx, "dags.json")["dags"]
        self.runs: list[dict[str, Any]] = []
        self.tis: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.queued_tis: list[dict[str, Any]] = []
        self.import_errors: list[dict[str, Any]] = []
        self.tokens: set[str] = set()
        self.token_lifetime = 86400.0
        self.tokens_issued = 0
        self.refused = 0
        self.bad_params: list[str] = []
        self.calls: list[tuple[str, dict[str, list[str]]]] = []
        self.overrides: dict[str, Callable[[web.Request], Any]] = {}

    # -- data helpers ----------------------------------------------------------------------
    def run(self, dag_id: str, run_id: str, state: str, start: float | None,
            end: float | None, **extra: Any) -> dict[str, Any]:
        run = {"dag_id": dag_id, "dag_run_id": run_id, "state": state, "run_type": "manual",
               "start_date": iso(start, self.major) if start is not None else None,
               "end_date": iso(end, self.major) if end is not None else None, **extra}
        if self.major == "3":
            run["duration"] = (end - start) if start is not None and end is not None else None
        self.runs.append(run)
        return run

    def ti(self, dag_id: str, run_id: str, task_id: str, state: str, try_number: int = 1,
           duration: float | None = 1.5, **extra: Any) -> dict[str, Any]:
        ti = {"dag_id": dag_id, "dag_run_id": run_id, "task_id": task_id, "state": state,
              "try_number": try_number, "map_index": -1, "duration": duration, **extra}
        self.tis.setdefault((dag_id, run_id), []).append(ti)
        return ti

    def dag(self, dag_id: str, paused: bool = False, tags: tuple[str, ...] = (),
            due: float | None = None) -> dict[str, Any]:
        key = "next_dagrun_run_after" if self.major == "3" else "next_dagrun_create_after"
        dag = {"dag_id": dag_id, "is_paused": paused, "tags": [{"name": t} for t in tags],
               key: iso(due, self.major) if due is not None else None}
        self.dags.append(dag)
        return dag

    def revoke_tokens(self) -> None:
        self.tokens.clear()

    # -- HTTP ------------------------------------------------------------------------------
    def target(self) -> Target:
        p = self.prefix
        routes: dict[tuple[str, str], Any] = {
            ("GET", f"{p}/version"): self._fixture("version.json", auth=False),
            ("GET", f"{p}/monitor/health" if self.major == "3" else f"{p}/health"): self._health,
            ("GET", f"{p}/dags"): self._list("dags", lambda q: self.dags),
            ("GET", f"{p}/dags/~/dagRuns"): self._list("dagRuns", self._runs_query, "dag_runs"),
            ("GET", f"{p}/dags/~/dagRuns/~/taskInstances"):
                self._list("taskInstances", lambda q: [t for t in self.queued_tis
                                                       if t["state"] in q.get("state", [])],
                           "task_instances"),
            ("GET", f"{p}/importErrors"): self._list("importErrors", lambda q: self.import_errors,
                                                     "import_errors"),
        }
        if self.major == "3":
            routes[("POST", "/auth/token")] = self._token
        else:
            routes[("GET", "/api/v2/version")] = self._not_found
        for dag in self.dags:
            routes[("GET", f"{p}/dags/{dag['dag_id']}/dagRuns")] = self._list(
                "dagRuns", self._dag_runs_query(dag["dag_id"]), "dag_runs")
        for (dag_id, run_id), tis in self.tis.items():
            routes[("GET", f"{p}/dags/{dag_id}/dagRuns/{run_id}/taskInstances")] = self._list(
                "taskInstances", self._ti_query(tis), "task_instances")
        return Target(routes)

    async def _not_found(self, request: web.Request) -> web.Response:
        return web.json_response({"detail": "Not Found"}, status=404)

    def _authorized(self, request: web.Request) -> web.Response | None:
        header = request.headers.get("Authorization", "")
        if self.major == "3":
            if not header.startswith("Bearer "):
                self.refused += 1
                return web.json_response(load_fixture(self.fx, "error_401_no_auth.json"), status=401)
            if header.removeprefix("Bearer ") not in self.tokens:
                self.refused += 1
                return web.json_response(load_fixture(self.fx, "error_403_bad_token.json"), status=403)
            return None
        good = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        if header != good:
            self.refused += 1
            return web.json_response(load_fixture(self.fx, "error_401_no_auth.json"), status=401)
        return None

    async def _token(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body != {"username": USER, "password": PASSWORD}:
            return web.json_response(load_fixture(self.fx, "error_auth_token_bad_password.json"),
                                     status=401)
        token = jwt(self.clock() + self.token_lifetime)
        self.tokens.add(token)
        self.tokens_issued += 1
        return web.json_response({"access_token": token}, status=201)

    def _fixture(self, name: str, auth: bool = True) -> Any:
        async def handler(request: web.Request) -> web.Response:
            if auth and (refused := self._authorized(request)) is not None:
                return refused
            return web.json_response(load_fixture(self.fx, name))
        return handler

    async def _health(self, request: web.Request) -> web.Response:
        if self.live_heartbeats and isinstance(self.health, dict):
            for info in self.health.values():
                for key in info:
                    if key.endswith("heartbeat") and info[key]:
                        info[key] = iso(self.clock() - 1, self.major)
        return web.json_response(self.health)

    def _list(self, kind: str, items: Callable[[dict[str, list[str]]], list[dict[str, Any]]],
              key: str | None = None) -> Any:
        key = key or kind

        async def handler(request: web.Request) -> web.Response:
            if (override := self.overrides.get(request.path)) is not None:
                return override(request)
            if (refused := self._authorized(request)) is not None:
                return refused
            query: dict[str, list[str]] = {}
            for name, value in request.query.items():
                query.setdefault(name, []).append(value)
            self.calls.append((request.path, query))
            unknown = set(query) - ALLOWED[kind] - {"limit", "offset"}
            if unknown:
                self.bad_params.append(f"{request.path}: {sorted(unknown)}")
                return web.json_response({"detail": f"unknown parameters {sorted(unknown)}"}, status=400)
            limit = int(query.get("limit", ["100"])[0])
            offset = int(query.get("offset", ["0"])[0])
            everything = items(query)
            return web.json_response({key: everything[offset:offset + limit],
                                      "total_entries": len(everything)})
        return handler

    def _runs_query(self, q: dict[str, list[str]]) -> list[dict[str, Any]]:
        runs = [r for r in self.runs if r["state"] in q.get("state", [r["state"]])]
        if "end_date_gte" in q:
            floor = parse_ts(q["end_date_gte"][0])
            assert floor is not None, f"unparseable end_date_gte {q['end_date_gte']}"
            runs = [r for r in runs if r["end_date"] and (parse_ts(r["end_date"]) or 0) >= floor]
        if q.get("order_by") == ["end_date"]:
            runs.sort(key=lambda r: (parse_ts(r["end_date"]) or 0, r["dag_run_id"]))
        return runs

    def _dag_runs_query(self, dag_id: str) -> Callable[[dict[str, list[str]]], list[dict[str, Any]]]:
        def query(q: dict[str, list[str]]) -> list[dict[str, Any]]:
            runs = [r for r in self._runs_query(q) if r["dag_id"] == dag_id]
            if q.get("order_by") == ["-end_date"]:
                runs.sort(key=lambda r: parse_ts(r["end_date"]) or 0, reverse=True)
            return runs
        return query

    @staticmethod
    def _ti_query(tis: list[dict[str, Any]]) -> Callable[[dict[str, list[str]]], list[dict[str, Any]]]:
        return lambda q: [t for t in tis if t["state"] in q.get("state", [t["state"]])]
