"""``CVDBOT_*`` environment overrides: ``CVDBOT_SECTION__KEY`` sets ``section.key``.

Unknown names are problems (with a "did you mean"), not silently ignored.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, SecretStr

from bot.config.model import Config
from bot.config.yaml_syntax import yaml_load

ENV_PREFIX = "CVDBOT_"
# Variables with the prefix that are not settings: crash points for the fault-injection
# tests (bot/failpoints.py) and the test harness's keep-files switch.
NON_CONFIG_ENV = frozenset({"CVDBOT_FAILPOINTS", "CVDBOT_TEST_KEEP"})


def _section_models() -> dict[str, type[BaseModel]]:
    sections: dict[str, type[BaseModel]] = {}
    for name, info in Config.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            sections[name] = annotation
    return sections


def _annotation_kind(annotation: Any) -> Literal["secret", "list", "text", "other"]:
    """How an environment string for a field of this type is turned into a value."""
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        kinds = {_annotation_kind(arg) for arg in args if arg is not type(None)}
        for kind in ("secret", "list", "text"):
            if kind in kinds:
                return kind
        return "other"
    if origin is typing.Annotated:
        return _annotation_kind(args[0])
    if annotation is SecretStr:
        return "secret"
    if origin is list:
        return "list"
    if annotation in (str, Path) or origin is Literal:
        return "text"
    return "other"


def _env_suggestion(key: str, sections: Mapping[str, type[BaseModel]]) -> str:
    candidates = [
        f"{ENV_PREFIX}{section.upper()}__{field.upper()}"
        for section, model in sections.items()
        for field in model.model_fields
    ]
    close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.8)
    return f"; did you mean {close[0]}?" if close else ""


def _env_value(raw: str, kind: str) -> tuple[Any, str | None]:
    """Turn one environment string into a config value, or explain why it can't be."""
    if kind == "secret":
        # A password may legitimately look like YAML (start with a quote, be all digits).
        return raw, None
    try:
        parsed = yaml_load(raw)
    except yaml.YAMLError as exc:
        if kind == "list":
            reason = getattr(exc, "problem", None) or "syntax error"
            return None, f'must be a YAML list like ["@alice:example.org"] ({reason})'
        # Text such as "@cvdbot:example.org" or "!room:x" is not valid YAML; take it as is.
        return raw, None
    if kind == "text":
        # Quoted YAML strings lose their quotes; anything else ("#x", "123") stays literal.
        return (parsed if isinstance(parsed, str) else raw), None
    return parsed, None


def apply_environment(data: dict[str, Any], environ: Mapping[str, str]) -> list[tuple[str, str]]:
    """Apply CVDBOT_* overrides to `data` in place; return problems with unknown names."""
    problems: list[tuple[str, str]] = []
    sections = _section_models()
    for key in sorted(environ):
        if not key.startswith(ENV_PREFIX) or key in NON_CONFIG_ENV:
            continue
        parts = key[len(ENV_PREFIX) :].lower().split("__")
        dotted = ".".join(parts)
        if len(parts) == 1 and parts[0] in sections:
            problems.append(
                (
                    dotted,
                    f"environment variable {key} names a whole section; set its keys one "
                    f"by one, e.g. {key}__{next(iter(sections[parts[0]].model_fields)).upper()}",
                )
            )
            continue
        model = sections.get(parts[0]) if len(parts) == 2 else None
        if model is None or parts[1] not in model.model_fields:
            problems.append(
                (
                    dotted,
                    f"environment variable {key} does not name a setting"
                    f"{_env_suggestion(key, sections)}",
                )
            )
            continue
        section, field = parts
        kind = _annotation_kind(model.model_fields[field].annotation)
        value, problem = _env_value(environ[key], kind)
        if problem is not None:
            problems.append((dotted, f"from environment variable {key}: {problem}"))
            continue
        target = data.get(section)
        if target is None:
            target = data[section] = {}
        if isinstance(target, dict):
            target[field] = value
        # A section that is not a mapping in the file is reported by validation anyway.
    return problems
