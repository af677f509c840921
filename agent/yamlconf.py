"""Reading a YAML settings file: parsing, ``${VAR}`` substitution and error paths, in one place.

The agent's config (:mod:`agent.config`), rule packs (:mod:`agent.rules.files`) and rule
unit tests (:mod:`agent.rules.unittests`) all go through here, so a problem reads the same
whichever file it is in: the key path (``checks[2].interval``), what was expected and what
was found, the nearest valid key for a typo, and never the value of a secret. This module
knows no section of the config: it depends only on pydantic and PyYAML, so anything may
import it without pulling the config's whole model graph (and without an import cycle).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from typing import Any

import yaml
from pydantic import BaseModel, SecretStr, ValidationError

__all__ = ["ENV_RE", "REMOVED_KEYS", "field_named", "format_errors", "is_secret", "key_path",
           "kind_of", "parse_yaml", "substitute", "yaml_problem"]

# ``${VAR}`` and ``${VAR:-default}``
ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def parse_yaml(text: str) -> Any:
    """``text`` parsed; raises ``ValueError`` with :func:`yaml_problem`'s message when invalid."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(yaml_problem(exc)) from None


def yaml_problem(exc: yaml.YAMLError) -> str:
    """``line L, column C: invalid YAML: PROBLEM`` (the position when the parser knows it)."""
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    problem = getattr(exc, "problem", None) or str(exc)
    return f"{where}invalid YAML: {problem}"


def substitute(value: Any, env: Mapping[str, str], loc: tuple, problems: list[str]) -> Any:
    """``value`` with ``${VAR}`` replaced in every string; an unset variable without a default
    appends a problem naming its key path (and leaves an empty string)."""
    if isinstance(value, str):
        def repl(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env and env[name] != "":
                return env[name]
            if default is not None:
                return default
            problems.append(
                f"{key_path(loc)}: environment variable {name} is not set "
                f"(set it, or write ${{{name}:-default}})"
            )
            return ""

        return ENV_RE.sub(repl, value)
    if isinstance(value, dict):
        return {k: substitute(v, env, (*loc, k), problems) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, env, (*loc, i), problems) for i, v in enumerate(value)]
    return value


def key_path(loc: Iterable[Any]) -> str:
    """``("checks", 2, "interval")`` -> ``checks[2].interval``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def kind_of(value: Any, show: bool = True) -> str:
    """What a YAML value is, for "found ..." (``a string 'x'``, ``a list``, ``nothing (null)``)."""
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
        field = field_named(current, str(part))
        if field is None:
            return []
        ann = field.annotation
        candidates = [ann, *getattr(ann, "__args__", ())]
        current = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or name for name, f in current.model_fields.items()]  # `for`, not `for_`
    return []


def field_named(model: type[BaseModel], key: str) -> Any:
    """The field a YAML key names: by its alias (``for``) or its name."""
    fields = model.model_fields
    return fields.get(key) or next((f for f in fields.values() if f.alias == key), None)


def is_secret(model: type[BaseModel], loc: tuple) -> bool:
    """Whether ``loc`` names a SecretStr field of ``model`` (its value is never shown)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return False
        field = field_named(current, str(part))
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


def format_errors(exc: ValidationError, prefix: tuple, model: type[BaseModel]) -> list[str]:
    """One line per pydantic error: the key path under ``prefix``, what was expected, what was
    found (never a secret's value), and the nearest valid key for an unknown one."""
    problems = []
    for err in exc.errors(include_url=False):
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        path = key_path((*prefix, *loc))
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
            if is_secret(model, loc):  # an unquoted numeric password must not be echoed
                problems.append(f"{path}: {msg[0].lower() + msg[1:]}, "
                                f"found {kind_of(found, show=False)} (not shown: a secret)")
            elif "found" in msg:
                problems.append(f"{path}: {msg}")
            else:
                problems.append(f"{path}: {msg[0].lower() + msg[1:]}, found {kind_of(found)}")
    return problems
