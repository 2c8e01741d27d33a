"""Chat commands: one module per group, gathered into one registry here.

`!help` and the README's table list the commands in this order.
"""

from commands import (
    case,
    deadlines,
    help,
    keys,
    mail,
    outcomes,
    promises,
    replies,
    retention,
    unsorted,
    working,
)
from commands.registry import Registry

GROUPS = [
    help.group,
    case.group,
    mail.group,
    deadlines.group,
    working.group,
    replies.group,
    outcomes.group,
    retention.group,
    promises.group,
    keys.group,
    unsorted.group,
]


def build_registry() -> Registry:
    return Registry(GROUPS)
