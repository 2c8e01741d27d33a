"""What the managers' digest contains, read from storage as of one moment: open cases by
state, new and closed cases, deadlines due soon and overdue, on-time rates and the chart's
data. bot/watch/digest_render.py turns it into text and HTML; bot/watch/digest.py sends it.

Each digest is for one *moment* (a working day at digest.time) and lists what is new since
the previous digest was built, so a digest after downtime misses nothing.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

import aiosqlite

from bot.config import Config
from bot.policy.promises import PROMISES
from bot.policy.update_due import quiet_since, update_overdue
from bot.policy.workdays import WorkingCalendar
from bot.watch.chart import ChartData
from storage import case_decisions, case_overview, digests, reporter_updates
from storage.case_overview import CaseLine, OnTime, PromiseDue

RATE_WINDOWS = (30, 90)
CHART_DAYS = 90
CHART_WEEKS = 13
_MAX_DAYS_BACK = 400
PROMISE_NAMES = tuple(promise.name for promise in PROMISES)


def moment_at_or_before(calendar: WorkingCalendar, time_of_day: time, at: datetime) -> datetime:
    """The latest digest moment (a working day at digest.time, local) not after `at`."""
    day = calendar.to_local(at).date()
    for _ in range(_MAX_DAYS_BACK):
        if calendar.is_working_day(day):
            moment = datetime.combine(day, time_of_day, tzinfo=calendar.tz).astimezone(UTC)
            if moment <= at:
                return moment
        day -= timedelta(days=1)
    raise ValueError("no working day in the last 400 days")


def due_until(calendar: WorkingCalendar, at: datetime, working_days: int) -> datetime:
    """End of business on the Nth working day counted from `at`'s day (that day included
    when it is a working day)."""
    day = calendar.to_local(at).date()
    if not calendar.is_working_day(day):
        day, _ = calendar.add_working_days(day, 1)
    last, _ = calendar.add_working_days(day, working_days - 1)
    return datetime.combine(last, calendar.rules.business_end, tzinfo=calendar.tz).astimezone(UTC)


async def _since(
    conn: aiosqlite.Connection, calendar: WorkingCalendar, time_of_day: time, moment: datetime
) -> datetime:
    """Where this digest's period starts: when the previous digest was built, else the
    previous digest moment."""
    previous = await digests.previous_until(conn, moment)
    if previous is not None:
        return previous
    return moment_at_or_before(calendar, time_of_day, moment - timedelta(seconds=1))


@dataclass(frozen=True)
class CaseDue:
    """One case with the deadlines of it that a section lists."""

    case: CaseLine
    promises: list[PromiseDue]


@dataclass(frozen=True)
class QuietReporter:
    """A case whose reporter has had no mail from us for policy.update_every_days."""

    case: CaseLine
    since: datetime  # the last mail to the reporter (or the receipt, if none)


@dataclass(frozen=True)
class Digest:
    moment: datetime  # the digest moment it is for
    built_at: datetime
    since: datetime
    due_until: datetime
    due_within_working_days: int
    open_by_state: dict[str, int]
    paused: int
    new: list[CaseLine]
    due_soon: list[CaseDue]
    overdue: list[CaseDue]
    closed: list[CaseLine]
    on_time: dict[str, dict[int, OnTime]]
    chart: ChartData
    # The promises beyond the fix: assessed cases not shared with the IBD (oldest first),
    # and rewards waiting for a manager's decision ("proposed") or for delivery ("approved").
    ibd_unshared: list[CaseLine] = field(default_factory=list)
    rewards_pending: list[tuple[CaseLine, str]] = field(default_factory=list)
    # Reporters without an update for too long (bot/policy/update_due.py), longest first.
    without_update: list[QuietReporter] = field(default_factory=list)
    update_every_days: int = 30

    @property
    def open_total(self) -> int:
        return sum(self.open_by_state.values())


def _by_case(promises: list[PromiseDue]) -> list[CaseDue]:
    grouped: dict[str, CaseDue] = {}
    for item in promises:
        entry = grouped.setdefault(item.case.id, CaseDue(item.case, []))
        entry.promises.append(item)
    return sorted(grouped.values(), key=lambda entry: (entry.promises[0].due, entry.case.id))


async def build_digest(
    conn: aiosqlite.Connection, config: Config, calendar: WorkingCalendar, at: datetime
) -> Digest:
    """The digest as of `at`. Counts are the database as it is; periods end at `at`."""
    time_of_day = config.digest.time_of_day
    moment = moment_at_or_before(calendar, time_of_day, at)
    since = min(await _since(conn, calendar, time_of_day, moment), at)
    working_days = config.digest.due_within_working_days
    until = due_until(calendar, at, working_days)
    by_state = await case_overview.count_open_by_state(conn)
    running = [
        item for item in await case_overview.open_promises_due_by(conn, until) if not item.paused
    ]
    on_time = {
        promise: {
            days: await case_overview.on_time(conn, promise, at - timedelta(days=days), at)
            for days in RATE_WINDOWS
        }
        for promise in PROMISE_NAMES
    }
    return Digest(
        moment=moment,
        built_at=at,
        since=since,
        due_until=until,
        due_within_working_days=working_days,
        open_by_state=by_state,
        paused=await case_overview.count_paused(conn),
        new=await case_overview.created_between(conn, since, at),
        due_soon=_by_case([item for item in running if item.due >= at]),
        overdue=_by_case([item for item in running if item.due < at]),
        closed=await case_overview.fixed_between(conn, since, at),
        on_time=on_time,
        chart=await _chart_data(conn, calendar, at, sum(by_state.values())),
        ibd_unshared=await case_overview.lines_of(
            conn, await case_decisions.not_shared_with_ibd(conn)
        ),
        rewards_pending=await _rewards_pending(conn),
        without_update=await _without_update(conn, config, calendar, at),
        update_every_days=config.policy.update_every_days,
    )


async def _rewards_pending(conn: aiosqlite.Connection) -> list[tuple[CaseLine, str]]:
    pending = await case_decisions.pending_rewards(conn)
    lines = {line.id: line for line in await case_overview.lines_of(conn, [c for c, _ in pending])}
    return [(lines[case_id], state) for case_id, state in pending if case_id in lines]


async def _without_update(
    conn: aiosqlite.Connection, config: Config, calendar: WorkingCalendar, at: datetime
) -> list[QuietReporter]:
    every = config.policy.update_every_days
    found = []
    for watched in await reporter_updates.watched_cases(conn):
        since = quiet_since(watched.received_at, watched.last_mail_at)
        if update_overdue(since, every, calendar.tz, at):
            found.append(QuietReporter(watched.line, since))
    return sorted(found, key=lambda item: (item.since, item.case.id))


async def _chart_data(
    conn: aiosqlite.Connection, calendar: WorkingCalendar, at: datetime, open_now: int
) -> ChartData:
    """Open cases at the end of each of the last 90 days, worked back from the open cases
    now through the cases created and fixed since (only the recent rows are read)."""
    tz = calendar.tz
    today = calendar.to_local(at).date()
    first = today - timedelta(days=CHART_DAYS - 1)
    start = datetime.combine(first, time(0), tzinfo=tz).astimezone(UTC)
    created, fixed = await case_overview.created_and_fixed_since(conn, start)
    created.sort()
    fixed.sort()
    days = []
    for offset in range(CHART_DAYS):
        day = first + timedelta(days=offset)
        end = min(datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz), at)
        later_created = len(created) - bisect.bisect_right(created, end)
        later_fixed = len(fixed) - bisect.bisect_right(fixed, end)
        days.append((day, open_now - later_created + later_fixed))
    this_monday = today - timedelta(days=today.weekday())
    rates: list[tuple[date, float | None]] = []
    for back in range(CHART_WEEKS - 1, -1, -1):
        monday = this_monday - timedelta(weeks=back)
        begin = datetime.combine(monday, time(0), tzinfo=tz).astimezone(UTC)
        end = min(datetime.combine(monday + timedelta(weeks=1), time(0), tzinfo=tz), at)
        kept = decided = 0
        for promise in PROMISE_NAMES:
            result = await case_overview.on_time(conn, promise, begin, end.astimezone(UTC))
            kept += result.kept
            decided += result.decided
        rates.append((monday, kept / decided if decided else None))
    return ChartData(open_per_day=days, rate_per_week=rates)
