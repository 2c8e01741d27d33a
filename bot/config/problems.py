"""Every configuration problem at once: `ConfigError`, and pydantic's errors as plain sentences.

A problem is a (key path, reason) pair; secret values are never shown.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from datetime import date
from typing import Any

from pydantic import BaseModel, ValidationError

from bot.config.environment import ENV_PREFIX
from bot.config.model import Config

# Key paths whose values must never be shown (in error messages, logs or reprs).
_SECRET_PATHS = frozenset(
    {
        ("matrix", "password"),
        ("imap", "password"),
        ("smtp", "password"),
        ("pgp", "passphrase"),
    }
)


class ConfigError(Exception):
    """Every problem found in a configuration, as (key path, reason) pairs."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__(self.format())

    def format(self) -> str:
        """One ``- key.path: reason`` line per problem, all of them."""
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        lines = [f"The configuration has {count} {noun}:"]
        lines.extend(f"- {where}: {why}" for where, why in self.problems)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()


def _key_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else part
    return path or "(top level)"


def _is_secret(loc: tuple[int | str, ...]) -> bool:
    return len(loc) >= 2 and (loc[0], loc[1]) in _SECRET_PATHS


def _showable(value: Any) -> bool:
    scalar = (str, int, float, bool, date, type(None))
    if isinstance(value, scalar):
        return True
    return isinstance(value, list) and all(isinstance(item, scalar) for item in value)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _field_names(loc: tuple[int | str, ...]) -> list[str]:
    """Valid keys next to the one at `loc` (for 'did you mean')."""
    model: type[BaseModel] = Config
    for part in loc[:-1]:
        annotation = model.model_fields.get(str(part))
        target = annotation.annotation if annotation is not None else None
        if not (isinstance(target, type) and issubclass(target, BaseModel)):
            return []
        model = target
    return list(model.model_fields)


def _reason(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    loc = tuple(error["loc"])
    value = error.get("input")
    if kind == "missing":
        reason = "required setting is missing"
        if _is_secret(loc):
            env = ENV_PREFIX + "__".join(str(part).upper() for part in loc)
            reason += f" (put it here or, better, in the environment variable {env})"
        return reason
    if kind == "extra_forbidden":
        # Never show the value: a misspelt "pasword" still holds a password.
        close = difflib.get_close_matches(str(loc[-1]), _field_names(loc), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"unknown setting{hint}"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        if value is None:
            return "this section is empty; it needs its settings underneath"
        return "must be a section with settings underneath, not a single value"
    if kind == "value_error":
        reason = str(ctx.get("error", error["msg"]))
    elif kind in ("int_parsing", "int_type", "int_from_float"):
        reason = "must be a whole number"
    elif kind == "greater_than":
        reason = f"must be greater than {ctx.get('gt')}"
    elif kind == "greater_than_equal":
        reason = f"must be at least {ctx.get('ge')}"
    elif kind == "less_than_equal":
        reason = f"must be at most {ctx.get('le')}"
    elif kind == "literal_error":
        reason = f"must be one of {ctx.get('expected')}"
    elif kind == "string_type":
        reason = "must be text"
        if isinstance(value, int | float):
            reason += "; put the value in quotes"
    elif kind == "list_type":
        reason = 'must be a list, like ["a", "b"] (or [] for none)'
    else:
        reason = str(error["msg"])
    if not _is_secret(loc) and _showable(value):
        reason += f" (got {_shown(value)})"
    return reason


def problems_from(exc: ValidationError) -> list[tuple[str, str]]:
    return [(_key_path(tuple(err["loc"])), _reason(err)) for err in exc.errors()]
