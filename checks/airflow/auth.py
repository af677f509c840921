"""How the check proves who it is to Airflow, and how it stays logged in.

Airflow 2 (`/api/v1`) takes HTTP basic auth on every request. Airflow 3 (`/api/v2`) takes a
JWT from ``POST /auth/token``; the token expires (24 h by default) and Airflow 3 answers an
expired or malformed token with **403**, not 401, so the client renews on both and before
the ``exp`` claim is reached. A bearer token given directly cannot be renewed.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from agent.errors import CheckError
from agent.secrets import register_secret

__all__ = ["Auth", "BasicAuth", "StaticBearer", "PasswordJwt", "jwt_expiry", "RENEW_BEFORE"]

RENEW_BEFORE = 60.0  # seconds before `exp` a JWT is replaced


class Auth(Protocol):
    """Headers that authenticate one request; ``renew`` after the API refused them."""

    renewable: bool

    async def headers(self) -> dict[str, str]: ...

    async def renew(self) -> None: ...


class BasicAuth:
    """HTTP basic auth (Airflow 2 with `airflow.api.auth.backend.basic_auth`)."""

    renewable = False

    def __init__(self, username: str, password: str) -> None:
        raw = f"{username}:{password}".encode()
        self._header = "Basic " + base64.b64encode(raw).decode()
        register_secret(self._header.split(" ", 1)[1])

    async def headers(self) -> dict[str, str]:
        return {"Authorization": self._header}

    async def renew(self) -> None:
        return None


class StaticBearer:
    """A token the user gave; used as is until the API refuses it."""

    renewable = False

    def __init__(self, token: str) -> None:
        self._header = f"Bearer {token}"
        register_secret(token)

    async def headers(self) -> dict[str, str]:
        return {"Authorization": self._header}

    async def renew(self) -> None:
        return None


def jwt_expiry(token: str) -> float | None:
    """The ``exp`` claim of a JWT (not verified: only Airflow needs to trust it)."""
    try:
        payload = token.split(".")[1]
        payload += "=" * (-len(payload) % 4)
        exp = json.loads(base64.urlsafe_b64decode(payload)).get("exp")
    except (IndexError, ValueError, AttributeError):
        return None
    return float(exp) if isinstance(exp, (int, float)) else None


# (username, password) -> the token response's JSON body; raises CheckError
TokenFetcher = Callable[[str, str], Awaitable[Any]]


class PasswordJwt:
    """Airflow 3: a JWT from ``POST /auth/token``, renewed before expiry and on refusal."""

    renewable = True

    def __init__(self, username: str, password: str, fetch: TokenFetcher,
                 clock: Callable[[], float]) -> None:
        self._username = username
        self._password = password
        self._fetch = fetch
        self._clock = clock
        self._token: str | None = None
        self._expires: float | None = None
        self.issued = 0  # how many tokens this instance obtained (visible to tests)

    async def headers(self) -> dict[str, str]:
        if self._token is None or (
            self._expires is not None and self._clock() >= self._expires - RENEW_BEFORE
        ):
            await self.renew()
        return {"Authorization": f"Bearer {self._token}"}

    async def renew(self) -> None:
        body = await self._fetch(self._username, self._password)
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            keys = sorted(body) if isinstance(body, dict) else type(body).__name__
            raise CheckError(f"POST /auth/token answered without an access_token (keys: {keys})")
        register_secret(token)
        self._token = token
        self._expires = jwt_expiry(token)
        self.issued += 1
