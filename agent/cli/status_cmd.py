"""``mlwarden status``: read a running agent's /status and print it the way
``datadog-agent status`` does: a header, one readable line per check and per component.

Times are said as ages ("12s ago", "in 3s") measured on the agent's own clock (its
``started_at`` plus ``uptime_seconds``), so a skewed clock where the command runs does not
distort them. The token comes from ``--token``, ``$MLWARDEN_AUTH_TOKEN`` or, failing those,
the config's ``agent.auth_token`` (the same file the agent runs with).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from datetime import datetime
from typing import Any

from agent.cli import exitcodes
from agent.cli.common import add_config_arg, config_from_args, config_origin

__all__ = ["fetch_status", "render"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="show a running agent's checks and components",
                       description="Read a running agent's /status and print one readable line "
                       "per check and component. Exit 0, or 1 when no agent answers.")
    add_config_arg(p)
    p.add_argument("--url", help="agent base URL (default: from agent.listen in the config)")
    p.add_argument("--json", action="store_true", help="print the raw JSON")
    p.add_argument("--token", default=os.environ.get("MLWARDEN_AUTH_TOKEN"),
                   help="bearer token when the agent requires one (default: $MLWARDEN_AUTH_TOKEN, "
                   "else agent.auth_token from the config)")
    p.set_defaults(func=run)


def fetch_status(url: str, token: str | None = None, timeout: float = 5.0) -> dict[str, Any]:
    req = urllib.request.Request(url.rstrip("/") + "/status")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - operator-given URL
        return json.loads(resp.read())


def run(args: argparse.Namespace) -> int:
    url, token = args.url, args.token
    if not url or (not token and args.config):
        config = config_from_args(args)
        if not url:
            host, _, port = config.agent.listen.rpartition(":")
            host = "127.0.0.1" if host in ("0.0.0.0", "") else host  # noqa: S104 - where to connect
            url = f"http://{'[::1]' if host == '[::]' else host}:{port}"
        if not token and config.agent.auth_token is not None:
            token = config.agent.auth_token.get_secret_value()
    try:
        doc = fetch_status(url, token)
    except urllib.error.HTTPError as exc:
        if exc.code == 401:
            print(f"mlwarden: {url}/status wants a bearer token: pass --token, set "
                  "$MLWARDEN_AUTH_TOKEN, or give the agent's config with -c (its agent.auth_token)"
                  f"{'; the token given was refused' if token else ''}", file=sys.stderr)
        else:
            print(f"mlwarden: {url}/status answered HTTP {exc.code}", file=sys.stderr)
        return exitcodes.FAILED
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        where = "" if args.url else f" (agent.listen of {config_origin(args)})"
        print(f"mlwarden: no agent answered at {url}{where}: {reason}; is `mlwarden run` running?",
              file=sys.stderr)
        return exitcodes.FAILED
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print(render(doc))
    return exitcodes.OK


# -- rendering -------------------------------------------------------------------------------
def render(doc: dict[str, Any]) -> str:
    """The whole page as text."""
    agent = doc.get("agent", {})
    now = float(agent.get("started_at") or 0) + float(agent.get("uptime_seconds") or 0)
    out = [f"mlwarden {agent.get('version')} on {agent.get('hostname')} "
           f"(pid {agent.get('pid')}), up {_span(agent.get('uptime_seconds') or 0)}"]
    files = ", ".join(agent.get("rule_files") or []) or "no rule_files"
    rules = agent.get("rules")
    out.append(f"  config     {agent.get('config')}"
               + (f"; {rules} rules ({files})" if rules is not None else ""))
    out.append(f"  reload     {_reload(agent, now)}")
    if agent.get("listen"):
        out.append(f"  listening  http://{agent['listen']}")
    pipe = doc.get("pipeline", {})
    out.append(f"  pipeline   {pipe.get('depth')} of {pipe.get('capacity')} queued, "
               f"{pipe.get('processed')} processed, {pipe.get('shed')} shed")
    checks = doc.get("checks") or []
    out += ["", "Checks", "======"]
    width = max((len(f"{c['name']} [{c['type']}]") for c in checks), default=0) + 2
    for c in checks:
        out += _check(c, now, width)
    if not checks:
        out.append("  (no check instances)")
    components = doc.get("components") or {}
    out += ["", "Components", "=========="]
    width = max((len(n) for n in components), default=0) + 2
    for name, comp in components.items():
        out += _component(name, comp, now, width)
        if isinstance(comp, dict) and isinstance(comp.get("custom_metrics"), dict):
            out += ["  " + " " * width + line for line in custom_metrics_lines(comp["custom_metrics"])]
    return "\n".join(out)


def _reload(agent: dict[str, Any], now: float) -> str:
    last = agent.get("last_reload") or {}
    error = last.get("error") if last else agent.get("last_reload_error")
    reloads = agent.get("reloads") or 0
    if error:
        first = str(error).strip().splitlines()
        detail = " ".join(line.strip() for line in first[:3])
        return (f"LAST RELOAD REJECTED {_ago(last.get('at'), now)}; the config loaded "
                f"{_ago(last.get('success_at'), now)} goes on: {detail}")
    if not reloads:
        return f"none since start (config loaded {_ago(last.get('success_at'), now)})"
    return f"ok, {_ago(last.get('success_at'), now)} ({reloads} reload{'s' if reloads != 1 else ''})"


def _check(c: dict[str, Any], now: float, width: int) -> list[str]:
    label = f"{c['name']} [{c['type']}]"
    status = c.get("status", "?")
    parts = []
    if c.get("running"):
        parts.append("running now")
    last = _parse_iso(c.get("last_run"))
    if last is not None:
        took = c.get("last_duration")
        parts.append(f"ran {_ago(last, now)}" + (f" in {_dur(took)}" if took is not None else ""))
    elif not c.get("running"):
        parts.append("not run yet")
    nxt = _parse_iso(c.get("next_run"))
    if nxt is not None:
        parts.append(f"next {_until(nxt, now)}")
    if c.get("paused_reason"):
        parts.append(f"paused: {c['paused_reason']}")
    fails = c.get("consecutive_failures") or 0
    parts.append(f"{c.get('runs', 0)} runs, {c.get('failures', 0)} failed"
                 + (f" ({fails} in a row)" if fails else ""))
    for key, what in (("missed", "missed"), ("skipped_overlap", "skipped (still running)")):
        if c.get(key):
            parts.append(f"{c[key]} {what}")
    lines = [f"  {label.ljust(width, '.')} {status:<8} " + ", ".join(parts)]
    if c.get("message"):
        lines.append(f"  {'':{width}} {'':8} {c['message'][:160]}")
    if c.get("error") and c.get("error") not in (c.get("message") or ""):
        lines.append(f"  {'':{width}} {'':8} error: {c['error']}")
    for warning in c.get("warnings") or []:
        lines.append(f"  {'':{width}} {'':8} warning: {warning}")
    return lines


def _component(name: str, comp: Any, now: float, width: int) -> list[str]:
    if not isinstance(comp, dict):
        return [f"  {name.ljust(width, '.')} {comp}"]
    flat = [(k, v) for k, v in comp.items() if not isinstance(v, dict)]
    nested = [(k, v) for k, v in comp.items()
              if isinstance(v, dict) and v and k != "custom_metrics"]  # that one: its own lines
    lines = [f"  {name.ljust(width, '.')} " + _pairs(flat, now)]
    for key, value in nested:
        if all(isinstance(v, dict) for v in value.values()):  # e.g. receivers by name
            for sub, inner in value.items():
                lines.append(f"  {'':{width}} {key[:-1] if key.endswith('s') else key} {sub}: "
                             + _pairs(list(inner.items()), now))
        else:
            lines.append(f"  {'':{width}} {_words(key)}: " + _pairs(list(value.items()), now))
    return lines


def _pairs(items: list[tuple[str, Any]], now: float) -> str:
    shown = []
    for key, value in items:
        text = _value(key, value, now)
        if text is not None:
            if key.endswith("_seconds") and isinstance(value, (int, float)):
                key = key.removesuffix("_seconds")  # "interval 15s", not "interval seconds 15s"
            shown.append(f"{_words(key)} {text}")
    return ", ".join(shown) or "-"


def _value(key: str, value: Any, now: float) -> str | None:
    if value is None or value == [] or value == {}:
        return None
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        if _is_time(key) and value > 1e9:
            return _ago(value, now)
        if key.endswith(("_duration", "_seconds")) or key in ("duration",):
            return _dur(float(value))
        return f"{value:g}" if isinstance(value, float) else str(value)
    if isinstance(value, (list, tuple)):
        if len(value) > 5:
            return f"{len(value)} ({', '.join(str(v) for v in value[:5])}, ...)"
        return ", ".join(str(v) if not isinstance(v, dict) else json.dumps(v) for v in value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {v}" for k, v in value.items()) + "}"
    return str(value)


def _is_time(key: str) -> bool:
    return key.startswith("last_") or key.endswith(("_at", "_since")) or key in ("since",)


def _words(key: str) -> str:
    return key.replace("_", " ")


def _parse_iso(text: Any) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(str(text)).timestamp()
    except ValueError:
        return None


def _span(seconds: float) -> str:
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m"
    return f"{hours // 24}d{hours % 24}h"


def _ago(ts: Any, now: float) -> str:
    if ts is None:
        return "never"
    delta = now - float(ts)
    return f"{_span(delta)} ago" if delta >= 0 else f"in {_span(-delta)}"


def _until(ts: float, now: float) -> str:
    delta = ts - now
    return f"in {_span(delta)}" if delta >= 0 else f"{_span(-delta)} overdue"


def _dur(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.1f}ms" if seconds < 0.01 else f"{seconds * 1000:.0f}ms"
    return f"{seconds:.3g}s" if seconds < 60 else _span(seconds)


def custom_metrics_lines(cm: dict[str, Any]) -> list[str]:
    """The Datadog exporter's custom-metrics count, top contributors and budget decisions."""
    budget = cm.get("budget")
    head = f"  custom metrics (last hour): {cm.get('count')}"
    head += f" of a budget of {budget}" if budget is not None else " (no budget set)"
    lines = [head]
    top = ", ".join(f"{t['metric']} {t['count']}" for t in cm.get("top", []))
    if top:
        lines.append(f"  top contributors: {top}")
    for d in cm.get("decisions", []):
        if d.get("action") == "drop_tag":
            lines.append(f"  decision: dropped tag `{d.get('tag')}` from {d.get('metric')} "
                         f"({d.get('series_before')} -> {d.get('series_after')} series)")
        else:
            held = (cm.get("held_back_points") or {}).get(d.get("metric"), 0)
            lines.append(f"  decision: holding back new series of {d.get('metric')} "
                         f"({held} points held back so far)")
    return lines
