"""The ``openmetrics`` check: scrape a Prometheus text endpoint and forward chosen series."""

from __future__ import annotations

from yarl import URL

from agent.check import AgentCheck
from agent.errors import ConfigError
from agent.samples import Kind, Status
from checks.model_endpoint.probe import Answer, HttpProbe, ProbeFailure
from checks.openmetrics.config import OpenMetricsConfig
from checks.openmetrics.select import parse_families, select_samples

__all__ = ["OpenMetricsCheck"]

_ACCEPT = {"Accept": "text/plain;version=0.0.4;q=1,*/*;q=0.1"}
_OFF_LOOP = 65_536  # parse bigger expositions off the event loop


class OpenMetricsCheck(AgentCheck):
    type_name = "openmetrics"
    key_metric = "mlwarden.openmetrics.scrape.duration"
    Config = OpenMetricsConfig
    config: OpenMetricsConfig

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._probe: HttpProbe | None = None
        self._tags = {"endpoint": str(URL(self.config.url).with_query(None))}

    async def check(self) -> None:
        cfg = self.config
        try:
            if self._probe is None:
                self._probe = HttpProbe(self.context, cfg, cfg.probe_deadline)
        except ConfigError as exc:
            self.service_check(Status.UNKNOWN, f"scrape of {cfg.url}: bad config: {exc}")
            return
        try:
            answer = await self._probe.request("GET", cfg.url, headers=_ACCEPT)
            if answer.status != 200:
                raise answer.http_failure()
            if len(answer.body) > _OFF_LOOP:
                selected = await self.run_blocking(self._select, answer)
            else:
                selected = self._select(answer)
        except ProbeFailure as failure:
            self.gauge("openmetrics.up", 0, self._tags)
            self.count("openmetrics.errors", 1, {**self._tags, "error_kind": failure.kind.value})
            self.service_check(failure.status, f"scrape: {failure.kind.value}: {failure}")
            return
        for s in selected:
            if s.kind is Kind.MONOTONIC_COUNT:
                self.monotonic_count(s.name, s.value, s.tags)
            else:
                self.gauge(s.name, s.value, s.tags)
        self.gauge("openmetrics.up", 1, self._tags)
        self.gauge("openmetrics.scrape.duration", answer.latency, self._tags)
        self.gauge("openmetrics.scrape.series", len(selected), self._tags)
        if len(selected) >= cfg.max_series:
            self.warning(f"{cfg.url}: forwarded only the first {cfg.max_series} series "
                         "(max_series); narrow the selectors")
        if not selected:
            self.warning(f"{cfg.url}: no series matched the selectors")
        self.service_check(Status.OK, f"scraped {cfg.url}: {len(selected)} series forwarded "
                                      f"({answer.latency * 1000:.0f} ms)")

    def _select(self, answer: Answer) -> list:
        cfg = self.config
        try:
            families = parse_families(answer.text(),
                                      openmetrics="openmetrics" in answer.content_type)
        except ValueError as exc:
            raise answer.malformed(f"answered {exc}") from None
        return select_samples(families, cfg.metrics, label_map=cfg.label_map,
                              drop_labels=cfg.drop_labels, limit=cfg.max_series)
