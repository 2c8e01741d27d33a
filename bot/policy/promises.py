"""The promises the policy makes to a reporter, declared once: storage, the status card, the
warnings, the digest and the commands all iterate `PROMISES` instead of naming each one.

Adding a promise: one `Promise` here, its two columns in a migration (and the partial index
the digest reads, as 0002_sla.sql has for these three), the two fields on
`bot.policy.lifecycle.Case`, and the config key that sizes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

Counting = Literal["working", "calendar"]


@dataclass(frozen=True)
class Promise:
    """One promise: what the team calls it, how it is counted, where its times are kept."""

    name: str  # as stored (sla_warnings.promise) and shown in lists: "acknowledge"
    label: str  # as the team reads it on the status card and in warnings: "Acknowledge"
    command: str  # the command that keeps it: "!ack"
    due_field: str  # Case field and cases column with the deadline
    done_field: str  # Case field and cases column with when it was kept (NULL: not yet)
    size_key: str  # the `policy` config key with its number of days
    default_days: int
    counting: Counting  # working days in business hours, or calendar days
    # Its clock is the fix clock (bot/policy/fix_clock.py): it can be paused and extended.
    pausable: bool = False

    def due(self, case: object) -> datetime:
        value = getattr(case, self.due_field)
        assert isinstance(value, datetime)
        return value

    def done(self, case: object) -> datetime | None:
        value = getattr(case, self.done_field)
        assert value is None or isinstance(value, datetime)
        return value


ACKNOWLEDGE = Promise(
    name="acknowledge",
    label="Acknowledge",
    command="!ack",
    due_field="acknowledge_due",
    done_field="acknowledged_at",
    size_key="acknowledge_within_working_days",
    default_days=2,
    counting="working",
)
ASSESS = Promise(
    name="assess",
    label="Assess",
    command="!assess",
    due_field="assess_due",
    done_field="assessed_at",
    size_key="assess_within_working_days",
    default_days=5,
    counting="working",
)
FIX = Promise(
    name="fix",
    label="Fix",
    command="!fixed",
    due_field="fix_due",
    done_field="fixed_at",
    size_key="fix_within_days",
    default_days=90,
    counting="calendar",
    pausable=True,
)

# In the order a case keeps them; lists and cards show them in this order.
PROMISES: tuple[Promise, ...] = (ACKNOWLEDGE, ASSESS, FIX)
BY_NAME: Mapping[str, Promise] = {promise.name: promise for promise in PROMISES}


def promise_days(policy: object) -> dict[str, int]:
    """Days per promise from the `policy` config section (its keys named by `size_key`)."""
    return {
        promise.name: int(getattr(policy, promise.size_key, promise.default_days))
        for promise in PROMISES
    }
