"""Chat commands: one module per group, gathered into one registry here."""

from commands import case, deadlines, help, mail, replies
from commands.registry import Registry


def build_registry() -> Registry:
    return Registry([help.group, case.group, mail.group, deadlines.group, replies.group])
