"""``rule_files:``: rule packs kept in their own YAML files, included by glob or by name.

Each file holds a mapping with a ``rules:`` list in the same schema as the main config.
Globs are relative to the config file's folder. ``builtin:NAME`` names a pack shipped inside
the package (``agent/data/rules/NAME.yaml``: agent, airflow, endpoints, gpu), so a config
reaches them from any install (a wheel in site-packages, the image) without knowing where
Python put them; ``builtin:*`` is every pack. A glob or a name that matches nothing is an
error (a mistyped path would otherwise leave every rule of the pack silently off), and each
problem names the file and the key path (``gpu.yaml: rules[3].window``).
"""

from __future__ import annotations

import difflib
import fnmatch
import glob
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from pydantic import ValidationError

from agent.rules.config import RuleConfig
from agent.yamlconf import format_errors, kind_of, parse_yaml, substitute

__all__ = ["BUILTIN_PREFIX", "BUILTIN_RULES", "builtin_packs", "include_rule_files",
           "load_rule_file", "resolve_rule_files"]

BUILTIN_PREFIX = "builtin:"
BUILTIN_RULES = Path(__file__).resolve().parent.parent / "data" / "rules"


def builtin_packs() -> dict[str, Path]:
    """The rule packs shipped in the package, by name (``agent`` -> ``.../agent.yaml``)."""
    return {p.stem: p for p in sorted(BUILTIN_RULES.glob("*.yaml"))}


def resolve_rule_files(patterns: tuple[str, ...] | list[str], base_dir: Path | None,
                       problems: list[str]) -> list[tuple[str, Path]]:
    """``(pattern, file)`` for every file the ``rule_files`` entries name, in order.

    A ``builtin:`` entry matches pack names (a glob such as ``builtin:*`` works too); any
    other entry is a path glob relative to ``base_dir``. Entries that match nothing are
    appended to ``problems``.
    """
    return [(pattern, path) for n, pattern in enumerate(patterns)
            for path in _resolve(n, pattern, base_dir or Path.cwd(), problems)]


def _resolve(n: int, pattern: str, base: Path, problems: list[str]) -> list[Path]:
    if pattern.startswith(BUILTIN_PREFIX):
        packs = builtin_packs()
        name = pattern[len(BUILTIN_PREFIX):].strip()
        hits = [packs[k] for k in sorted(packs) if fnmatch.fnmatchcase(k, name)]
        if not hits:
            close = difflib.get_close_matches(name, list(packs), n=1)
            hint = f"; did you mean '{BUILTIN_PREFIX}{close[0]}'?" if close else ""
            problems.append(f"rule_files[{n}]: {pattern!r} is not a builtin rule pack "
                            f"(have: {', '.join(BUILTIN_PREFIX + k for k in packs)}{hint})")
        return hits
    full = pattern if os.path.isabs(pattern) else str(base / pattern)
    paths = sorted(glob.glob(os.path.expanduser(full)))
    if not paths:
        hint = (f"; the shipped packs are named {BUILTIN_PREFIX}NAME"
                if "examples/rules" in pattern else "")
        problems.append(f"rule_files[{n}]: {pattern!r} matches no file (looked in {base}){hint}")
    return [Path(p) for p in paths]


def load_rule_file(path: Path, problems: list[str],
                   env: Mapping[str, str] | None = None) -> list[RuleConfig]:
    """Validate one rule file; appends every problem (file and key path) to ``problems``."""
    source = str(path)
    try:
        raw = parse_yaml(path.read_text(encoding="utf-8"))
    except OSError as exc:
        problems.append(f"{source}: cannot read the file: {exc.strerror or exc}")
        return []
    except ValueError as exc:
        problems.append(f"{source}: {exc}")
        return []
    if not isinstance(raw, dict) or set(raw) - {"rules"}:
        found = kind_of(raw) if not isinstance(raw, dict) else f"keys {sorted(map(str, raw))}"
        problems.append(f"{source}: expected a mapping with one key `rules:` (a list), found {found}")
        return []
    sub: list[str] = []
    raw = substitute(raw, os.environ if env is None else env, (), sub)
    items = raw.get("rules") or []
    if not isinstance(items, list):
        problems.append(f"{source}: rules: expected a list of rules, found {kind_of(items)}")
        return []
    rules = []
    for i, item in enumerate(items):
        try:
            rules.append(RuleConfig.model_validate(item))
        except ValidationError as exc:
            sub.extend(format_errors(exc, ("rules", i), RuleConfig))
    problems.extend(f"{source}: {p}" for p in sub)
    return rules


def include_rule_files(inline: Sequence[RuleConfig], patterns: Sequence[str],
                       base_dir: Path | None, problems: list[str],
                       env: Mapping[str, str] | None = None) -> tuple[RuleConfig, ...]:
    """The ``inline`` rules (a config's ``rules:``) then those of the files its ``rule_files``
    ``patterns`` name; every problem, duplicates across files included, goes to ``problems``."""
    rules = list(inline)
    origin = [f"rules[{i}]" for i in range(len(rules))]
    for n, pattern in enumerate(patterns):  # each file's problems after its pattern's
        for path in _resolve(n, pattern, base_dir or Path.cwd(), problems):
            found = load_rule_file(path, problems, env)
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
    return tuple(rules)
