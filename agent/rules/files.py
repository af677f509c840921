"""``rule_files:``: rule packs kept in their own YAML files, included by glob.

Each file holds a mapping with a ``rules:`` list in the same schema as the main config.
Globs are relative to the config file's folder. A glob that matches nothing is an error
(a mistyped path would otherwise leave every rule of the pack silently off), and each
problem names the file and the key path (``gpu.yaml: rules[3].window``).
"""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import ValidationError

from agent.rules.config import RuleConfig

if TYPE_CHECKING:
    from agent.config import AgentConfig

__all__ = ["include_rule_files", "load_rule_file"]


def load_rule_file(path: Path, problems: list[str], env: Any = None) -> list[RuleConfig]:
    """Validate one rule file; appends every problem (file and key path) to ``problems``."""
    from agent.config import _format_errors, _kind, _substitute

    source = str(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        problems.append(f"{source}: cannot read the file: {exc.strerror or exc}")
        return []
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problems.append(f"{source}: {where}invalid YAML: {getattr(exc, 'problem', None) or exc}")
        return []
    if not isinstance(raw, dict) or set(raw) - {"rules"}:
        found = _kind(raw) if not isinstance(raw, dict) else f"keys {sorted(map(str, raw))}"
        problems.append(f"{source}: expected a mapping with one key `rules:` (a list), found {found}")
        return []
    sub: list[str] = []
    raw = _substitute(raw, os.environ if env is None else env, (), sub)
    items = raw.get("rules") or []
    if not isinstance(items, list):
        problems.append(f"{source}: rules: expected a list of rules, found {_kind(items)}")
        return []
    rules = []
    for i, item in enumerate(items):
        try:
            rules.append(RuleConfig.model_validate(item))
        except ValidationError as exc:
            sub.extend(_format_errors(exc, ("rules", i), RuleConfig))
    problems.extend(f"{source}: {p}" for p in sub)
    return rules


def include_rule_files(config: AgentConfig, base_dir: Path | None, problems: list[str],
                       env: Any = None) -> AgentConfig:
    """``config`` with the rules of its ``rule_files`` appended, and duplicates reported."""
    rules = list(config.rules)
    origin = [f"rules[{i}]" for i in range(len(rules))]
    base = base_dir or Path.cwd()
    for n, pattern in enumerate(config.rule_files):
        full = pattern if os.path.isabs(pattern) else str(base / pattern)
        paths = sorted(glob.glob(os.path.expanduser(full)))
        if not paths:
            problems.append(f"rule_files[{n}]: {pattern!r} matches no file (looked in {base})")
            continue
        for path in paths:
            found = load_rule_file(Path(path), problems, env)
            origin.extend(f"{path}: rules[{i}]" for i in range(len(found)))
            rules.extend(found)
    seen: dict[tuple, int] = {}
    for i, rule in enumerate(rules):
        key = (rule.alert, rule.severity, tuple(sorted(rule.labels.items())),
               tuple(sorted(rule.where.items())))
        if key in seen:
            problems.append(f"{origin[i]}.alert: {rule.alert!r} repeats {origin[seen[key]]} with the "
                            "same severity, labels and `where`; their alerts would collide "
                            "(change one of them)")
        else:
            seen[key] = i
    if len(rules) == len(config.rules):
        return config
    return config.model_copy(update={"rules": tuple(rules)})
