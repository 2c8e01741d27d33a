"""The README's command table, generated from the registry, so it cannot drift from `!help`.

    python -m commands.readme_table            # print the table
    python -m commands.readme_table --write    # rewrite it in README.md, between the markers
    python -m commands.readme_table --check    # exit 1 when README.md's table is out of date

`tests/unit/test_readme_table.py` fails when README.md differs from the registry.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from commands import build_registry
from commands.registry import Registry, who_may_run

BEGIN = "<!-- commands:begin (generated: python -m commands.readme_table --write) -->"
END = "<!-- commands:end -->"
README = Path(__file__).resolve().parent.parent / "README.md"
FIX = "python -m commands.readme_table --write"


def _cell(text: str) -> str:
    # A pipe ends a cell in GitHub's tables, also inside a code span.
    return " ".join(text.split()).replace("|", "\\|")


def render_table(registry: Registry) -> str:
    """The Markdown table: command, what it does, who may run it, what the reporter gets."""
    lines = [
        "| command | what it does | who may run it | what the reporter gets |",
        "| --- | --- | --- | --- |",
    ]
    for command in registry.all():
        lines.append(
            f"| `{_cell(command.usage())}` | {_cell(command.summary)} | "
            f"{_cell(who_may_run(command))} | {_cell(command.reporter_gets)} |"
        )
    return "\n".join(lines)


def replace_section(readme: str, table: str) -> str:
    """`readme` with the text between the markers replaced by `table`."""
    start, end = readme.find(BEGIN), readme.find(END)
    if start < 0 or end < start:
        raise ValueError(f"the README has no {BEGIN!r} … {END!r} section")
    return readme[: start + len(BEGIN)] + "\n" + table + "\n" + readme[end:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m commands.readme_table", description=__doc__)
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write", action="store_true", help="rewrite the README's table")
    action.add_argument("--check", action="store_true", help="exit 1 when it is out of date")
    parser.add_argument("--readme", type=Path, default=README)
    args = parser.parse_args(argv)
    table = render_table(build_registry())
    if not (args.write or args.check):
        print(table)
        return 0
    current = args.readme.read_text(encoding="utf-8")
    wanted = replace_section(current, table)
    if args.check:
        if wanted != current:
            print(f"{args.readme}: the command table is out of date; run {FIX}", file=sys.stderr)
            return 1
        return 0
    if wanted != current:
        args.readme.write_text(wanted, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
