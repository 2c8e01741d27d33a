"""Chat commands: one module per group, gathered into one registry here."""

from commands import case, deadlines, help, keys, mail, unsorted
from commands.registry import Registry


def build_registry() -> Registry:
    return Registry(
        [help.group, case.group, mail.group, keys.group, unsorted.group, deadlines.group]
    )
