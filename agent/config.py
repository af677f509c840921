"""The agent's config: one YAML file, validated into frozen pydantic models.

``${VAR}`` and ``${VAR:-default}`` are taken from the environment in every string value.
Every problem is reported at once, each naming the key path (``checks[2].interval``), what
was expected and what was found; unknown keys are errors, with the nearest valid key
suggested, so a typo never passes silently (:mod:`agent.yamlconf` reads the YAML and words
the problems, the same way for this file, rule packs and rule tests). Secrets are
``SecretStr`` and are registered with :mod:`agent.secrets` so they are never printed.
"""

from __future__ import annotations

import difflib
import logging
import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from agent.alerting.config import AlertingConfig, reference_problems, timer_warnings
from agent.causes.config import CausesConfig
from agent.causes.config import reference_problems as cause_problems
from agent.causes.config import unknown_rule_warnings
from agent.check import AgentCheck, InstanceConfig
from agent.cost.config import CostConfig
from agent.durations import Duration
from agent.errors import ConfigError, UnknownCheckError
from agent.export.config import ExportersConfig
from agent.heartbeat import HeartbeatConfig
from agent.history.config import HistoryConfig
from agent.identity import Identity
from agent.leader import LeaderConfig
from agent.plugins import check_type_names, get_check_type
from agent.rules.config import RuleConfig, RulesEngineConfig
from agent.rules.files import include_rule_files
from agent.secrets import register_secret
from agent.slackapp.config import SlackActionsConfig
from agent.yamlconf import (ENV_RE, format_errors, is_secret, key_path, kind_of, parse_yaml,
                            substitute)

__all__ = ["AgentConfig", "AgentSection", "config_warnings", "default_config", "draft_warnings",
           "load_config", "override_agent", "parse_config"]

log = logging.getLogger(__name__)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AgentSection(_Model):
    """The daemon itself."""

    history: str = Field(
        "sqlite:///mlwarden.db",
        description="SQLAlchemy URL of the history store (SQLite file or PostgreSQL).",
    )
    listen: str = Field(
        "127.0.0.1:9464",
        description="host:port of the HTTP server (/healthz /readyz /status /metrics, and the "
        "status page at /).",
    )
    hostname: str = Field(
        default_factory=socket.gethostname,
        description="This agent's name; the `agent` tag on its own metrics.",
    )
    tags: dict[str, str] = Field(
        default_factory=dict, description="Tags added to every sample (e.g. env, cluster)."
    )
    node: str | None = Field(
        None,
        description="The node this agent runs on: the `node` tag of its local GPUs and of the "
        "model servers it probes over loopback, which links a GPU fault to the alerts it "
        "explains (docs/alerting.md). Default: $NODE_NAME (the Kubernetes downward API), else "
        "the host name.",
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field("info")
    log_format: Literal["auto", "json", "text"] = Field(
        "auto", description="`auto`: JSON when stdout is not a terminal."
    )
    shutdown_timeout: Duration = Field(
        8.0, gt=0, description="How long in-flight checks may finish after SIGTERM."
    )
    pipeline_queue: int = Field(
        10_000, ge=10, description="Check results held before the pipeline sheds load."
    )
    http_connections: int = Field(
        200, ge=1, description="Connection limit of the HTTP client shared by all probes."
    )
    self_check: bool = Field(True, description="Run the built-in `agent` self-check.")
    self_check_interval: Duration = Field(15.0, gt=0)
    auth_token: SecretStr | None = Field(
        None, description="Token required on /status, /metrics and the status page when set "
        "(`Authorization: Bearer`; the page also takes it as a Basic-auth password). Without "
        "it the page is served only on a loopback listen address."
    )

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
            raise ValueError(f"expected host:port like '127.0.0.1:9464', found {value!r}")
        return value

    @property
    def identity(self) -> Identity:
        """Name, tags and reporting pace: what component factories take besides their section."""
        return Identity(self.hostname, dict(self.tags), self.self_check_interval)

    @property
    def listen_host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def listen_port(self) -> int:
        return int(self.listen.rpartition(":")[2])


class AgentConfig(_Model):
    """The whole file."""

    agent: AgentSection = Field(default_factory=AgentSection)
    exporters: ExportersConfig = Field(default_factory=ExportersConfig)
    history: HistoryConfig = Field(default_factory=HistoryConfig)
    leader: LeaderConfig = Field(default_factory=LeaderConfig)
    alerting: AlertingConfig = Field(default_factory=AlertingConfig)
    checks: tuple[InstanceConfig, ...] = Field(
        default=(), description="Check instances; each entry's keys depend on its `type`."
    )
    rules: tuple[RuleConfig, ...] = Field(default=(), description="Alert rules (docs/rules.md).")
    rule_files: tuple[str, ...] = Field(
        default=(),
        description="Rule packs to load: `builtin:NAME` for a pack shipped with the agent "
        "(`agent`, `airflow`, `endpoints`, `gpu`; `builtin:*` for all), or globs of YAML files "
        "holding `rules:` (relative to this file). The starter config and the file-less run "
        "load `builtin:agent`.",
    )
    rules_engine: RulesEngineConfig = Field(default_factory=RulesEngineConfig)
    heartbeat: HeartbeatConfig | None = Field(None, description="Dead man's switch ping.")
    cost: CostConfig | None = Field(
        None, description="GPU cost per model and pipeline run, right-sizing, weekly digest (docs/cost.md)."
    )
    slack_actions: SlackActionsConfig | None = Field(
        None, description="Acknowledge, Silence and Chart buttons on Slack alerts (docs/alerting.md)."
    )
    causes: CausesConfig = Field(
        default_factory=CausesConfig,
        description="Which alerts explain which: the shipped cause graph and what you add "
        "(docs/alerting.md).",
    )

    def check(self, name: str) -> InstanceConfig:
        for instance in self.checks:
            if instance.name == name:
                return instance
        names = ", ".join(c.name for c in self.checks) or "none"
        raise LookupError(f"no check instance named {name!r} in the config (have: {names})")


# -- loading -------------------------------------------------------------------------
_SAID: set[str] = set()  # warnings already logged by this process: each is said once per start


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None, *,
                warn: bool = True) -> AgentConfig:
    """Read, substitute and validate a config file; raises ConfigError listing every problem.

    With ``warn``, :func:`config_warnings` are logged, each once per process: a SIGHUP that
    loads the same file again does not repeat them.
    """
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(source, [f"cannot read the file: {exc.strerror or exc}"]) from None
    config = parse_config(text, source=source, env=env, base_dir=Path(path).parent)
    if warn:
        for warning in config_warnings(config, path, text=text):
            if warning not in _SAID:
                _SAID.add(warning)
                log.warning("%s", warning)
    return config


