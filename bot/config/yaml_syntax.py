"""Reading the configuration file's YAML: YAML 1.2 scalars, duplicate keys, syntax errors.

PyYAML's defaults (YAML 1.1) turn times, country codes and passwords into numbers and
booleans; the loader here keeps them text and says where a key is set twice.
"""

from __future__ import annotations

import re
from typing import Any

import yaml


class _ConfigLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 scalars and duplicate-key detection.

    PyYAML follows YAML 1.1, where ``17:00`` is the number 1020 (base 60), ``NO`` (Norway)
    is ``False`` and ``0123`` is octal; all three are real traps in this file (times,
    country codes, passwords). Only plain decimal integers, ``true``/``false`` and
    ``null`` are implicit here; everything else stays text.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        # PyYAML silently keeps the last of two equal keys; a config with the same key twice
        # is almost always a copy-paste mistake, so say where.
        seen: dict[Any, yaml.Node] = {}
        for key_node, _value_node in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                first = seen[key].start_mark.line + 1
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key!r} (first set on line {first})",
                    key_node.start_mark,
                )
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


_ConfigLoader.yaml_implicit_resolvers = {
    first: [
        (tag, regexp)
        for tag, regexp in resolvers
        if tag
        not in (
            "tag:yaml.org,2002:bool",
            "tag:yaml.org,2002:int",
            "tag:yaml.org,2002:float",
            "tag:yaml.org,2002:timestamp",
        )
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)
_ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$"),
    list("-+0123456789"),
)


def yaml_load(text: str) -> Any:
    return yaml.load(text, Loader=_ConfigLoader)  # noqa: S506 - a SafeLoader subclass


def yaml_problem(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        what = " ".join(part for part in (exc.context, exc.problem) if part)
        return f"YAML syntax error at {where}{what or 'invalid YAML'}"
    return f"YAML syntax error: {exc}"
