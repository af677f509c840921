"""The Airflow REST API as the check sees it: one base URL, one API version, one login.

Picks `/api/v2` or `/api/v1` (``api_version: auto`` asks ``/api/v2/version`` first), adds
the right credentials, renews an Airflow 3 token on 401/403, follows ``limit``/``offset``
pagination to ``total_entries`` and turns every transport, status and body problem into a
:class:`AirflowApiError` that names the request. All requests go through the agent's shared
aiohttp session and a per-instance concurrency limit.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import yarl

from agent.errors import CheckError
from checks.airflow.auth import Auth, BasicAuth, PasswordJwt, StaticBearer
from checks.airflow.config import AirflowConfig

__all__ = ["AirflowApiError", "AirflowClient", "seg"]

Params = Sequence[tuple[str, Any]]


class AirflowApiError(CheckError):
    """A request to the Airflow API failed; ``status`` is the HTTP status (None: no answer)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


def seg(value: str) -> str:
    """One URL path segment (run ids hold ``:`` and ``+``)."""
    return quote(value, safe="")


def ssl_context(cfg: AirflowConfig) -> ssl.SSLContext | bool:
    """What aiohttp's ``ssl=`` takes for these options (True: the default context)."""
    if not cfg.tls_verify and cfg.client_cert is None:
        return False
    if not (cfg.ca_bundle or cfg.client_cert):
        return True
    try:
        ctx = ssl.create_default_context(cafile=str(cfg.ca_bundle) if cfg.ca_bundle else None)
        if not cfg.tls_verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if cfg.client_cert:
            ctx.load_cert_chain(str(cfg.client_cert),
                                str(cfg.client_key) if cfg.client_key else None)
    except (OSError, ssl.SSLError) as exc:
        files = ", ".join(f"{k}={v}" for k, v in (("ca_bundle", cfg.ca_bundle),
                                                  ("client_cert", cfg.client_cert),
                                                  ("client_key", cfg.client_key)) if v)
        raise CheckError(f"cannot load the TLS files of this check ({files}): "
                         f"{exc.strerror or exc}") from None
    return ctx


