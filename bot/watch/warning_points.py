"""When each warning point of each open promise passes: the configured points
(``policy.warnings``), the clock of every promise not yet kept, and the moments in between.
Pure: a case, its fix clock and the calendar in; moments out.

For acknowledge and assess, time is working time; for fix it is calendar time with the
paused time taken out (the fix deadline moves later by exactly the time the clock was
paused, so "time left" is frozen while paused). A paused fix clock has no points.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bot.policy.fix_clock import FixClock, net_fix_time
from bot.policy.lifecycle import Case
from bot.policy.promises import PROMISES
from bot.policy.workdays import WorkingCalendar

# "Overdue" means later than the due moment itself: "by 17:00" is still kept at 17:00:00.
OVERDUE_AFTER = timedelta(seconds=1)


@dataclass(frozen=True)
class WarningPoint:
    """One configured warning point."""

    name: str  # as configured, normalised: "50%", "1 working day left", "overdue"
    used: float | None = None  # share of the promise's time used
    left: timedelta | None = None  # working time left before the deadline

    @property
    def overdue(self) -> bool:
        return self.name == "overdue"

    def label(self) -> str:
        if self.overdue:
            return "OVERDUE"
        if self.used is not None:
            return "half the time is used" if self.used == 0.5 else f"{self.name} of the time used"
        return self.name


def parse_points(texts: Iterable[str], calendar: WorkingCalendar) -> tuple[WarningPoint, ...]:
    """The points of ``policy.warnings`` (validated by the config; see bot/config.py)."""
    points = []
    for raw in texts:
        text = " ".join(raw.split()).lower()
        if text == "overdue":
            points.append(WarningPoint(text))
        elif text.endswith("%"):
            points.append(WarningPoint(text, used=int(text[:-1]) / 100))
        else:
            count, _, unit = text.split()[:3]
            length = calendar.business_day() if unit.startswith("day") else timedelta(hours=1)
            points.append(WarningPoint(text, left=int(count) * length))
    return tuple(points)


@dataclass(frozen=True)
class PromiseClock:
    """One promise not yet kept: when its clock started, its deadline, the time it gives."""

    promise: str
    start: datetime
    due: datetime
    allowed: timedelta  # working time (acknowledge, assess) or net calendar time (fix)
    working: bool


def open_clocks(case: Case, fix: FixClock, calendar: WorkingCalendar) -> list[PromiseClock]:
    """The clocks that are running: promises not yet kept, without a paused fix clock."""
    if not case.state.clocks_run:
        return []
    start = calendar.clock_start(case.received_at).astimezone(UTC)
    clocks = []
    for promise in PROMISES:
        if promise.done(case) is not None or (promise.pausable and fix.paused):
            continue
        due = promise.due(case)
        if promise.counting == "working":
            allowed = calendar.working_time_between(start, due)
        elif promise.pausable:
            allowed = net_fix_time(case, fix, start)
        else:
            allowed = due - start
        working = promise.counting == "working"
        clocks.append(PromiseClock(promise.name, start, due, allowed, working=working))
    return clocks


@dataclass(frozen=True)
class Passage:
    """The moment one warning point of one promise passes."""

    promise: str
    point: WarningPoint
    at: datetime
    due: datetime


def passages(
    clock: PromiseClock, points: Sequence[WarningPoint], calendar: WorkingCalendar
) -> list[Passage]:
    """When each point passes for this clock; points that would pass before the clock even
    started (four working days left on a two-day promise) do not exist for it."""
    found = []
    for point in points:
        if point.overdue:
            at = clock.due + OVERDUE_AFTER
        elif point.used is not None:
            if clock.allowed <= timedelta(0):
                continue
            if clock.working:
                at = calendar.advance_working(clock.start, clock.allowed * point.used)
            else:
                # Measured from the deadline, so time paused earlier does not count as used.
                at = clock.due - clock.allowed * (1 - point.used)
        else:
            assert point.left is not None
            at = calendar.rewind_working(clock.due, point.left)
            if at <= clock.start:
                continue
        found.append(Passage(clock.promise, point, at, clock.due))
    return found
