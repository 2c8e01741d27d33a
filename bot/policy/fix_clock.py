"""The fix promise's clock as pure functions: pause, resume, extend, and the fix deadline as it
stands. Commands and the SLA watch both call these; storage only loads and saves the fields.

The rule: time paused does not count. While paused the stored deadline stays put and the
effective deadline moves later with every moment paused; `resume` writes that moved deadline.
An extension adds calendar days to the stored deadline, keeping its local time of day, and
works while paused as well.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from bot.policy.lifecycle import Case

# An extension is agreed with the reporter for a concrete plan, not open-ended.
MAX_EXTEND_DAYS = 365


@dataclass(frozen=True)
class FixClock:
    """The fix promise's clock: paused (since when, why), total paused time, extensions."""

    paused_at: datetime | None = None
    pause_reason: str | None = None
    paused_seconds: int = 0
    extension_days: int = 0

    @property
    def paused(self) -> bool:
        return self.paused_at is not None


class FixClockError(Exception):
    """A clock change the rules refuse; the message can be shown to the team as is."""


class AlreadyPaused(FixClockError):
    def __init__(self, case_id: str, since: datetime, reason: str | None) -> None:
        super().__init__(f"the fix clock of {case_id} is already paused")
        self.since = since
        self.reason = reason


@dataclass(frozen=True)
class Resumed:
    """What `resume` gives: the case with its moved deadline, the clock, the time paused."""

    case: Case
    clock: FixClock
    paused_for: timedelta


def check_open(case: Case) -> None:
    """A case no longer worked (fixed, an outcome, closed) has stopped its fix clock: pause,
    resume and extend are refused."""
    if not case.state.clocks_run:
        raise FixClockError(f"{case.id} is {case.state_text}: its fix clock has stopped.")


def pause(case: Case, clock: FixClock, at: datetime, reason: str) -> FixClock:
    check_open(case)
    if clock.paused_at is not None:
        raise AlreadyPaused(case.id, clock.paused_at, clock.pause_reason)
    return replace(clock, paused_at=at, pause_reason=reason)


def resume(case: Case, clock: FixClock, at: datetime) -> Resumed:
    """Restart the clock: the deadline moves later by exactly the time paused."""
    check_open(case)
    if clock.paused_at is None:
        raise FixClockError(f"the fix clock of {case.id} is running; there is nothing to resume.")
    paused_for = max(at - clock.paused_at, timedelta(0))
    new_due = (case.fix_due + paused_for).astimezone(UTC)
    restarted = replace(
        clock,
        paused_at=None,
        pause_reason=None,
        paused_seconds=clock.paused_seconds + int(paused_for.total_seconds()),
    )
    return Resumed(replace(case, fix_due=new_due), restarted, paused_for)


def extend(case: Case, clock: FixClock, days: int, tz: ZoneInfo) -> tuple[Case, FixClock]:
    """A later deadline agreed with the reporter: `days` calendar days more."""
    check_open(case)
    if not 1 <= days <= MAX_EXTEND_DAYS:
        raise FixClockError(f"at most {MAX_EXTEND_DAYS} days at a time")
    # Wall-clock arithmetic in the policy's zone: 17:00 stays 17:00 across a DST change.
    new_due = (case.fix_due.astimezone(tz) + timedelta(days=days)).astimezone(UTC)
    return (
        replace(case, fix_due=new_due),
        replace(clock, extension_days=clock.extension_days + days),
    )


def effective_fix_due(case: Case, clock: FixClock, now: datetime) -> datetime:
    """The fix deadline as it stands if the clock restarted now (the stored one when running).

    A fix recorded while the clock was paused is judged against the deadline as it stood
    then: the pause lasted until the fix.
    """
    if clock.paused_at is None:
        return case.fix_due
    end = case.fixed_at or now
    return case.fix_due + max(end - clock.paused_at, timedelta(0))


def net_fix_time(case: Case, clock: FixClock, start: datetime) -> timedelta:
    """The calendar time the fix promise gives from its clock start, paused time taken out."""
    return (case.fix_due - start) - timedelta(seconds=clock.paused_seconds)
