"""SLA warnings: when each promise of a case passes a warning point, the case thread hears it
once, mentioning who must act; an overdue case also reaches the managers in digest_room.

How it works:

* Warning points (``policy.warnings``): "N%" (that share of the promise's time is used),
  "N working days left" / "N working hours left" (working time before the deadline), and
  "overdue" (the deadline has passed). For acknowledge and assess, time is working time;
  for fix it is calendar time with the paused time taken out (the fix deadline moves later
  by exactly the time the clock was paused, so "time left" is frozen while paused).
* Each case row carries ``next_sla_check_at``, the next moment one of its points passes.
  A tick reads only the rows that are due, through an index: its cost follows the cases
  falling due, not the number of cases.
* A point that passed is recorded in ``sla_warnings`` in the same transaction as the post
  announcing it, so it is warned exactly once across crashes and restarts. Everything a
  case has pending is posted as one combined message: after downtime each case gets one
  message, not one per point.
* Outside business hours warnings wait for the next business period, unless a deadline has
  passed: then everything pending goes out at once.
* A paused fix clock has no points; acknowledge and assess keep running while it is paused.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta

import aiosqlite

from bot.config import Config
from bot.matrix.posts import Post, defuse_mentions, post_to_case, post_to_room, text_to_html
from bot.matrix.render import local, time_left
from bot.policy.lifecycle import Case, CaseState
from bot.policy.workdays import WorkingCalendar
from storage import case_events, cases
from storage import sla as sla_store
from storage.db import Database, savepoint
from storage.sla import FixClock

log = logging.getLogger(__name__)

PROMISE_LABELS = {"acknowledge": "Acknowledge", "assess": "Assess", "fix": "Fix"}
# "Overdue" means later than the due moment itself: "by 17:00" is still kept at 17:00:00.
OVERDUE_AFTER = timedelta(seconds=1)
# A tick reads due cases in batches, each batch one transaction, so commands and intake
# are not held up behind a long catch-up.
BATCH = 200
RETRY_AFTER_ERROR = timedelta(hours=1)
# Ten years of days: no deadline is further away than that.
_MAX_DAYS = 3700


# ------------------------------------------------------------------------------ points


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


def business_day(calendar: WorkingCalendar) -> timedelta:
    """The length of one working day (business hours are wall-clock times on one date)."""
    rules = calendar.rules
    day = datetime(2000, 1, 3)
    return datetime.combine(day, rules.business_end) - datetime.combine(day, rules.business_start)


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
            length = business_day(calendar) if unit.startswith("day") else timedelta(hours=1)
            points.append(WarningPoint(text, left=int(count) * length))
    return tuple(points)


# ------------------------------------------------------------------------------ working time


def _business_interval(calendar: WorkingCalendar, day: date) -> tuple[datetime, datetime] | None:
    if not calendar.is_working_day(day):
        return None
    rules = calendar.rules
    opens = datetime.combine(day, rules.business_start, tzinfo=calendar.tz).astimezone(UTC)
    closes = datetime.combine(day, rules.business_end, tzinfo=calendar.tz).astimezone(UTC)
    return opens, closes


def advance_working(calendar: WorkingCalendar, start: datetime, amount: timedelta) -> datetime:
    """The moment at which `amount` of working time has passed since `start`."""
    remaining = amount
    begin = start.astimezone(UTC)
    day = calendar.to_local(start).date()
    for _ in range(_MAX_DAYS):
        interval = _business_interval(calendar, day)
        if interval is not None:
            low, high = max(interval[0], begin), interval[1]
            if high > low:
                if high - low >= remaining:
                    return low + remaining
                remaining -= high - low
        day += timedelta(days=1)
    raise ValueError("no working time found within ten years")


def rewind_working(calendar: WorkingCalendar, end: datetime, amount: timedelta) -> datetime:
    """The moment from which exactly `amount` of working time is left until `end`."""
    remaining = amount
    finish = end.astimezone(UTC)
    day = calendar.to_local(end).date()
    for _ in range(_MAX_DAYS):
        interval = _business_interval(calendar, day)
        if interval is not None:
            low, high = interval[0], min(interval[1], finish)
            if high > low:
                if high - low >= remaining:
                    return high - remaining
                remaining -= high - low
        day -= timedelta(days=1)
    raise ValueError("no working time found within ten years")


def in_business_hours(calendar: WorkingCalendar, moment: datetime) -> bool:
    interval = _business_interval(calendar, calendar.to_local(moment).date())
    return interval is not None and interval[0] <= moment.astimezone(UTC) < interval[1]


# ------------------------------------------------------------------------------ clocks


@dataclass(frozen=True)
class PromiseClock:
    """One promise not yet kept: when its clock started, its deadline, the time it gives."""

    promise: str
    start: datetime
    due: datetime
    allowed: timedelta  # working time (acknowledge, assess) or net calendar time (fix)
    working: bool


def effective_fix_due(case: Case, fix: FixClock, now: datetime) -> datetime:
    """The fix deadline as it stands if the clock restarted now (the stored one when running).

    A fix recorded while the clock was paused is judged against the deadline as it stood
    then: the pause lasted until the fix.
    """
    if fix.paused_at is None:
        return case.fix_due
    end = case.fixed_at or now
    return case.fix_due + max(end - fix.paused_at, timedelta(0))


def open_clocks(case: Case, fix: FixClock, calendar: WorkingCalendar) -> list[PromiseClock]:
    """The clocks that are running: promises not yet kept, without a paused fix clock."""
    if case.state is CaseState.FIXED:
        return []
    start = calendar.clock_start(case.received_at).astimezone(UTC)
    clocks = []
    for promise, due, done in (
        ("acknowledge", case.acknowledge_due, case.acknowledged_at),
        ("assess", case.assess_due, case.assessed_at),
    ):
        if done is None:
            allowed = calendar.working_time_between(start, due)
            clocks.append(PromiseClock(promise, start, due, allowed, working=True))
    if case.fixed_at is None and not fix.paused:
        allowed = (case.fix_due - start) - timedelta(seconds=fix.paused_seconds)
        clocks.append(PromiseClock("fix", start, case.fix_due, allowed, working=False))
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
                at = advance_working(calendar, clock.start, clock.allowed * point.used)
            else:
                # Measured from the deadline, so time paused earlier does not count as used.
                at = clock.due - clock.allowed * (1 - point.used)
        else:
            assert point.left is not None
            at = rewind_working(calendar, clock.due, point.left)
            if at <= clock.start:
                continue
        found.append(Passage(clock.promise, point, at, clock.due))
    return found


# ------------------------------------------------------------------------------ posting


def permalink(room_id: str, event_id: str) -> str:
    return f"https://matrix.to/#/{room_id}/{event_id}"


def user_link(user_id: str) -> str:
    """A mention pill: clients render it as the user's name."""
    return f'<a href="https://matrix.to/#/{html.escape(user_id)}">{html.escape(user_id)}</a>'


