"""Create or update dashboards through Datadog's and Grafana's HTTP APIs, idempotently.

Datadog dashboards are matched by title (an existing one is updated in place, never
duplicated); Grafana dashboards by their stable ``uid`` with ``overwrite``. Keys come
from the environment (``DD_API_KEY``, ``DD_APP_KEY``, ``DD_SITE``; ``GRAFANA_TOKEN``) and
never appear in output.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from agent.errors import ExportError
from agent.secrets import register_secret, scrub

__all__ = ["push_datadog", "push_grafana", "datadog_base_url"]


def datadog_base_url(site: str | None) -> str:
    site = (site or "datadoghq.com").strip().removeprefix("https://").rstrip("/")
    return f"https://api.{site}" if not site.startswith("api.") else f"https://{site}"


def _call(method: str, url: str, headers: Mapping[str, str], body: Any = None,
          timeout: float = 30.0, auth_hint: str = "check the API and application keys") -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - operator-given URL
            raw = resp.read()
    except urllib.error.HTTPError as exc:
        detail = scrub(exc.read()[:500].decode(errors="replace"))
        hint = f" ({auth_hint})" if exc.code in (401, 403) else ""
        raise ExportError(f"{method} {url} answered HTTP {exc.code}{hint}: {detail}",
                          retryable=exc.code >= 500 or exc.code == 429) from None
    except (urllib.error.URLError, OSError) as exc:
        raise ExportError(f"{method} {url} failed: {getattr(exc, 'reason', exc)}", retryable=True) from None
    return json.loads(raw) if raw else None


def push_datadog(dashboards: Mapping[str, dict[str, Any]], *, api_key: str, app_key: str,
                 base_url: str) -> list[tuple[str, str, str]]:
    """Create or update each dashboard; returns ``(title, 'created'|'updated', id)`` rows."""
    register_secret(api_key)
    register_secret(app_key)
    headers = {"DD-API-KEY": api_key, "DD-APPLICATION-KEY": app_key}
    existing = _call("GET", f"{base_url}/api/v1/dashboard", headers) or {}
    by_title = {d.get("title"): d.get("id") for d in existing.get("dashboards", [])}
    done = []
    for doc in dashboards.values():
        dash_id = by_title.get(doc["title"])
        if dash_id:
            _call("PUT", f"{base_url}/api/v1/dashboard/{dash_id}", headers, doc)
            done.append((doc["title"], "updated", str(dash_id)))
        else:
            created = _call("POST", f"{base_url}/api/v1/dashboard", headers, doc) or {}
            done.append((doc["title"], "created", str(created.get("id", ""))))
    return done


def push_grafana(dashboards: Mapping[str, dict[str, Any]], *, url: str,
                 token: str | None = None, folder_uid: str | None = None) -> list[tuple[str, str, str]]:
    """Create or update each dashboard by uid; returns ``(title, status, uid)`` rows."""
    headers = {}
    if token:
        register_secret(token)
        headers["Authorization"] = f"Bearer {token}"
    done = []
    for doc in dashboards.values():
        body: dict[str, Any] = {"dashboard": {**doc, "id": None}, "overwrite": True,
                                "message": "mlwarden dashboards push"}
        if folder_uid:
            body["folderUid"] = folder_uid
        out = _call("POST", url.rstrip("/") + "/api/dashboards/db", headers, body,
                    auth_hint="check GRAFANA_TOKEN: a service account token with the Editor role") or {}
        done.append((doc["title"], str(out.get("status", "success")), str(out.get("uid", doc["uid"]))))
    return done