def config_warnings(config: AgentConfig, path: str | os.PathLike[str] | None = None, *,
                    text: str | None = None) -> list[str]:
    """Legal but risky settings: what `config validate` prints and `run` logs at start."""
    warnings = []
    if path is not None:
        if text is None:
            try:
                text = Path(path).read_text(encoding="utf-8")
            except OSError:
                text = ""
        written = _secrets_written_in(text)
        try:
            mode = Path(path).stat().st_mode
        except OSError:
            mode = 0
        if written and mode & 0o004:
            warnings.append(_secret_warning(path, written))
    host = config.agent.listen_host
    if host not in ("127.0.0.1", "localhost", "::1") and config.agent.auth_token is None:
        warnings.append(f"agent.listen is {config.agent.listen}, reachable from other hosts, and "
                        "agent.auth_token is not set: anyone who can reach it can read /status "
                        "and /metrics (the status page at / stays off until a token is set)")
    if config.alerting.enabled:
        warnings.extend(timer_warnings(config.alerting.model_dump(by_alias=True)))
    if config.slack_actions is not None:
        from agent.slackapp.config import chain_warnings

        warnings.extend(config.slack_actions.warnings())
        warnings.extend(chain_warnings(config.alerting))
    warnings.extend(unknown_rule_warnings(config.causes, (r.alert for r in config.rules)))
    return warnings


def _slack_actions_problems(config: AgentConfig) -> list[str]:
    """User groups are looked up with a bot token: one must be configured somewhere."""
    actions = config.slack_actions
    assert actions is not None
    slack = config.alerting.slack
    if actions.bot_token is not None or (slack is not None and slack.token is not None):
        return []
    allow = actions.allow
    lists = {"default": allow.default, "acknowledge": allow.acknowledge, "silence": allow.silence,
             "unsilence": allow.unsilence, "chart": allow.chart}
    return [f"slack_actions.allow.{name}.usergroups: looking up a user group needs a bot "
            "token with usergroups:read (slack_actions.bot_token or alerting.slack.token)"
            for name, lst in lists.items() if lst is not None and lst.usergroups]


