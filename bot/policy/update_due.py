"""When a reporter is owed a progress update: the rule behind the update warning point and
the digest's "reporters without an update for too long". Pure, no I/O.

The policy promises to keep the reporter informed. While a case is assessed and not yet
fixed, its reporter should hear from us at least every `policy.update_every_days` calendar
days. "Hearing from us" is any reporter mail the bot sent for the case (receipt,
assessment, more-information request, reply, progress update, …); a case that never mailed
its reporter counts from the report's receipt. A quiet period starts with the latest such
mail; the thread is warned once per quiet period. Anonymous reports are not watched:
nothing can be sent to them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from bot.policy.lifecycle import Case, CaseState


def watched(case: Case) -> bool:
    """Whether the case's reporter is owed regular updates now."""
    return (
        case.state is CaseState.ASSESSED
        and case.reporter_address is not None
        and case.data_deleted_at is None
    )


def quiet_since(received_at: datetime, last_mail_at: datetime | None) -> datetime:
    """Since when the reporter has heard nothing from us."""
    return last_mail_at if last_mail_at is not None else received_at


def update_due(quiet_from: datetime, every_days: int, tz: ZoneInfo) -> datetime:
    """`every_days` calendar days after the quiet period began, same local time of day
    (wall-clock arithmetic in the policy's zone, so a DST change does not shift it)."""
    return (quiet_from.astimezone(tz) + timedelta(days=every_days)).astimezone(UTC)


def update_overdue(quiet_from: datetime, every_days: int, tz: ZoneInfo, now: datetime) -> bool:
    return now >= update_due(quiet_from, every_days, tz)