@dataclass
class TickResult:
    """What one tick did (for logs, tests and the benchmark)."""

    checked: int = 0
    warned: list[str] = field(default_factory=list)
    escalated: list[str] = field(default_factory=list)
    deferred: list[str] = field(default_factory=list)

    @property
    def queued(self) -> bool:
        return bool(self.warned or self.escalated)


class SlaWatch:
    """Looks at the cases that fall due and posts their warnings; see the module docstring."""

    def __init__(self, db: Database, config: Config, calendar: WorkingCalendar) -> None:
        self._db = db
        self._config = config
        self._calendar = calendar
        self.points = parse_points(config.policy.warnings, calendar)

    async def tick(self, now: datetime) -> TickResult:
        result = TickResult()
        while True:
            async with self._db.transaction() as conn:
                due = await sla_store.due_for_check(conn, now, BATCH)
                for case_id in due:
                    # One case that cannot be evaluated must not stop the others, nor come
                    # back at every tick.
                    try:
                        async with savepoint(conn, "sla_case"):
                            await self._check(conn, case_id, now, result)
                    except Exception:
                        log.exception("SLA check of %s failed; next try in an hour", case_id)
                        await sla_store.set_next_check(conn, case_id, now + RETRY_AFTER_ERROR)
            result.checked += len(due)
            if len(due) < BATCH:
                break
        if result.queued or result.deferred:
            log.info(
                "SLA tick: %d checked, %d warned, %d escalated, %d waiting for business hours",
                result.checked,
                len(result.warned),
                len(result.escalated),
                len(result.deferred),
            )
        return result

    async def next_check(self) -> datetime | str | None:
        async with self._db.transaction() as conn:
            return await sla_store.next_check(conn)

    async def _check(
        self, conn: aiosqlite.Connection, case_id: str, now: datetime, result: TickResult
    ) -> None:
        case = await cases.get_case(conn, case_id)
        if case is None:
            await sla_store.set_next_check(conn, case_id, None)
            return
        fix = await sla_store.fix_clock(conn, case_id)
        warned = {(w.promise, w.point) for w in await sla_store.warnings_of(conn, case_id)}
        pending: list[Passage] = []
        upcoming: list[datetime] = []
        for clock in open_clocks(case, fix, self._calendar):
            for passage in passages(clock, self.points, self._calendar):
                if (passage.promise, passage.point.name) in warned:
                    continue
                if passage.at <= now:
                    pending.append(passage)
                else:
                    upcoming.append(passage.at)
        next_at = min(upcoming, default=None)
        if pending:
            deadline_passed = any(p.point.overdue for p in pending)
            if deadline_passed or in_business_hours(self._calendar, now):
                await self._warn(conn, case, pending, now)
                result.warned.append(case.id)
                if deadline_passed:
                    await self._escalate(conn, case, [p for p in pending if p.point.overdue], now)
                    result.escalated.append(case.id)
            else:
                opens = self._calendar.clock_start(now).astimezone(UTC)
                next_at = opens if next_at is None else min(next_at, opens)
                result.deferred.append(case.id)
        if next_at is not None and next_at <= now:
            next_at = now + timedelta(minutes=1)  # never a check that is due again at once
        await sla_store.set_next_check(conn, case_id, next_at)

    def _who(self, case: Case) -> list[str]:
        """Who a warning is for: the assignee, else the team (else the managers)."""
        if case.assignee:
            return [case.assignee]
        matrix = self._config.matrix
        return list(matrix.team or matrix.managers)

    async def _warn(
        self, conn: aiosqlite.Connection, case: Case, pending: list[Passage], now: datetime
    ) -> None:
        tz = self._calendar.tz
        who = self._who(case)
        by_promise: dict[str, list[Passage]] = {}
        for passage in sorted(pending, key=lambda p: p.at):
            by_promise.setdefault(passage.promise, []).append(passage)
        lines = []
        for promise, passed in by_promise.items():
            latest = passed[-1]
            if latest.point.overdue:
                line = (
                    f"{PROMISE_LABELS[promise]}: OVERDUE — was due {local(latest.due, tz)} "
                    f"({time_left(latest.due, now)})"
                )
            else:
                line = (
                    f"{PROMISE_LABELS[promise]}: {latest.point.label()} — due "
                    f"{local(latest.due, tz)} ({time_left(latest.due, now)})"
                )
            earlier = [p.point.name for p in passed[:-1]]
            if earlier:
                line += f"; also passed, not announced at the time: {', '.join(earlier)}"
            lines.append(line + ".")
        heading = f"⏰ {case.id}: deadline warning for {' '.join(who) or 'the team'}"
        footer = "!sla explains how each deadline is counted."
        if any(p.promise == "fix" for p in pending):
            footer += (
                " Waiting for the reporter or a supplier? !pause <reason> stops the fix clock."
            )
        body = "\n".join([heading, *(f"• {line}" for line in lines), footer])
        mentions_html = " ".join(user_link(user) for user in who) or "the team"
        items = "".join(f"<li>{html.escape(line)}</li>" for line in lines)
        html_body = (
            f"<p>⏰ <strong>{case.id}</strong>: deadline warning for {mentions_html}</p>"
            f"<ul>{items}</ul><p>{text_to_html(footer)}</p>"
        )
        key = "sla:{}:{}".format(
            case.id,
            "+".join(sorted(f"{p.promise}.{p.point.name}@{p.due:%Y%m%dT%H%M%S}" for p in pending)),
        )
        for passage in pending:
            await sla_store.record_warning(
                conn,
                case.id,
                promise=passage.promise,
                point=passage.point.name,
                due=passage.due,
                at=now,
            )
        await case_events.record(
            conn,
            case.id,
            actor="cvdbot",
            kind="sla_warning",
            at=now,
            data={"points": [f"{p.promise}: {p.point.name}" for p in pending], "for": who},
        )
        await post_to_case(
            conn, case.id, Post(body, html_body), idem_key=key, now=now, mentions=who
        )

    async def _escalate(
        self, conn: aiosqlite.Connection, case: Case, overdue: list[Passage], now: datetime
    ) -> None:
        tz = self._calendar.tz
        managers = list(self._config.matrix.managers)
        room = self._config.matrix.effective_digest_room
        what = "; ".join(
            f"{p.promise} was due {local(p.due, tz)} ({time_left(p.due, now)})" for p in overdue
        )
        where = (
            permalink(self._config.matrix.case_room, case.thread_root_event_id)
            if case.thread_root_event_id
            else "(its thread is not posted yet)"
        )
        summary = (
            f"🚨 Overdue: {case.id} ({case.state.value}, assignee: {case.assignee or 'nobody'})"
        )
        subject = defuse_mentions(case.subject) or "(no subject)"
        for_line = f"For {' '.join(managers)}" if managers else ""
        full_lines = [f"{summary} — {what}.", f"Subject: {subject}", f"Thread: {where}"]
        bare_lines = [f"{summary} — {what}.", f"Thread: {where}"]
        if for_line:
            full_lines.append(for_line)
            bare_lines.append(for_line)
        mention_html = " ".join(user_link(m) for m in managers)

        def as_html(with_subject: bool) -> str:
            link = (
                f'<a href="{html.escape(where)}">{html.escape(case.id)} thread</a>'
                if case.thread_root_event_id
                else html.escape(where)
            )
            parts = [f"<p>🚨 <strong>Overdue: {html.escape(case.id)}</strong> "]
            parts.append(
                f"({case.state.value}, assignee: {html.escape(case.assignee or 'nobody')}) — "
                f"{html.escape(what)}.</p>"
            )
            if with_subject:
                parts.append(f"<p>Subject: {html.escape(subject)}</p>")
            parts.append(f"<p>{link}</p>")
            if mention_html:
                parts.append(f"<p>For {mention_html}</p>")
            return "".join(parts)

        key = "escalate:{}:{}".format(
            case.id, "+".join(sorted(f"{p.promise}@{p.due:%Y%m%dT%H%M%S}" for p in overdue))
        )
        await post_to_room(
            conn,
            room,
            Post("\n".join(full_lines), as_html(True)),
            idem_key=key,
            now=now,
            mentions=managers,
            unencrypted=Post("\n".join(bare_lines), as_html(False)),
        )


async def forget_future_fix_warnings(
    conn: aiosqlite.Connection,
    case: Case,
    fix: FixClock,
    calendar: WorkingCalendar,
    points: Sequence[WarningPoint],
    now: datetime,
) -> list[str]:
    """After the fix deadline moved later (!extend): the fix's points that now lie in the
    future again are forgotten, so they are warned again for the new deadline. Points
    still passed stay recorded: an extension does not repeat "half the time is used"."""
    clocks = [c for c in open_clocks(case, fix, calendar) if c.promise == "fix"]
    if not clocks and case.fixed_at is None:
        # A paused clock: judge the points as if it restarted now.
        assert fix.paused_at is not None
        pausing = int(max(now - fix.paused_at, timedelta(0)).total_seconds())
        resumed = FixClock(paused_seconds=fix.paused_seconds + pausing)
        moved = replace(case, fix_due=effective_fix_due(case, fix, now))
        clocks = [c for c in open_clocks(moved, resumed, calendar) if c.promise == "fix"]
    future = [p.point.name for c in clocks for p in passages(c, points, calendar) if p.at > now]
    await sla_store.forget_warnings(conn, case.id, "fix", future)
    return future
