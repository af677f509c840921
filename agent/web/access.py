"""Who may open the status page, and which form posts to believe.

The page shows what /status shows and can mute alerts, so it follows /status's token rule
and adds what a browser needs:

- ``agent.auth_token`` set: a request carries ``Authorization: Bearer <token>`` (as for
  /status) or HTTP Basic with the token as password (any user name), which a browser asks
  for on its own; no cookie, no login page to get wrong.
- no token, loopback bind: open to the local user, but only under a loopback host name, so
  a web page that rebinds its own DNS name to 127.0.0.1 cannot read or post to it.
- no token, any other bind: refused. /status only warns about that; the page, which can
  silence alerts, is never served unauthenticated to the network.

Browsers send credentials with cross-site requests, so a form post must also come from the
page itself: ``Sec-Fetch-Site`` (when sent) is ``same-origin``, ``Origin`` (when sent) is
this host, and the form's CSRF token was issued by this agent process (an HMAC of its issue
time under a per-process key: nothing to store, and a page from before a restart asks for a
reload instead of acting).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import secrets
import time
from collections.abc import Callable, Mapping

from pydantic import SecretStr

__all__ = ["PageAccess", "Verdict", "is_loopback"]

CSRF_LIFETIME = 12 * 3600.0
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost"})


def is_loopback(host: str) -> bool:
    """True for a name or address that only this machine can reach."""
    host = host.strip("[]").lower()
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host_name(host_header: str) -> str:
    """The name part of a Host header (``[::1]:9464`` -> ``::1``)."""
    if host_header.startswith("["):
        return host_header[1:].partition("]")[0]
    return host_header.rpartition(":")[0] if host_header.count(":") == 1 else host_header


class Verdict:
    """Why a request is refused: the HTTP status, a sentence for the user, and whether a
    browser should be asked for credentials."""

    def __init__(self, status: int, reason: str, challenge: bool = False) -> None:
        self.status = status
        self.reason = reason
        self.challenge = challenge


class PageAccess:
    """Decides on each page request; ``token`` and ``listen`` are read per request, so a
    reload that sets a token takes effect at once."""

    def __init__(self, token: Callable[[], SecretStr | None], listen: Callable[[], str],
                 clock: Callable[[], float] = time.time) -> None:
        self._token = token
        self._listen = listen
        self._clock = clock
        self._key = secrets.token_bytes(32)

    # -- reading -----------------------------------------------------------------------
    def refusal(self, headers: Mapping[str, str]) -> Verdict | None:
        """None when the request may see the page; otherwise why not."""
        token = self._token()
        listen = self._listen()
        if token is not None:
            if _credential_ok(headers.get("Authorization", ""), token.get_secret_value()):
                return None
            return Verdict(401, "This agent's page needs its token (agent.auth_token): sign in "
                           "with any user name and the token as password, or send "
                           "`Authorization: Bearer <token>`.", challenge=True)
        if not is_loopback(listen.rpartition(":")[0]):
            return Verdict(403, f"The status page is off: the agent listens on {listen}, which "
                           "other hosts can reach, and agent.auth_token is not set. Set "
                           "agent.auth_token, or listen on 127.0.0.1 and reach it through "
                           "`kubectl port-forward` or an SSH tunnel.")
        if not is_loopback(_host_name(headers.get("Host", ""))):
            return Verdict(403, "Without agent.auth_token the page answers only to loopback "
                           "host names (127.0.0.1, localhost, [::1]); open it through one of "
                           "them.")
        return None

    def user(self, headers: Mapping[str, str]) -> str:
        """The Basic-auth user name, a default for 'created by' (not an identity: anyone
        holding the token may type any name)."""
        scheme, _, value = headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return ""
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return ""
        return decoded.partition(":")[0][:100]

    # -- writing -----------------------------------------------------------------------
    def csrf_token(self) -> str:
        issued = str(int(self._clock()))
        return f"{issued}.{self._sign(issued)}"

    def post_refusal(self, headers: Mapping[str, str], scheme: str, csrf: str) -> Verdict | None:
        """None when a form post comes from this page; otherwise why it is refused."""
        site = headers.get("Sec-Fetch-Site")
        if site is not None and site != "same-origin":
            return Verdict(403, f"Refused a form post from another site (Sec-Fetch-Site: {site}).")
        origin = headers.get("Origin")
        if origin is not None and origin != f"{scheme}://{headers.get('Host', '')}":
            return Verdict(403, "Refused a form post from another origin.")
        issued, _, signature = csrf.partition(".")
        if not issued.isdigit() or not hmac.compare_digest(signature, self._sign(issued)):
            return Verdict(403, "This form was not issued by this agent (or by an earlier run "
                           "of it): reload the page and submit it again.")
        if self._clock() - int(issued) > CSRF_LIFETIME:
            return Verdict(403, "This form is more than 12 hours old: reload the page and "
                           "submit it again.")
        return None

    def _sign(self, issued: str) -> str:
        return hmac.new(self._key, f"csrf|{issued}".encode(), hashlib.sha256).hexdigest()[:32]


def _credential_ok(header: str, token: str) -> bool:
    scheme, _, value = header.partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer":
        given = value.strip()
    elif scheme == "basic":
        try:
            given = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")[2]
        except (binascii.Error, UnicodeDecodeError):
            return False
    else:
        return False
    return hmac.compare_digest(given.encode(), token.encode())
