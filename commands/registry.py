"""Declarative chat commands: one decorator per command declares its arguments, the role it
needs and its help, and from that one declaration come parsing, usage errors and `!help`.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.matrix.posts import Post

PREFIX = "!"


class Role(IntEnum):
    """Who may run a command. A higher role may do everything a lower one may."""

    ANYONE = 0
    TEAM = 1
    MANAGER = 2


class CommandError(Exception):
    """A problem to show the sender as is (their mistake or the case's state, not a bug)."""


class UsageError(CommandError):
    pass


@dataclass(frozen=True)
class Arg:
    """One positional argument.

    `choices` restricts the word; `pattern` makes an optional argument match only words of
    that shape (so `[CVSS vector]` can be left out before free text); `rest` takes all the
    remaining text.
    """

    name: str
    help: str = ""
    choices: tuple[str, ...] | None = None
    pattern: re.Pattern[str] | None = None
    optional: bool = False
    rest: bool = False
    label: str | None = None  # how usage shows it, when not the name ("CVSS vector")

    def usage(self) -> str:
        label = "|".join(self.choices) if self.choices else (self.label or self.name)
        return f"[{label}]" if self.optional else f"<{label}>"


# A handler returns its answer: text, or a Post (bot.matrix.posts) that mentions someone.
Handler = Callable[..., Awaitable["str | Post"]]


@dataclass(frozen=True)
class Command:
    name: str
    summary: str
    args: tuple[Arg, ...]
    role: Role
    needs_case: bool
    handler: Handler
    details: str = ""
    # What the reporter gets when the command succeeds, for !help and the README's table.
    reporter_gets: str = "nothing"
    # Steps that need a higher role than the command: first argument's value -> role
    # (`!reward approve` is for managers while `!reward propose` is for the team).
    step_roles: tuple[tuple[str, Role], ...] = ()

    def role_for(self, values: dict[str, str | None]) -> Role:
        """The role this invocation needs, once its arguments are parsed."""
        if not self.step_roles or not self.args:
            return self.role
        first = values.get(self.args[0].name)
        return max([self.role, *(role for step, role in self.step_roles if step == first)])

    # The dispatcher looks up the reporter's PGP key (gpg) before the transaction and hands
    # it over as ctx.reporter_key: handlers never call gpg themselves.
    needs_reporter_key: bool = False

    def usage(self) -> str:
        parts = [PREFIX + self.name]
        if self.needs_case:
            parts.append("[CVD-YYYY-NNNN]")
        parts.extend(arg.usage() for arg in self.args)
        return " ".join(parts)

    def takes_case_id_first(self, word: str) -> bool:
        """Whether `word`, a case ID, fits the first argument (as `!duplicate <CVD-ID>`), so
        that inside another case's thread it is read as that argument."""
        pattern = self.args[0].pattern if self.args else None
        return pattern is not None and pattern.fullmatch(word) is not None

    def parse(self, words: str) -> dict[str, str | None]:
        """Bind the text after the command name to the declared arguments."""
        values: dict[str, str | None] = {}
        remaining = words.strip()
        for arg in self.args:
            if arg.rest:
                values[arg.name] = remaining or None
                remaining = ""
                if values[arg.name] is None and not arg.optional:
                    raise UsageError(f"missing {arg.usage()}")
                continue
            word, after = first_word(remaining)
            if not word:
                if not arg.optional:
                    raise UsageError(f"missing {arg.usage()}")
                values[arg.name] = None
                continue
            if arg.pattern is not None and not arg.pattern.fullmatch(word):
                if not arg.optional:
                    raise UsageError(f"{word!r} is not a valid {arg.name}")
                values[arg.name] = None
                continue
            if arg.choices is not None and word.lower() not in arg.choices:
                if not arg.optional:
                    raise UsageError(f"{arg.name} must be one of {', '.join(arg.choices)}")
                values[arg.name] = None
                continue
            values[arg.name] = word.lower() if arg.choices else word
            remaining = after.strip()
        if remaining:
            raise UsageError(f"unexpected {remaining!r}")
        return values


@dataclass
class CommandGroup:
    """The commands one module declares; `build_registry` gathers the groups."""

    commands: list[Command] = field(default_factory=list)

    def command(
        self,
        name: str,
        *,
        summary: str,
        args: Iterable[Arg] = (),
        role: Role = Role.TEAM,
        needs_case: bool = True,
        details: str = "",
        reporter_gets: str = "nothing",
        step_roles: dict[str, Role] | None = None,
        needs_reporter_key: bool = False,
    ) -> Callable[[Handler], Handler]:
        def decorate(handler: Handler) -> Handler:
            self.commands.append(
                Command(
                    name,
                    summary,
                    tuple(args),
                    role,
                    needs_case,
                    handler,
                    details,
                    reporter_gets,
                    tuple((step_roles or {}).items()),
                    needs_reporter_key,
                )
            )
            return handler

        return decorate


class Registry:
    def __init__(self, groups: Iterable[CommandGroup]) -> None:
        self._commands: dict[str, Command] = {}
        for group in groups:
            for command in group.commands:
                if command.name in self._commands:
                    raise ValueError(f"command {command.name} declared twice")
                self._commands[command.name] = command

    def get(self, name: str) -> Command | None:
        return self._commands.get(name.lower())

    def all(self) -> list[Command]:
        return list(self._commands.values())

    def help_text(self, name: str | None = None) -> str:
        if name:
            command = self.get(name.removeprefix(PREFIX))
            if command is None:
                raise UsageError(f"there is no command {PREFIX}{name.removeprefix(PREFIX)}")
            lines = [f"{command.usage()}", command.summary]
            lines.extend(f"  {arg.usage()}: {arg.help}" for arg in command.args if arg.help)
            if command.details:
                lines.append(command.details)
            lines.append(f"Who may run it: {who_may_run(command)}.")
            lines.append(f"What the reporter gets: {command.reporter_gets}.")
            return "\n".join(lines)
        lines = ["Commands (in a case thread the case is implied; elsewhere give its ID first):"]
        lines.extend(f"{command.usage()} — {command.summary}" for command in self.all())
        lines.append(f"{PREFIX}help <command> shows one command's usage.")
        return "\n".join(lines)


def split_command(body: str) -> tuple[str, str] | None:
    """("ack", "rest of text") for a message that is a command, else None."""
    text = body.strip()
    if not text.startswith(PREFIX) or len(text) < 2:
        return None
    # The command word ends at any whitespace (a newline or tab too); everything after it,
    # all lines, is the argument text: "!fixed\nOutput encoding added".
    name, rest = first_word(text[1:])
    if not re.fullmatch(r"[a-zA-Z][a-zA-Z0-9_-]*", name):
        return None
    return name.lower(), rest


def first_word(text: str) -> tuple[str, str]:
    """(first word, the rest stripped) of `text`, split at any whitespace."""
    parts = text.strip().split(maxsplit=1)
    if not parts:
        return "", ""
    return parts[0], (parts[1].strip() if len(parts) > 1 else "")


def who_may_run(command: Command) -> str:
    """The command's role and its steps' higher roles, for `!help` and the README's table, so
    that both say "approve/decline: managers only" where the dispatcher enforces it."""
    steps: dict[Role, list[str]] = {}
    for step, role in command.step_roles:
        if role != command.role:
            steps.setdefault(role, []).append(step)
    parts = [role_text(command.role)]
    parts.extend(f"{'/'.join(names)}: {role_text(role)} only" for role, names in steps.items())
    return "; ".join(parts)


def role_text(role: Role) -> str:
    return {
        Role.ANYONE: "anyone in the room",
        Role.TEAM: "the CVD team and managers",
        Role.MANAGER: "managers",
    }[role]
