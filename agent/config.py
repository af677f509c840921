"""The agent's config: one YAML file, validated into frozen pydantic models.

The only module that reads YAML. ``${VAR}`` and ``${VAR:-default}`` are taken from the
environment in every string value. Every problem is reported at once, each naming the key
path (``checks[2].interval``), what was expected and what was found; unknown keys are
errors, with the nearest valid key suggested, so a typo never passes silently. Secrets are
``SecretStr`` and are registered with :mod:`agent.secrets` so they are never printed.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
import socket
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from agent.alerting.config import AlertingConfig, reference_problems, timer_warnings
from agent.causes.config import CausesConfig
from agent.causes.config import reference_problems as cause_problems
from agent.causes.config import unknown_rule_warnings
from agent.check import InstanceConfig
from agent.cost.config import CostConfig
from agent.durations import Duration
from agent.errors import ConfigError, UnknownCheckError
from agent.export.config import ExportersConfig
from agent.heartbeat import HeartbeatConfig
from agent.history.config import HistoryConfig
from agent.leader import LeaderConfig
from agent.plugins import check_types, get_check_type
from agent.rules.config import RuleConfig, RulesEngineConfig
from agent.secrets import register_secret
from agent.slackapp.config import SlackActionsConfig

__all__ = ["AgentConfig", "AgentSection", "config_warnings", "default_config", "draft_warnings",
           "load_config", "override_agent", "parse_config"]

log = logging.getLogger(__name__)
_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


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
        raw = yaml.safe_load(text)
    except (OSError, yaml.YAMLError):
        return []
    if not isinstance(raw, dict):
        return []
    raw = _substitute(raw, os.environ if env is None else env, (), [])
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
        raw = yaml.safe_load(text)
    except yaml.YAMLError:
        return []
    if not isinstance(raw, dict):
        return []
    found: list[str] = []

    def literal(value: str) -> bool:
        refs = list(_ENV_RE.finditer(value))
        return bool(value.strip()) and (not refs or any(m.group(2) for m in refs))

    def walk(value: Any, loc: tuple, model: type[BaseModel], prefix: tuple) -> None:
        if isinstance(value, str):
            if literal(value) and _is_secret(model, loc):
                found.append(_path((*prefix, *loc)))
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(item, (*loc, str(key)), model, prefix)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                walk(item, (*loc, i), model, prefix)

    walk({k: v for k, v in raw.items() if k != "checks"}, (), AgentConfig, ())
    checks = raw.get("checks")
    for i, item in enumerate(checks if isinstance(checks, list) else []):
        cls = check_types().get(str(item.get("type"))) if isinstance(item, dict) else None
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
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(source, [f"{where}invalid YAML: {problem}"]) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(source, [f"(top level): expected a mapping of sections, found {_kind(raw)}"])
    problems: list[str] = []
    raw = _substitute(raw, env if env is not None else os.environ, (), problems)
    env_paths = {p.split(":", 1)[0] for p in problems}
    checks_raw = raw.pop("checks", None) or []
    top: AgentConfig | None = None
    try:  # cross-references are checked below on the raw file, so each gets its own path
        top = AgentConfig.model_validate(raw, context={"references_checked": True})
    except ValidationError as exc:
        problems.extend(_format_errors(exc, (), AgentConfig))
    problems.extend(reference_problems(raw.get("alerting")))
    problems.extend(cause_problems(raw.get("causes")))
    problems.extend(_history_url_problems(raw.get("agent")))
    checks: list[InstanceConfig] = []
    if not isinstance(checks_raw, list):
        problems.append(f"checks: expected a list of check instances, found {_kind(checks_raw)}")
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
    from agent.rules.files import include_rule_files

    if top is not None:
        top = include_rule_files(top, base_dir, problems, env)
    elif isinstance(raw.get("rule_files"), list):  # the rest is invalid: still check the packs
        files = tuple(str(f) for f in raw["rule_files"] if isinstance(f, str))
        include_rule_files(AgentConfig(rule_files=files), base_dir, problems, env)
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
    from agent.rules.files import include_rule_files

    problems: list[str] = []
    config = include_rule_files(AgentConfig(rule_files=DEFAULT_RULE_FILES), None, problems, env={})
    if problems:  # a broken package, not a user error; tests/agent/test_config.py guards it
        raise ConfigError("(embedded defaults)", problems)
    return config


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


def _validate_check(item: Any, loc: tuple, problems: list[str]) -> InstanceConfig | None:
    path = _path(loc)
    if not isinstance(item, dict):
        problems.append(f"{path}: expected a mapping with at least `type` and `name`, found {_kind(item)}")
        return None
    type_name = item.get("type")
    if not type_name:
        problems.append(f"{path}.type: missing required key (installed types: "
                        f"{', '.join(sorted(check_types())) or 'none'})")
        return None
    try:
        cls = get_check_type(str(type_name))
    except UnknownCheckError as exc:
        close = difflib.get_close_matches(str(type_name), list(check_types()), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        problems.append(f"{path}.type: {exc}{hint}")
        return None
    try:
        return cls.Config.model_validate(item)
    except ValidationError as exc:
        problems.extend(_format_errors(exc, loc, cls.Config))
        return None


def _substitute(value: Any, env: Mapping[str, str], loc: tuple, problems: list[str]) -> Any:
    if isinstance(value, str):
        def repl(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env and env[name] != "":
                return env[name]
            if default is not None:
                return default
            problems.append(
                f"{_path(loc)}: environment variable {name} is not set "
                f"(set it, or write ${{{name}:-default}})"
            )
            return ""

        return _ENV_RE.sub(repl, value)
    if isinstance(value, dict):
        return {k: _substitute(v, env, (*loc, k), problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, env, (*loc, i), problems) for i, v in enumerate(value)]
    return value


def _path(loc: Iterable[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _kind(value: Any, show: bool = True) -> str:
    if value is None:
        return "nothing (null)"
    names = {str: "a string", int: "a number", float: "a number", bool: "a boolean",
             list: "a list", dict: "a mapping"}
    shown = repr(value) if show and isinstance(value, (str, int, float, bool)) else ""
    return f"{names.get(type(value), type(value).__name__)}{' ' + shown if shown else ''}"


def _fields_at(model: type[BaseModel], loc: tuple) -> list[str]:
    """Valid keys of the model reached by ``loc`` (for typo suggestions)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int) or not (isinstance(current, type) and issubclass(current, BaseModel)):
            continue
        field = _field(current, str(part))
        if field is None:
            return []
        ann = field.annotation
        candidates = [ann, *getattr(ann, "__args__", ())]
        current = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or name for name, f in current.model_fields.items()]  # `for`, not `for_`
    return []