class AirflowClient:
    """Talks to one Airflow deployment; keeps its login (token) between polls."""

    def __init__(self, config: AirflowConfig, http: Callable[[], aiohttp.ClientSession],
                 clock: Callable[[], float]) -> None:
        self.config = config
        self._http = http
        self._clock = clock
        self._ssl: ssl.SSLContext | bool | None = None  # built at connect: errors reach run()
        self.version: str | None = None if config.api_version == "auto" else config.api_version
        self.airflow_version: str | None = None
        self._auth: Auth | None = None
        self._limit = asyncio.Semaphore(config.concurrency)
        self.requests = 0  # requests sent, for bounded-work tests and the debug log

    @property
    def prefix(self) -> str:
        return f"/api/v{self.version}"

    # -- set-up ----------------------------------------------------------------------
    async def connect(self) -> None:
        """Learn the API version (once) and set up authentication."""
        if self._ssl is None:
            self._ssl = ssl_context(self.config)
        if self.version is None or self.airflow_version is None:
            await self._detect()
        if self._auth is None:
            self._auth = self._make_auth()
            await self._auth.headers()  # log in now: a refused password is a connect failure

    async def _detect(self) -> None:
        order = ["2", "1"] if self.version is None else [self.version]
        tried = []
        for version in order:
            url = f"{self.config.url}/api/v{version}/version"
            headers = await self._basic_headers() if version == "1" else {}
            status, body = await self._send("GET", url, headers=headers)
            tried.append(f"{url} -> {status}")
            if status == 200 and isinstance(body, dict) and "version" in body:
                self.version = version
                self.airflow_version = str(body["version"])
                return
            if status in (401, 403) and version == "1":
                raise AirflowApiError(
                    f"GET {url}: {status}: Airflow refused the credentials of this check "
                    "(is airflow.api.auth.backend.basic_auth in [api] auth_backends?)", status)
        raise AirflowApiError(
            "cannot find the Airflow REST API at this URL (" + "; ".join(tried) + "); "
            "is `url` the webserver / api-server base URL?")

    async def _basic_headers(self) -> dict[str, str]:
        if self.config.token is not None:
            return await StaticBearer(self.config.token.get_secret_value()).headers()
        assert self.config.username and self.config.password
        password = self.config.password.get_secret_value()
        return await BasicAuth(self.config.username, password).headers()

    def _make_auth(self) -> Auth:
        cfg = self.config
        if cfg.token is not None:
            return StaticBearer(cfg.token.get_secret_value())
        assert cfg.username and cfg.password
        if self.version == "1":
            return BasicAuth(cfg.username, cfg.password.get_secret_value())
        return PasswordJwt(cfg.username, cfg.password.get_secret_value(), self._fetch_token,
                           self._clock)

    async def _fetch_token(self, username: str, password: str) -> Any:
        url = f"{self.config.url}/auth/token"
        status, body = await self._send("POST", url, json_body={"username": username,
                                                                "password": password})
        if status in (200, 201):
            return body
        if status in (400, 401, 403):
            raise AirflowApiError(f"POST {url}: {status}: Airflow refused the username or password "
                                  f"of this check ({_detail(body)})", status)
        raise AirflowApiError(f"POST {url}: unexpected status {status} ({_detail(body)})", status)

    # -- requests --------------------------------------------------------------------
    async def get(self, path: str, params: Params = (), *, api: bool = True,
                  ok: tuple[int, ...] = (200,)) -> Any:
        """GET a JSON document; renews an Airflow 3 token once when it is refused.

        ``ok``: statuses whose JSON body is returned (a health report comes with 503 from
        some proxies and deployments; its body still says which component is down).
        """
        if self._auth is None:
            await self.connect()
        assert self._auth is not None
        url = (f"{self.config.url}{self.prefix}{path}" if api else f"{self.config.url}{path}")
        if params:
            url += "?" + urlencode(list(params), doseq=True)
        status, body = await self._send("GET", url, headers=await self._auth.headers())
        if status in (401, 403) and self._auth.renewable:
            await self._auth.renew()
            status, body = await self._send("GET", url, headers=await self._auth.headers())
        if status in ok and (status == 200 or isinstance(body, dict)):
            return body
        if status in (401, 403):
            what = ("the token was refused; a `token` given in the config cannot be renewed"
                    if self.config.token is not None else
                    "the credentials were refused, or the user lacks permission to read this")
            raise AirflowApiError(f"GET {_shown(url)}: {status}: {what} ({_detail(body)})", status)
        raise AirflowApiError(f"GET {_shown(url)}: unexpected status {status} ({_detail(body)})",
                              status)

    async def get_page(self, path: str, key: str, params: Params, offset: int,
                       limit: int) -> tuple[list[dict[str, Any]], int | None]:
        """One page: its items under ``key`` and ``total_entries`` (None when absent)."""
        body = await self.get(path, [*params, ("limit", limit), ("offset", offset)])
        items = body.get(key) if isinstance(body, dict) else None
        if not isinstance(items, list):
            keys = sorted(body) if isinstance(body, dict) else type(body).__name__
            raise AirflowApiError(f"GET {path}: the answer has no `{key}` list (keys: {keys})")
        total = body.get("total_entries")
        total = total if isinstance(total, int) else None
        return [i for i in items if isinstance(i, dict)], total

    async def get_all(self, path: str, key: str, params: Params = (), *,
                      max_items: int | None = None) -> list[dict[str, Any]]:
        """Every item of a paginated list, to the end (or ``max_items``).

        The first page gives ``total_entries``; the remaining pages are fetched concurrently
        within the client's concurrency limit. A page shorter than asked ends the listing
        even when ``total_entries`` said more (rows can vanish between pages).
        """
        limit = self.config.page_size
        first, total = await self.get_page(path, key, params, 0, limit)
        items = list(first)
        cap = max_items if max_items is not None else (1 << 62)
        if len(first) < limit or len(items) >= cap:
            return items[:cap]
        if total is None:  # no total: walk sequentially until a short page
            offset = limit
            while len(items) < cap:
                page, _ = await self.get_page(path, key, params, offset, limit)
                items.extend(page)
                if len(page) < limit:
                    break
                offset += limit
            return items[:cap]
        offsets = list(range(limit, min(total, cap), limit))
        pages = await asyncio.gather(*(self.get_page(path, key, params, o, limit) for o in offsets))
        for page, _ in pages:
            items.extend(page)
        return items[:cap]

    async def _send(self, method: str, url: str, *, headers: dict[str, str] | None = None,
                    json_body: Any = None) -> tuple[int, Any]:
        async with self._limit:
            self.requests += 1
            try:
                async with self._http().request(
                    method, yarl.URL(url, encoded=True), headers=headers, json=json_body,
                    ssl=True if self._ssl is None else self._ssl, allow_redirects=False,
                    timeout=aiohttp.ClientTimeout(total=self.config.deadline),
                ) as resp:
                    text = await resp.text(errors="replace")
                    status = resp.status
            except asyncio.TimeoutError:
                raise AirflowApiError(f"{method} {_shown(url)}: no answer within "
                                      f"{self.config.deadline:g}s") from None
            except aiohttp.ClientError as exc:
                raise AirflowApiError(f"{method} {_shown(url)}: cannot reach Airflow: "
                                      f"{type(exc).__name__}: {exc}") from None
        if not text:
            return status, None
        try:
            return status, json.loads(text)
        except ValueError:
            if status == 200:
                raise AirflowApiError(f"{method} {_shown(url)}: the answer is not JSON: "
                                      f"{text[:120]!r}", status) from None
            return status, text[:200]


def _shown(url: str) -> str:
    return url if len(url) <= 200 else url[:200] + "..."


def _detail(body: Any) -> str:
    if isinstance(body, dict):
        detail = body.get("detail") or body.get("title") or body
        return str(detail)[:200]
    return str(body)[:200] if body else "empty body"
