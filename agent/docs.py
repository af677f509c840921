"""Generates the README's config reference and metric catalog from the code.

The README holds the generated text between markers; ``python -m agent.docs --write``
refreshes it and a test fails when it is stale, so the docs cannot drift from the models
and the metadata.csv files.
"""

from __future__ import annotations

import argparse
import re
import sys
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

__all__ = ["config_reference", "exit_codes", "metric_catalog", "render_readme"]

MARKERS = {"config-reference": "config_reference", "metric-catalog": "metric_catalog",
           "exit-codes": "exit_codes"}


def _type_name(ann: Any) -> str:
    origin = typing.get_origin(ann)
    args = typing.get_args(ann)
    if origin is typing.Annotated:
        base = args[0]
        if base is float and any("parse_duration" in repr(a) for a in args[1:]):
            return "duration"
        return _type_name(base)
    if origin in (typing.Union, types.UnionType):
        parts = [_type_name(a) for a in args if a is not type(None)]
        return " \\| ".join(parts) + (" \\| null" if type(None) in args else "")
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin in (list, tuple, set, frozenset):
        inner = [a for a in args if a is not Ellipsis]
        return f"list of {_type_name(inner[0])}" if inner else "list"
    if origin is dict:
        return f"map of {_type_name(args[0])} to {_type_name(args[1])}" if args else "map"
    if isinstance(ann, type):
        if issubclass(ann, BaseModel):
            return "section"
        return {"str": "string", "int": "integer", "float": "number", "bool": "boolean",
                "SecretStr": "secret string"}.get(ann.__name__, ann.__name__)
    return str(ann).replace("typing.", "")


def _is_duration(field: FieldInfo) -> bool:
    return any("parse_duration" in repr(m) for m in field.metadata)


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        try:
            value = field.default_factory()  # type: ignore[call-arg]
        except TypeError:
            return ""
        if isinstance(value, BaseModel):
            return ""
        if callable(field.default_factory) and getattr(field.default_factory, "__name__", "") == "gethostname":
            return "the host name"
    else:
        value = field.default
    if value is PydanticUndefined:
        return "**required**"
    if value is None:
        return ""
    if isinstance(value, float) and _is_duration(field):
        from agent.durations import format_duration

        return f"`{format_duration(value)}`"
    return f"`{value!r}`" if not isinstance(value, str) else f"`{value}`"


def _sub_models(ann: Any) -> list[type[BaseModel]]:
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return [ann]
    found = []
    for arg in typing.get_args(ann):
        found.extend(_sub_models(arg))
    return found


def _model_table(model: type[BaseModel], prefix: str, out: list[str], seen: set[Any]) -> None:
    rows = []
    nested: list[tuple[str, type[BaseModel]]] = []
    for name, field in model.model_fields.items():
        name = field.alias or name  # the key as written in YAML (`for`, `continue`)
        desc = (field.description or "").replace("|", "\\|").replace("\n", " ")
        kind = "duration" if _is_duration(field) else _type_name(field.annotation)
        rows.append(f"| `{prefix}{name}` | {kind} | {_default(field)} | {desc} |")
        for sub in _sub_models(field.annotation):
            if sub not in seen:
                nested.append((f"{prefix}{name}.", sub))
    out.append("| key | type | default | meaning |")
    out.append("|---|---|---|---|")
    out.extend(rows)
    out.append("")
    for sub_prefix, sub in nested:
        seen.add(sub)
        out.append(f"**`{sub_prefix.rstrip('.')}`**" + (f" — {_first_line(sub.__doc__)}" if sub.__doc__ else ""))
        out.append("")
        _model_table(sub, sub_prefix, out, seen)


def _first_line(doc: str | None) -> str:
    return (doc or "").strip().splitlines()[0] if doc else ""


def config_reference() -> str:
    """Markdown tables for every config section and every installed check type."""
    from agent.check import InstanceConfig
    from agent.config import AgentConfig
    from agent.plugins import check_types

    out: list[str] = []
    seen: set[Any] = {InstanceConfig}
    for name, field in AgentConfig.model_fields.items():
        if name == "checks":
            continue
        subs = _sub_models(field.annotation)
        out.append(f"### `{name}`")
        out.append("")
        if subs and subs[0].__doc__:
            out.append(_first_line(subs[0].__doc__))
            out.append("")
        if subs:
            seen.add(subs[0])
            _model_table(subs[0], f"{name}.", out, seen)
        else:
            out.append(f"{_type_name(field.annotation)}: {field.description or ''}")
            out.append("")
    out.append("### `checks[]` — settings every check instance has")
    out.append("")
    _model_table(InstanceConfig, "", out, seen)
    base = set(InstanceConfig.model_fields)
    for type_name, cls in sorted(check_types().items()):
        extra = {k: v for k, v in cls.Config.model_fields.items() if k not in base}
        out.append(f"### `checks[]` with `type: {type_name}`")
        out.append("")
        doc = _first_line(cls.Config.__doc__) if cls.Config is not InstanceConfig else ""
        if doc:
            out.append(doc)
            out.append("")
        if not extra:
            out.append("No settings beyond the common ones.")
            out.append("")
            continue
        sub = type(f"{cls.__name__}Extra", (BaseModel,), {"__annotations__": {}})
        sub.model_fields = extra  # type: ignore[misc]
        _model_table(sub, "", out, seen)
    return "\n".join(out).rstrip() + "\n"


def metric_catalog() -> str:
    """Markdown table of every metric in the catalog."""
    from agent.catalog import load_catalog

    out = ["| metric | Prometheus name | kind | unit | tags | facts | emitted by | description |",
           "|---|---|---|---|---|---|---|---|"]
    for spec in load_catalog():
        tags = " ".join(f"`{t}`" for t in spec.tags)
        facts = " ".join(f"`{t}`" for t in spec.facts)
        check = "every check" if spec.check == "*" else f"`{spec.check}`"
        out.append(f"| `{spec.name}` | `{spec.prometheus}` | {spec.kind.value} | {spec.unit} | "
                   f"{tags} | {facts} | {check} | {spec.description} |")
    return "\n".join(out) + "\n"


def exit_codes() -> str:
    """Markdown table of the command's exit codes (agent/cli/exitcodes.py)."""
    from agent.cli.exitcodes import TABLE

    out = ["| exit code | meaning |", "|---|---|"]
    out += [f"| {code} | {meaning} |" for code, meaning in TABLE]
    return "\n".join(out) + "\n"


def render_readme(text: str) -> str:
    """``text`` with every generated section replaced by what the code says now."""
    for marker, func in MARKERS.items():
        pattern = re.compile(
            rf"(<!-- BEGIN {marker} -->\n)(.*?)(<!-- END {marker} -->)", re.DOTALL)
        if not pattern.search(text):
            raise ValueError(f"README has no <!-- BEGIN {marker} --> ... <!-- END {marker} --> section")
        body = globals()[func]()
        text = pattern.sub(lambda m: m.group(1) + body + m.group(3), text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Refresh the README's generated sections.")
    parser.add_argument("--write", action="store_true", help="rewrite README.md in place")
    parser.add_argument("--readme", default=str(Path(__file__).resolve().parents[1] / "README.md"))
    args = parser.parse_args(argv)
    path = Path(args.readme)
    old = path.read_text(encoding="utf-8")
    new = render_readme(old)
    if args.write:
        path.write_text(new, encoding="utf-8")
        return 0
    if new != old:
        print(f"{path} is stale: run python -m agent.docs --write", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