def draft_warnings(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> list[str]:
    """What can be warned about in a file that does not validate (for `config validate`)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
        raw = parse_yaml(text)
    except (OSError, ValueError):
        return []
    if not isinstance(raw, dict):
        return []
    raw = substitute(raw, os.environ if env is None else env, (), [])
    out = timer_warnings(raw.get("alerting"))
    written = _secrets_written_in(text)
    try:
        readable = bool(Path(path).stat().st_mode & 0o004)
    except OSError:
        readable = False
    if written and readable:
        out.insert(0, _secret_warning(path, written))
    return out


def _secret_warning(path: str | os.PathLike[str], written: list[str]) -> str:
    keys = ", ".join(written[:3]) + (" ..." if len(written) > 3 else "")
    return (f"{path} is world-readable and has a secret written in it ({keys}); "
            f"run: chmod 600 {path}, or move the value to an environment variable "
            "and write ${VAR} in the file")


def _secrets_written_in(text: str) -> list[str]:
    """Key paths of secret settings whose value is in the file itself, not only ``${VAR}``.

    ``token: xoxb-1`` and ``token: ${TOKEN:-xoxb-1}`` put the secret in the file;
    ``token: ${TOKEN}`` and ``url: https://hooks.slack.com/services/${HOOK}`` do not.
    """
    try:
        raw = parse_yaml(text)
    except ValueError:
        return []
    if not isinstance(raw, dict):
        return []
    found: list[str] = []

    def literal(value: str) -> bool:
        refs = list(ENV_RE.finditer(value))
        return bool(value.strip()) and (not refs or any(m.group(2) for m in refs))

    def walk(value: Any, loc: tuple, model: type[BaseModel], prefix: tuple) -> None:
        if isinstance(value, str):
            if literal(value) and is_secret(model, loc):
                found.append(key_path((*prefix, *loc)))
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(item, (*loc, str(key)), model, prefix)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                walk(item, (*loc, i), model, prefix)

    walk({k: v for k, v in raw.items() if k != "checks"}, (), AgentConfig, ())
    checks = raw.get("checks")
    for i, item in enumerate(checks if isinstance(checks, list) else []):
        cls = _known_type(item.get("type")) if isinstance(item, dict) else None
        if cls is not None:
            walk(item, (), cls.Config, ("checks", i))
    return found


def parse_config(
    text: str,
    *,
    source: str = "<config>",
    env: Mapping[str, str] | None = None,
    base_dir: Path | None = None,
) -> AgentConfig:
    """Validate config text; ``source`` names it in errors."""
    try:
        raw = parse_yaml(text)
    except ValueError as exc:
        raise ConfigError(source, [str(exc)]) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(source, [f"(top level): expected a mapping of sections, found {kind_of(raw)}"])
    problems: list[str] = []
    raw = substitute(raw, env if env is not None else os.environ, (), problems)
    env_paths = {p.split(":", 1)[0] for p in problems}
    checks_raw = raw.pop("checks", None) or []
    top: AgentConfig | None = None
    try:  # cross-references are checked below on the raw file, so each gets its own path
        top = AgentConfig.model_validate(raw, context={"references_checked": True})
    except ValidationError as exc:
        problems.extend(format_errors(exc, (), AgentConfig))
    problems.extend(reference_problems(raw.get("alerting")))
    problems.extend(cause_problems(raw.get("causes")))
    problems.extend(_history_url_problems(raw.get("agent")))
    checks: list[InstanceConfig] = []
    if not isinstance(checks_raw, list):
        problems.append(f"checks: expected a list of check instances, found {kind_of(checks_raw)}")
        checks_raw = []
    seen: dict[str, int] = {}
    for i, item in enumerate(checks_raw):
        instance = _validate_check(item, ("checks", i), problems)
        name = item.get("name") if isinstance(item, dict) else None
        if isinstance(name, str) and name in seen:  # said even when the instance is invalid
            problems.append(f"checks[{i}].name: {name!r} is already used by checks[{seen[name]}]; "
                            "instance names must be unique")
            continue
        if isinstance(name, str):
            seen[name] = i
        if instance is not None:
            checks.append(instance)
    if top is not None and top.cost is not None and top.cost.digest is not None:
        from agent.cost.config import digest_target

        try:
            digest_target(top.alerting, top.cost.digest.receiver)
        except ValueError as exc:
            problems.append(f"cost.digest.receiver: {exc}")
    if top is not None and top.slack_actions is not None:
        problems.extend(_slack_actions_problems(top))
    if top is not None:
        top = _with_rule_files(top, base_dir, problems, env)
    elif isinstance(raw.get("rule_files"), list):  # the rest is invalid: still check the packs
        files = tuple(str(f) for f in raw["rule_files"] if isinstance(f, str))
        include_rule_files((), files, base_dir, problems, env)
    if problems:
        # a value whose variable is unset is reported once, not again as a bad value
        env_count = len(env_paths)
        problems = problems[:env_count] + [
            p for p in problems[env_count:] if p.split(":", 1)[0] not in env_paths
        ]
        raise ConfigError(source, problems)
    assert top is not None
    config = top.model_copy(update={"checks": tuple(checks)})
    _register_secrets(config)
    return config


def override_agent(config: AgentConfig, overrides: Mapping[str, Any]) -> AgentConfig:
    """``config`` with ``agent:`` settings from the command line (``--listen``, ``--log-level``)
    on top; validated like the file. `run` applies them again after each reload."""
    if not overrides:
        return config
    section = AgentSection.model_validate({**config.agent.model_dump(), **overrides})
    return config.model_copy(update={"agent": section})


# The one default rule set: the file-less run loads it, `mlwarden init` writes it (and the image
# ships that file). tests/agent/test_default_rules.py holds all three to it.
DEFAULT_RULE_FILES: tuple[str, ...] = ("builtin:agent",)


def default_config() -> AgentConfig:
    """The embedded defaults `mlwarden run` uses without a config file.

    They load the same rule packs as the starter config (``DEFAULT_RULE_FILES``: the agent's
    own pack): without rules the console receiver, the default when Slack is not
    configured, would never have anything to say.
    """
    problems: list[str] = []
    config = _with_rule_files(AgentConfig(rule_files=DEFAULT_RULE_FILES), None, problems, env={})
    if problems:  # a broken package, not a user error; tests/agent/test_config.py guards it
        raise ConfigError("(embedded defaults)", problems)
    return config


def _with_rule_files(config: AgentConfig, base_dir: Path | None, problems: list[str],
                     env: Mapping[str, str] | None) -> AgentConfig:
    """``config`` with the rules of its ``rule_files`` after its inline ``rules``."""
    rules = include_rule_files(config.rules, config.rule_files, base_dir, problems, env)
    if len(rules) == len(config.rules):
        return config
    return config.model_copy(update={"rules": rules})


def _history_url_problems(section: Any) -> list[str]:
    """``agent.history`` must parse as a SQLAlchemy URL: `run` would refuse it at start."""
    url = section.get("history") if isinstance(section, dict) else None
    if not isinstance(url, str) or not url:
        return []
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        make_url(url)
    except ArgumentError:
        return ["agent.history: expected a SQLAlchemy URL like 'sqlite:///mlwarden.db' or "
                "'postgresql+psycopg://user@host/db', found a string that is not one"]
    return []


def _known_type(type_name: Any) -> type[AgentCheck] | None:
    """The check type named, imported on first use; None where no plugin provides it."""
    try:
        return get_check_type(str(type_name))
    except UnknownCheckError:
        return None


def _validate_check(item: Any, loc: tuple, problems: list[str]) -> InstanceConfig | None:
    path = key_path(loc)
    if not isinstance(item, dict):
        problems.append(f"{path}: expected a mapping with at least `type` and `name`, found {kind_of(item)}")
        return None
    type_name = item.get("type")
    if not type_name:
        problems.append(f"{path}.type: missing required key (installed types: "
                        f"{', '.join(check_type_names()) or 'none'})")
        return None
    try:
        cls = get_check_type(str(type_name))
    except UnknownCheckError as exc:
        close = difflib.get_close_matches(str(type_name), check_type_names(), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        problems.append(f"{path}.type: {exc}{hint}")
        return None
    try:
        return _share_fields_set(cls.Config.model_validate(item))
    except ValidationError as exc:
        problems.extend(format_errors(exc, loc, cls.Config))
        return None


# A check's config keeps the names of the keys its entry set (``__pydantic_fields_set__``):
# a set of 5-19 names is 728 bytes, the same names for most instances of a type. Frozen
# models never change theirs (pydantic's __setattr__/__delattr__ refuse before touching it,
# and model_copy/__copy__/__deepcopy__ copy it before adding), so equal sets are shared.
_FIELDS_SETS: dict[frozenset[str], set[str]] = {}
_FIELDS_SETS_MAX = 4096  # distinct key sets remembered; beyond, instances keep their own


def _share_fields_set(model: InstanceConfig) -> InstanceConfig:
    """``model`` holding the one shared set of its set field names (frozen models only)."""
    if not model.model_config.get("frozen"):
        return model
    own = model.__pydantic_fields_set__
    key = frozenset(own)
    shared = _FIELDS_SETS.get(key)
    if shared is None:
        if len(_FIELDS_SETS) >= _FIELDS_SETS_MAX:
            return model
        shared = _FIELDS_SETS[key] = own
    elif shared is not own:
        object.__setattr__(model, "__pydantic_fields_set__", shared)
    return model


def _register_secrets(model: Any) -> None:
    if isinstance(model, SecretStr):
        register_secret(model.get_secret_value())
    elif isinstance(model, BaseModel):
        for name in type(model).model_fields:
            _register_secrets(getattr(model, name))
    elif isinstance(model, (list, tuple)):
        for item in model:
            _register_secrets(item)
    elif isinstance(model, dict):
        for item in model.values():
            _register_secrets(item)
