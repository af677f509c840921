"""The status page's routes on the agent's own listener: ``/`` and everything under ``/ui/``.

Every handler is wrapped by one guard (:meth:`StatusPage._guarded`), so no route can forget
the access rule (:mod:`agent.web.access`) or the headers that keep the page to itself: a
Content-Security-Policy that runs only the page's own script, no framing, no referrer, no
caching. Reads snapshot the agent on the loop and do the store work and the rendering in a
worker thread; writes go to the same silence store as `mlwarden silence` and answer with a
redirect (post/redirect/get), so a reload never posts twice.
"""

from __future__ import annotations

import asyncio
import importlib.resources
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from aiohttp import web
from markupsafe import Markup

from agent.catalog import load_catalog
from agent.durations import parse_duration
from agent.secrets import scrub
from agent.web.access import PageAccess, Verdict
from agent.web.forms import SilenceForm, parse_silence_form
from agent.web.view import AckReader, Filters, Page, build_page, chart_url, take_snapshot

if TYPE_CHECKING:
    from jinja2 import Environment

    from agent.app import Agent

__all__ = ["StatusPage"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
REFRESH_SECONDS = 15
WINDOWS = ("15m", "1h", "6h", "24h", "7d", "30d")
MAX_CHART_SERIES = 12
MAX_SERIES_ROWS = 500
STATIC = {"page.js": "text/javascript", "page.css": "text/css"}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # not no-referrer: with it Chromium sends `Origin: null` on the page's own form posts
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class StatusPage:
    """The page of one agent; :meth:`routes` gives the server its route table."""

    def __init__(self, agent: Agent, listen: Callable[[], str]) -> None:
        self.agent = agent
        self.access = PageAccess(lambda: agent.config.agent.auth_token, listen)
        self._templates: Environment | None = None
        # who took which alert: the Slack actions' store, when slack_actions is set (agent.app)
        self.acks: AckReader | None = None

    @property
    def templates(self) -> Environment:
        """Built on the first request: an agent nobody opens the page of never loads Jinja2."""
        if self._templates is None:
            self._templates = _environment()
        return self._templates

    @staticmethod
    def owns(path: str) -> bool:
        """Whether ``path`` is the page's (it applies its own access rule to them)."""
        return path == "/" or path.startswith("/ui/")

    def routes(self) -> list[web.RouteDef]:
        g = self._guarded
        return [
            web.get("/", g(self.index)),
            web.post("/ui/silences", g(self.add_silence)),
            web.post("/ui/silences/expire", g(self.expire_silence)),
            web.get("/ui/chart", g(self.chart)),
            web.get("/ui/chart.png", g(self.chart_png)),
            web.get("/ui/series", g(self.series)),
            web.get("/ui/static/{name}", g(self.static)),
        ]

    # -- the guard ---------------------------------------------------------------------
    def _guarded(self, handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            verdict = self.access.refusal(request.headers)
            if verdict is not None:
                response: web.StreamResponse = self._refused(verdict)
            else:
                response = await handler(request)
            for key, value in HEADERS.items():
                response.headers.setdefault(key, value)
            return response

        return guarded

    def _refused(self, verdict: Verdict) -> web.Response:
        body = self.templates.get_template("refused.html").render(reason=verdict.reason)
        response = web.Response(text=body, status=verdict.status, content_type="text/html")
        if verdict.challenge:
            response.headers["WWW-Authenticate"] = 'Basic realm="mlwarden agent", charset="UTF-8"'
        return response

    # -- the page ------------------------------------------------------------------------
    async def index(self, request: web.Request, form: SilenceForm | None = None,
                    status: int = 200) -> web.Response:
        query = request.query
        if form is None:
            prefill = "\n".join(query.getall("silence", []))[:4000]
            form = SilenceForm(matchers_text=prefill, author=self.access.user(request.headers))
        notice = {k: query[k][:64] for k in ("added", "expired") if k in query}
        page = await self._page(Filters.from_query(query))
        query_text = _filter_query(page.filters)
        body = await asyncio.to_thread(
            self._render, "page.html", page=page, form=form, notice=notice,
            csrf=self.access.csrf_token(),
            # a form sent back with its errors is not refreshed under the user's hands
            refresh=0 if form.errors else REFRESH_SECONDS,
            refresh_url="/" + ("?" + query_text if query_text else ""),
        )
        return web.Response(text=body, status=status, content_type="text/html")

    async def _page(self, filters: Filters) -> Page:
        agent = self.agent
        snap = take_snapshot(agent)
        alerting = agent.alerting
        catalog = load_catalog()
        units = {name: spec.unit for name, spec in
                 ((m, catalog.get(m)) for m in set(snap.key_metrics.values())) if spec is not None}
        return await asyncio.to_thread(
            partial(build_page, snap, now=time.time(), filters=filters,
                    reader=agent.history.reader,
                    silences=alerting.silences if alerting is not None else None,
                    backlog=alerting.delivery if alerting is not None else None,
                    units=units, acks=self.acks))

    # -- silences ------------------------------------------------------------------------
    async def _form(self, request: web.Request) -> tuple[Mapping[str, str], web.Response | None]:
        data = await request.post()
        fields = {k: v for k, v in data.items() if isinstance(v, str)}
        verdict = self.access.post_refusal(request.headers, request.scheme, fields.get("csrf", ""))
        if verdict is not None:
            return fields, self._refused(verdict)
        if self.agent.alerting is None:
            return fields, self._refused(Verdict(409, "Alerting is disabled on this agent "
                                                 "(alerting.enabled: false): there is nothing "
                                                 "to silence."))
        return fields, None

    async def add_silence(self, request: web.Request) -> web.StreamResponse:
        fields, refused = await self._form(request)
        if refused is not None:
            return refused
        form = parse_silence_form(fields)
        if not form.valid:
            return await self.index(request, form=form, status=400)
        assert self.agent.alerting is not None
        now = time.time()
        try:
            silence = await asyncio.to_thread(
                partial(self.agent.alerting.silences.add, form.matchers, starts_at=now,
                        ends_at=now + form.seconds, now=now, created_by=form.author,
                        comment=form.comment))
        except ValueError as exc:
            form.errors["matchers"] = str(exc)
            return await self.index(request, form=form, status=400)
        raise web.HTTPSeeOther("/?" + urlencode({"added": silence.id}) + "#silences")

    async def expire_silence(self, request: web.Request) -> web.StreamResponse:
        fields, refused = await self._form(request)
        if refused is not None:
            return refused
        assert self.agent.alerting is not None
        silence_id = fields.get("id", "").strip()
        if not silence_id:
            return self._refused(Verdict(400, "No silence id was sent."))
        try:
            silence = await asyncio.to_thread(
                partial(self.agent.alerting.silences.expire, silence_id, now=time.time()))
        except (LookupError, ValueError) as exc:
            return self._refused(Verdict(404, str(exc)))
        raise web.HTTPSeeOther("/?" + urlencode({"expired": silence.id}) + "#silences")

    # -- history ---------------------------------------------------------------------------
    def _series_args(self, request: web.Request) -> tuple[str, dict[str, str], str, float]:
        metric = request.query.get("metric", "").strip()
        if not metric:
            raise web.HTTPBadRequest(text="metric= is required")
        tags: dict[str, str] = {}
        for item in request.query.getall("tag", []):
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise web.HTTPBadRequest(text=f"tag={item!r}: expected KEY=VALUE")
            tags[key] = value
        window = request.query.get("window", "1h")
        if window not in WINDOWS:
            window = "1h"
        return metric, tags, window, parse_duration(window)

    async def _query(self, metric: str, tags: dict[str, str], seconds: float) -> Any:
        now = time.time()
        # wide windows come from the rollups: about 360 points a series, whatever the range
        step = None if seconds <= 3600 else 60.0 * math.ceil(seconds / 360 / 60)
        return await asyncio.to_thread(partial(
            self.agent.history.reader.query, metric, now - seconds, now, tags=tags, step=step))

    async def chart(self, request: web.Request) -> web.Response:
        metric, tags, window, seconds = self._series_args(request)
        result = await self._query(metric, tags, seconds)
        spec = load_catalog().get(metric)
        rows = []
        for series_tags, points in sorted(result.series.items()):
            values = [v for _, v in points if math.isfinite(v)]
            rows.append({
                "tags": dict(series_tags),
                "count": len(points),
                "last": values[-1] if values else None,
                "low": min(values) if values else None,
                "high": max(values) if values else None,
                "url": chart_url(metric, dict(series_tags), window),
            })
        png = "/ui/chart.png?" + urlencode(
            [("metric", metric)] + [("tag", f"{k}={v}") for k, v in sorted(tags.items())]
            + [("window", window)])
        body = await asyncio.to_thread(
            self._render, "chart.html", metric=metric, tags=tags, window=window,
            windows=[(w, chart_url(metric, tags, w)) for w in WINDOWS], png=png, rows=rows,
            shown=min(len(rows), MAX_CHART_SERIES), unit=spec.unit if spec else "",
            description=spec.description if spec else "", resolution=result.resolution,
            now=time.time())
        return web.Response(text=body, content_type="text/html")

    async def chart_png(self, request: web.Request) -> web.Response:
        from agent.charts import render_line_chart

        metric, tags, window, seconds = self._series_args(request)
        result = await self._query(metric, tags, seconds)
        spec = load_catalog().get(metric)
        items = sorted(result.series.items())[:MAX_CHART_SERIES]
        series = {_series_label(t, tags): p for t, p in items}
        png = await asyncio.to_thread(partial(
            render_line_chart, series, title=f"{metric} (last {window})",
            unit=spec.unit if spec else ""))
        return web.Response(body=png, content_type="image/png")

    async def series(self, request: web.Request) -> web.Response:
        check = request.query.get("check", "").strip()
        metric = request.query.get("metric", "").strip()
        reader = self.agent.history.reader
        wanted = {"check": check} if check else None
        found = await asyncio.to_thread(partial(reader.list_series, metric or None, wanted))
        if check or metric:
            rows = [{"metric": s.metric, "tags": dict(s.tags),
                     "url": chart_url(s.metric, dict(s.tags))} for s in found[:MAX_SERIES_ROWS]]
            metrics = []
        else:  # every metric once, with how many series it has
            counts: dict[str, int] = {}
            for s in found:
                counts[s.metric] = counts.get(s.metric, 0) + 1
            rows = []
            metrics = [{"metric": m, "count": n, "url": "/ui/series?" + urlencode({"metric": m})}
                       for m, n in sorted(counts.items())]
        body = await asyncio.to_thread(
            self._render, "series.html", check=check, metric=metric, rows=rows,
            metrics=metrics, total=len(found), limit=MAX_SERIES_ROWS)
        return web.Response(text=body, content_type="text/html")

    # -- assets ------------------------------------------------------------------------------
    async def static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in STATIC:
            raise web.HTTPNotFound()
        data = importlib.resources.files("agent.web").joinpath("static", name).read_bytes()
        response = web.Response(body=data, content_type=STATIC[name])
        response.headers["Cache-Control"] = "no-cache"
        return response

    def _render(self, template: str, **context: Any) -> str:
        return self.templates.get_template(template).render(**context)


def _series_label(tags: Any, fixed: Mapping[str, str]) -> str:
    """A series' name in a chart legend: the tags the query did not already fix."""
    rest = [f"{k}={v}" for k, v in tags if k not in fixed and k not in ("agent", "env")]
    return ", ".join(rest) or ", ".join(f"{k}={v}" for k, v in tags) or "(no tags)"


def _filter_query(filters: Filters) -> str:
    pairs = [(k, v) for k, v in (("status", filters.status), ("type", filters.type)) if v]
    return urlencode(pairs)


# -- templates ---------------------------------------------------------------------------------
def _finalize(value: Any) -> Any:
    """Every value a template prints passes here before it is escaped: registered secrets
    are masked, as on /status, whatever a check or a target put in a message."""
    if isinstance(value, str) and not isinstance(value, Markup):
        return scrub(value)
    return value


def _environment() -> Environment:
    from jinja2 import Environment, PackageLoader, StrictUndefined

    env = Environment(
        loader=PackageLoader("agent.web", "templates"),
        autoescape=True,  # every template, whatever its name: nothing from data is markup
        undefined=StrictUndefined,
        finalize=_finalize,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(ago=_ago, utc=_utc, iso=_iso, num=_num, age=_age)
    return env


def _ago(ts: float | None, now: float) -> str:
    if ts is None:
        return "never"
    delta = now - ts
    if abs(delta) < 1:
        return "just now"
    return f"{_age(delta)} ago" if delta > 0 else f"in {_age(-delta)}"


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def _utc(ts: float | None) -> str:
    if ts is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))


def _iso(ts: float | None) -> str:
    if ts is None:
        return ""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _num(value: float | None, unit: str = "") -> str:
    """A value in the unit people read it in (ms for short times, MiB, %)."""
    if value is None or not math.isfinite(value):
        return "-"
    if unit == "seconds":
        return f"{value * 1000:.3g} ms" if abs(value) < 1 else _age(value)
    if unit == "bytes":
        for size, name in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
            if abs(value) >= size:
                return f"{value / size:.3g} {name}"
        return f"{value:.0f} B"
    if unit == "ratio":
        return f"{value * 100:.3g}%"
    text = f"{value:.4g}"
    return f"{text} {unit}" if unit else text
