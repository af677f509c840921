"""The check framework: a base class whose only override is ``check()``.

A check instance talks to one target and reports what it saw through flat verbs
(``gauge``, ``count``, ``monotonic_count``, ``service_check``, ``warning``). :meth:`run`
is the firewall: it bounds ``check()`` by the instance's timeout, catches everything it
raises, validates what it emitted, scrubs secrets from messages, and always returns a
:class:`CheckResult` — a bad check never stops, delays or crashes the others.

Example::

    class PingCheck(AgentCheck):
        type_name = "ping"
        Config = PingConfig

        async def check(self) -> None:
            async with self.context.http.get(self.config.url) as resp:
                self.gauge("ping.up", 1 if resp.status == 200 else 0)
"""

from __future__ import annotations

import asyncio
import importlib.resources
import inspect
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agent.durations import Duration
from agent.errors import CheckError
from agent.samples import CheckResult, Kind, Sample, Status, Tags, make_tags
from agent.secrets import scrub

if TYPE_CHECKING:
    import aiohttp

__all__ = ["AgentCheck", "CheckContext", "InstanceConfig", "StateStore", "RuntimeInfo"]

T = TypeVar("T")
NAMESPACE = "mlwarden"
_CACHE_MAX = 10_000  # distinct metric names remembered with their namespace
_TAG_CACHE_MAX = 256  # distinct tag sets remembered per check instance
_FULL_NAMES: dict[str, str] = {}
_FLOATS: dict[int, float] = {}  # whole-number values emitted as ints, as floats
_FLOATS_MAX = 1024