def _field(model: type[BaseModel], key: str) -> Any:
    """The field a YAML key names: by its alias (``for``) or its name."""
    fields = model.model_fields
    return fields.get(key) or next((f for f in fields.values() if f.alias == key), None)


def _is_secret(model: type[BaseModel], loc: tuple) -> bool:
    """Whether ``loc`` names a SecretStr field of ``model`` (its value is never shown)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return False
        field = _field(current, str(part))
        if field is None:
            return False
        candidates = [field.annotation, *getattr(field.annotation, "__args__", ())]
        if SecretStr in candidates:
            return True
        current = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
    return False


# keys earlier releases took, and what replaced them: said instead of "unknown key"
REMOVED_KEYS = {
    "latency_window": "was removed: probe latency is a histogram now "
                      "(mlwarden_endpoint_latency_seconds_bucket in Prometheus, a distribution in "
                      "Datadog); a rule takes its p95 with `aggregate: p95` and a `window`; "
                      "delete the key",
}


def _format_errors(exc: ValidationError, prefix: tuple, model: type[BaseModel]) -> list[str]:
    problems = []
    for err in exc.errors(include_url=False):
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        path = _path((*prefix, *loc))
        kind = err["type"]
        found = err.get("input")
        if kind == "extra_forbidden" and loc and str(loc[-1]) in REMOVED_KEYS:
            problems.append(f"{path}: {REMOVED_KEYS[str(loc[-1])]}")
        elif kind == "extra_forbidden":
            key = str(loc[-1]) if loc else "?"
            valid = _fields_at(model, loc[:-1])
            close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"{path}: unknown key{hint}; valid keys here: {', '.join(valid)}")
        elif kind == "missing":
            problems.append(f"{path}: missing required key")
        else:
            msg = err["msg"]
            msg = msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
            if _is_secret(model, loc):  # an unquoted numeric password must not be echoed
                problems.append(f"{path}: {msg[0].lower() + msg[1:]}, "
                                f"found {_kind(found, show=False)} (not shown: a secret)")
            elif "found" in msg:
                problems.append(f"{path}: {msg}")
            else:
                problems.append(f"{path}: {msg[0].lower() + msg[1:]}, found {_kind(found)}")
    return problems


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
