"""The fix clock's rules as pure functions (bot/policy/fix_clock.py): pause, resume, extend and
the effective fix deadline, on cases whose deadlines come from the real working calendar."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.policy import fix_clock
from bot.policy.fix_clock import (
    MAX_EXTEND_DAYS,
    AlreadyPaused,
    FixClock,
    FixClockError,
    effective_fix_due,
    net_fix_time,
)
from bot.policy.lifecycle import Case, CaseState
from bot.policy.workdays import CalendarRules, WorkingCalendar, case_deadlines

AMS = ZoneInfo("Europe/Amsterdam")
CALENDAR = WorkingCalendar(CalendarRules())


def at(month: int, day: int, hour: int, minute: int = 0, year: int = 2026) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=AMS).astimezone(UTC)


RECEIVED = at(11, 2, 10)


def a_case(received: datetime = RECEIVED, **changes: object) -> Case:
    """Received Monday 2 November 2026 10:00: fix due Sunday 31 January 2027 17:00 CET."""
    deadlines = case_deadlines(CALENDAR, received)
    case = Case(
        id="CVD-2026-0042",
        state=CaseState.ASSESSED,
        subject="SQL injection",
        reporter_address="sam@finder.example",
        reporter_name=None,
        language="en",
        received_at=received,
        **deadlines.case_fields(),
    )
    return replace(case, **changes)  # type: ignore[arg-type]


def test_the_case_under_test_has_the_calendars_fix_deadline() -> None:
    assert a_case().fix_due == at(1, 31, 17, year=2027)


def test_pause_records_when_and_why_and_leaves_the_deadline() -> None:
    case = a_case()
    paused = fix_clock.pause(case, FixClock(), at(11, 6, 10), "waiting for the supplier")
    assert paused == FixClock(paused_at=at(11, 6, 10), pause_reason="waiting for the supplier")
    assert paused.paused
    assert effective_fix_due(case, paused, at(11, 6, 10)) == case.fix_due


def test_pause_twice_is_refused_with_when_and_why() -> None:
    clock = FixClock(paused_at=at(11, 6, 10), pause_reason="vendor")
    with pytest.raises(AlreadyPaused) as refused:
        fix_clock.pause(a_case(), clock, at(11, 7, 10), "again")
    assert refused.value.since == at(11, 6, 10)
    assert refused.value.reason == "vendor"


def test_pause_then_resume_moves_the_deadline_by_the_paused_span() -> None:
    case = a_case()
    # Friday 10:00 to Monday 12:00: the weekend counts, the fix promise is in calendar days.
    paused = fix_clock.pause(case, FixClock(), at(11, 6, 10), "vendor")
    resumed = fix_clock.resume(case, paused, at(11, 9, 12))
    assert resumed.paused_for == timedelta(days=3, hours=2)
    assert resumed.case.fix_due == case.fix_due + timedelta(days=3, hours=2)
    assert resumed.case.fix_due.tzinfo is UTC
    assert resumed.clock == FixClock(paused_seconds=(3 * 24 + 2) * 3600)
    # Nothing else about the case changes.
    assert replace(resumed.case, fix_due=case.fix_due) == case


def test_paused_time_adds_up_over_several_pauses() -> None:
    case = a_case()
    first = fix_clock.resume(
        case, fix_clock.pause(case, FixClock(), at(11, 3, 9), "a"), at(11, 4, 9)
    )
    second = fix_clock.resume(
        first.case,
        fix_clock.pause(first.case, first.clock, at(11, 10, 9), "b"),
        at(11, 10, 21),
    )
    assert second.clock.paused_seconds == (24 + 12) * 3600
    assert second.case.fix_due == case.fix_due + timedelta(hours=36)


def test_resume_when_running_is_refused() -> None:
    with pytest.raises(FixClockError, match="is running; there is nothing to resume"):
        fix_clock.resume(a_case(), FixClock(), at(11, 9, 12))


def test_resume_before_the_pause_moves_nothing() -> None:
    # A clock that steps back (NTP) must not move the deadline earlier.
    case = a_case()
    clock = FixClock(paused_at=at(11, 6, 10), pause_reason="vendor")
    resumed = fix_clock.resume(case, clock, at(11, 6, 9))
    assert resumed.paused_for == timedelta(0)
    assert resumed.case.fix_due == case.fix_due


def test_extend_adds_calendar_days_and_keeps_the_local_time_across_dst() -> None:
    # Received in September: fix due 17:00 CET in December; 200 days later is summer time.
    case = a_case(received=datetime(2026, 9, 14, 10, 0, tzinfo=UTC))
    extended, clock = fix_clock.extend(case, FixClock(), 200, AMS)
    before, after = case.fix_due.astimezone(AMS), extended.fix_due.astimezone(AMS)
    assert (after.hour, after.minute) == (before.hour, before.minute) == (17, 0)
    assert after.date() == before.date() + timedelta(days=200)
    assert extended.fix_due - case.fix_due == timedelta(days=200, hours=-1)
    assert clock.extension_days == 200


def test_extensions_add_up() -> None:
    case, clock = fix_clock.extend(a_case(), FixClock(), 10, AMS)
    case, clock = fix_clock.extend(case, clock, 5, AMS)
    assert clock.extension_days == 15
    assert case.fix_due == a_case().fix_due + timedelta(days=15)


@pytest.mark.parametrize("days", [0, -1, MAX_EXTEND_DAYS + 1])
def test_extend_out_of_range_is_refused(days: int) -> None:
    with pytest.raises(FixClockError, match=f"at most {MAX_EXTEND_DAYS} days"):
        fix_clock.extend(a_case(), FixClock(), days, AMS)


def test_extend_by_the_maximum_is_allowed() -> None:
    extended, _ = fix_clock.extend(a_case(), FixClock(), MAX_EXTEND_DAYS, AMS)
    assert extended.fix_due.astimezone(AMS).date() == a_case().fix_due.astimezone(
        AMS
    ).date() + timedelta(days=MAX_EXTEND_DAYS)


def test_extend_while_paused_then_resume_adds_both() -> None:
    case = a_case()
    paused = fix_clock.pause(case, FixClock(), at(11, 6, 10), "vendor")
    extended, clock = fix_clock.extend(case, paused, 14, AMS)
    assert clock.paused and clock.paused_at == at(11, 6, 10) and clock.extension_days == 14
    assert extended.fix_due == case.fix_due + timedelta(days=14)  # no DST change in between
    # While paused, the deadline shown is the extended one plus the time paused so far.
    assert effective_fix_due(extended, clock, at(11, 8, 10)) == extended.fix_due + timedelta(days=2)
    resumed = fix_clock.resume(extended, clock, at(11, 8, 10))
    assert resumed.case.fix_due == case.fix_due + timedelta(days=16)
    assert resumed.clock.extension_days == 14 and not resumed.clock.paused


@pytest.mark.parametrize(
    ("state", "shown"),
    [
        (CaseState.FIXED, "fixed"),
        (CaseState.SPAM, "spam"),
        (CaseState.CLOSED, "closed"),
        (CaseState.WITHDRAWN, "withdrawn"),
    ],
)
def test_a_case_no_longer_worked_has_stopped_its_clock(state: CaseState, shown: str) -> None:
    ended = a_case(state=state, fixed_at=at(11, 20, 10) if state is CaseState.FIXED else None)
    paused = FixClock(paused_at=at(11, 6, 10), pause_reason="vendor")
    for attempt in (
        lambda: fix_clock.pause(ended, FixClock(), at(11, 21, 10), "late"),
        lambda: fix_clock.resume(ended, paused, at(11, 21, 10)),
        lambda: fix_clock.extend(ended, FixClock(), 5, AMS),
    ):
        with pytest.raises(FixClockError, match=f"is {shown}: its fix clock has stopped"):
            attempt()


def test_effective_due_of_a_running_clock_is_the_stored_one() -> None:
    case = a_case()
    clock = FixClock(paused_seconds=3600, extension_days=3)
    assert effective_fix_due(case, clock, at(12, 24, 10)) == case.fix_due


def test_effective_due_while_paused_moves_with_now() -> None:
    case = a_case()
    clock = FixClock(paused_at=at(11, 6, 10), pause_reason="vendor")
    assert effective_fix_due(case, clock, at(11, 6, 10)) == case.fix_due
    assert effective_fix_due(case, clock, at(11, 16, 10)) == case.fix_due + timedelta(days=10)
    assert effective_fix_due(case, clock, at(11, 5, 10)) == case.fix_due  # now before the pause


def test_a_fix_recorded_during_a_pause_is_judged_as_of_the_fix() -> None:
    case = a_case(state=CaseState.FIXED, fixed_at=at(11, 9, 10))
    clock = FixClock(paused_at=at(11, 6, 10), pause_reason="vendor")
    # Long after the fix, the pause still only lasted until the fix.
    assert effective_fix_due(case, clock, at(3, 1, 10, year=2027)) == case.fix_due + timedelta(
        days=3
    )


def test_net_fix_time_leaves_out_the_time_paused() -> None:
    case = a_case()
    start = CALENDAR.clock_start(case.received_at)
    assert net_fix_time(case, FixClock(), start) == case.fix_due - start
    assert net_fix_time(case, FixClock(paused_seconds=7200), start) == (
        case.fix_due - start - timedelta(hours=2)
    )
