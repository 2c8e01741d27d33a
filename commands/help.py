"""!help: generated from the command declarations, so it cannot drift from them."""

from __future__ import annotations

from commands.context import CommandContext
from commands.registry import Arg, CommandGroup, Role

group = CommandGroup()


@group.command(
    "help",
    summary="list the commands, or show one command's usage",
    args=[Arg("command", "a command name, e.g. assess", optional=True)],
    role=Role.ANYONE,
    needs_case=False,
)
async def help_command(ctx: CommandContext, command: str | None) -> str:
    return ctx.registry.help_text(command)