class InstanceConfig(BaseModel):
    """Settings every check instance has; each check type extends this model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str = Field(description="Check type, as registered in the 'mlwarden.checks' group.")
    name: str = Field(
        min_length=1,
        pattern=r"^[A-Za-z0-9_.:-]+$",
        description="Unique instance name; becomes the `check` tag.",
    )
    interval: Duration = Field(15.0, gt=0, description="Time between runs.")
    timeout: Duration | None = Field(
        None, gt=0, description="Deadline for one run (default: the interval, at most 10s)."
    )
    jitter: Duration = Field(0.0, ge=0, description="Random delay up to this much per run.")
    tags: dict[str, str] = Field(
        default_factory=dict, description="Tags added to every sample of this instance."
    )
    scope: Literal["local", "cluster"] = Field(
        "local",
        description="`cluster`: run only on the elected leader when agents share a database.",
    )
    enabled: bool = Field(True, description="Set false to keep an instance without running it.")

    @model_validator(mode="after")
    def _default_timeout(self) -> InstanceConfig:
        if self.timeout is None:
            object.__setattr__(self, "timeout", min(self.interval, 10.0))
        return self

    @property
    def deadline(self) -> float:
        return float(self.timeout or min(self.interval, 10.0))


class StateStore(Protocol):
    """Durable per-check key/value state (cursors): the store implements it.

    Values are JSON-serialisable. Checks use it so a restart neither misses nor repeats
    what they already reported (e.g. the last Airflow run seen).
    """

    async def get_state(self, check: str, key: str) -> Any: ...

    async def set_state(self, check: str, key: str, value: Any) -> None: ...


class MemoryState:
    """A :class:`StateStore` that forgets on restart (one-shot runs, tests)."""

    def __init__(self) -> None:
        self._data: dict[tuple[str, str], Any] = {}

    async def get_state(self, check: str, key: str) -> Any:
        return self._data.get((check, key))

    async def set_state(self, check: str, key: str, value: Any) -> None:
        self._data[(check, key)] = value


class RuntimeInfo(Protocol):
    """What the running agent tells the self-check about itself."""

    def check_states(self) -> Mapping[str, Any]: ...

    def pipeline_depth(self) -> int: ...


class CheckContext:
    """What the runtime lends every check: one shared HTTP session, durable state, a clock.

    The HTTP session is created lazily on the running loop and shared by every probe, so
    connection limits are global and no check ever creates a client per probe.
    """

    def __init__(
        self,
        *,
        state: StateStore | None = None,
        runtime: RuntimeInfo | None = None,
        clock: Callable[[], float] = time.time,
        http_limit: int = 200,
        agent_tags: Mapping[str, str] | None = None,
        agent: str | None = None,
        node: str | None = None,
    ) -> None:
        self.state: StateStore = state or MemoryState()
        self.runtime = runtime
        self.clock = clock
        self.agent_tags = dict(agent_tags or {})
        self.agent = agent  # the `agent` tag of local-scope checks (cluster ones outlive a leader)
        self.node = node  # the node the agent runs on (agent.node): where its local targets run
        self._http_limit = http_limit
        self._http: aiohttp.ClientSession | None = None
        self._pairs: dict[tuple[str, str], tuple[str, str]] | None = None

    def shared_pairs(self) -> dict[tuple[str, str], tuple[str, str]]:
        """The ``(tag, value)`` pairs every check of this context may carry (the agent's tags
        and its ``agent`` tag), each one tuple: the checks' tag tuples share them instead of
        holding a copy each (56 bytes a pair and a check)."""
        if self._pairs is None:
            pairs = make_tags(self.agent_tags, {"agent": self.agent} if self.agent else None)
            self._pairs = {pair: pair for pair in pairs}
        return self._pairs

    @property
    def http(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            import aiohttp

            connector = aiohttp.TCPConnector(limit=self._http_limit, ttl_dns_cache=60)
            from agent.httptrace import phase_trace_config

            self._http = aiohttp.ClientSession(
                connector=connector, trust_env=False, raise_for_status=False,
                trace_configs=[phase_trace_config()],
            )
        return self._http

    async def close(self) -> None:
        if self._http is not None and not self._http.closed:
            await self._http.close()
        self._http = None


class AgentCheck(ABC):
    """Base class of every check type; subclasses write ``check()`` and nothing else.

    Metric names given to the verbs are relative to the ``mlwarden`` namespace
    (``endpoint.up`` -> ``mlwarden.endpoint.up``). Every sample carries the instance's
    ``check`` tag and its configured tags.
    """

    type_name: ClassVar[str] = ""
    Config: ClassVar[type[InstanceConfig]] = InstanceConfig
    # what the status page draws a sparkline of for each instance: the one number an
    # on-call engineer reads first (latency, utilisation); declared in the type's catalog
    key_metric: ClassVar[str] = "mlwarden.check.duration"

    def __init__(self, config: InstanceConfig, context: CheckContext | None = None) -> None:
        self.config = config
        self.name = config.name
        self.context = context or CheckContext()
        own = {"agent": self.context.agent} if self.context.agent and config.scope == "local" else {}
        shared = self.context.shared_pairs()
        self._base_tags: Tags = tuple([shared.get(pair, pair) for pair in make_tags(
            self.context.agent_tags, own, config.tags, {"check": config.name})])
        self._samples: list[Sample] = []
        self._tag_cache: dict[tuple[tuple[str, object], ...], Tags] = {}
        self._status: Status | None = None
        self._message = ""
        self._warnings: list[str] | None = None  # made by the first warning of a run
        self._now = 0.0

    # -- what subclasses write ------------------------------------------------------
    @abstractmethod
    async def check(self) -> None:
        """Talk to the target once and report through the verbs."""

    async def close(self) -> None:
        """Release what the check holds (override when it opens its own resources)."""

    @classmethod
    def metadata_path(cls) -> Path | None:
        """The check folder's metadata.csv (next to the module that defines the class)."""
        module = inspect.getmodule(cls)
        if module is None or not getattr(module, "__file__", None):
            return None
        package = (module.__package__ or "").split(".")
        try:
            root = importlib.resources.files(".".join(package)) if package[0] else None
        except (ModuleNotFoundError, TypeError):
            root = None
        path = Path(str(root)) / "metadata.csv" if root else Path(module.__file__).with_name("metadata.csv")
        return path

    # -- verbs -----------------------------------------------------------------------
    def gauge(self, name: str, value: float, tags: Mapping[str, object] | None = None,
              timestamp: float | None = None) -> None:
        self._submit(name, value, tags, timestamp, Kind.GAUGE)

    def count(self, name: str, value: float, tags: Mapping[str, object] | None = None,
              timestamp: float | None = None) -> None:
        """How many things happened since the last run (a delta)."""
        self._submit(name, value, tags, timestamp, Kind.COUNT)

    def monotonic_count(self, name: str, value: float, tags: Mapping[str, object] | None = None,
                        timestamp: float | None = None) -> None:
        """A running total from the target (exporters derive deltas/counters)."""
        self._submit(name, value, tags, timestamp, Kind.MONOTONIC_COUNT)

    def distribution(self, name: str, value: float, tags: Mapping[str, object] | None = None,
                     timestamp: float | None = None) -> None:
        """One observation (a latency) of a distribution: exporters aggregate observations
        into histogram buckets (Prometheus) or send them whole (Datadog distributions), so
        percentiles can be computed across agents and over time."""
        self._submit(name, value, tags, timestamp, Kind.DISTRIBUTION)

    def service_check(self, status: Status, message: str = "") -> None:
        """Set this run's verdict; the worst verdict of a run wins."""
        if self._status is None or _severity(status) > _severity(self._status):
            self._status = status
            self._message = message
        elif status == self._status and message and not self._message:
            self._message = message

    def warning(self, message: str) -> None:
        """A non-fatal problem: logged and shown in /status, the run goes on."""
        if self._warnings is None:
            self._warnings = []
        self._warnings.append(scrub(message))

    @property
    def report_interval(self) -> float:
        """The longest time between two reports of any of this instance's series.

        Exporters that serve the latest values (Prometheus) hold a value for about twice
        this long. A check with a slower cadence inside its runs (a canary every few runs)
        overrides it.
        """
        return float(self.config.interval) + float(self.config.jitter)

    @property
    def now(self) -> float:
        """The time this run started (read once per run)."""
        return self._now

    async def run_blocking(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking work (NVML, file reads) off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    def _submit(self, name: str, value: float, tags: Mapping[str, object] | None,
                timestamp: float | None, kind: Kind) -> None:
        full = _FULL_NAMES.get(name)
        if full is None:
            full = name if name.startswith(NAMESPACE + ".") else f"{NAMESPACE}.{name}"
            if len(_FULL_NAMES) < _CACHE_MAX:
                _FULL_NAMES[name] = full
        merged = self.merged_tags(tags) if tags else self._base_tags
        self._samples.append(Sample(full, value, merged, timestamp or self._now, kind))

    def merged_tags(self, tags: Mapping[str, object]) -> Tags:
        """The instance's tags with ``tags`` on top, the same tuple object for the same tags.

        A check passes the same few tag sets every run; sharing their tuples (instead of
        building new ones per sample) keeps the samples' tags from being allocated anew,
        hashed anew by every sink and promoted into the collector's old generation while
        they wait for the store.
        """
        try:
            key = tuple(tags.items())
            merged = self._tag_cache.get(key)
        except TypeError:  # an unhashable tag value: str() of it is still a fine tag
            return make_tags(self._base_tags, tags)
        if merged is None:
            merged = make_tags(self._base_tags, tags)
            # the instance's own (tag, value) pairs and those of the cache key, shared rather
            # than one copy per tag set and another in the key (string pairs only: make_tags
            # turns other values into new strings, which must not be swapped for equal ones)
            own = {pair: pair for pair in self._base_tags}
            for pair in key:
                if type(pair[0]) is str and type(pair[1]) is str:
                    own[pair] = pair
            merged = tuple([own.get(pair, pair) for pair in merged])
            if len(self._tag_cache) >= _TAG_CACHE_MAX:
                self._tag_cache.clear()  # tags that vary without bound: start over
            self._tag_cache[key] = merged
        return merged

    # -- the firewall ----------------------------------------------------------------
    async def run(self) -> CheckResult:
        """Run ``check()`` once, bounded and contained; never raises (but CancelledError)."""
        self._samples, self._status, self._message, self._warnings = [], None, "", None
        self._now = self.context.clock()
        started_mono = time.monotonic()
        error: str | None = None
        try:
            await asyncio.wait_for(self.check(), timeout=self.config.deadline)
        except asyncio.TimeoutError:
            error = "timeout"
            self._status = Status.UNKNOWN
            self._message = (f"check did not finish within its timeout of "
                             f"{self.config.deadline:g}s")
        except CheckError as exc:
            error = type(exc).__name__
            if self._status in (None, Status.OK):
                self._status = Status.CRITICAL
            self._message = scrub(str(exc)) or self._message
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the firewall
            error = "exception"
            self._status = Status.UNKNOWN
            self._message = scrub(f"check crashed: {type(exc).__name__}: {exc}")
        duration = time.monotonic() - started_mono
        samples, dropped = self._validated_samples()
        status = self._status if self._status is not None else Status.OK
        if dropped and error is None:
            # a check that emits garbage is broken: say so, keep what was valid
            error = "invalid_samples"
            if status in (Status.OK, Status.WARNING):
                status = Status.UNKNOWN
                self._message = f"check emitted {dropped} invalid sample(s); see warnings"
        result = CheckResult(
            check=self.name,
            check_type=self.type_name,
            status=status,
            message=scrub(self._message),
            samples=samples,
            started=self._now,
            duration=duration,
            error=error,
            warnings=self._warnings if self._warnings is not None else [],  # handed over
            interval=self.report_interval,
        )
        self._warnings = None
        return result

    def _validated_samples(self) -> tuple[list[Sample], int]:
        good = []
        for sample in self._samples:
            value = sample.value
            if isinstance(value, bool):
                value = float(value)
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                self.warning(f"dropped {sample.metric}: value {value!r} is not a finite number")
                continue
            if type(value) is not float:
                # small ints (up/ready, HTTP statuses) as one shared float each: the exporters
                # hold a check's latest values
                as_float = _FLOATS.get(value) if type(value) is int else None
                if as_float is None:
                    as_float = float(value)
                    if type(value) is int and -_FLOATS_MAX <= value <= _FLOATS_MAX:
                        _FLOATS[value] = as_float
                sample = Sample(sample.metric, as_float, sample.tags, sample.timestamp, sample.kind)
            good.append(sample)
        dropped = len(self._samples) - len(good)
        self._samples = []
        return good, dropped


def _severity(status: Status) -> int:
    # UNKNOWN ranks between WARNING and CRITICAL when picking the worst verdict of a run
    return {Status.OK: 0, Status.WARNING: 1, Status.UNKNOWN: 2, Status.CRITICAL: 3}[status]
