"""SLA warnings: when each promise of a case passes a warning point, the case thread hears it
once, mentioning who must act; an overdue case also reaches the managers in digest_room.

How it works:

* Warning points (``policy.warnings``): "N%" (that share of the promise's time is used),
  "N working days left" / "N working hours left" (working time before the deadline), and
  "overdue" (the deadline has passed). When each passes is computed in
  bot/watch/warning_points.py; this module stores, posts and escalates.
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
* The update warning point (a reporter without mail from us for too long) is checked in the
  same pass and shares the case's schedule: bot/watch/update_warnings.py.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import aiosqlite

from bot.config import Config
from bot.matrix.posts import (
    Post,
    defuse_mentions,
    post_to_case,
    post_to_room,
    text_to_html,
    user_link,
)
from bot.matrix.render import local, time_left
from bot.policy import fix_clock
from bot.policy.fix_clock import FixClock
from bot.policy.lifecycle import Case
from bot.policy.promises import BY_NAME, FIX
from bot.policy.workdays import WorkingCalendar
from bot.watch.ibd_share_warning import check_ibd_share
from bot.watch.update_warnings import UpdateWatch
from bot.watch.warning_points import (
    Passage,
    WarningPoint,
    open_clocks,
    parse_points,
    passages,
)
from storage import case_events, cases, fix_clocks, next_checks, sla_warnings
from storage.db import Database, savepoint

log = logging.getLogger(__name__)

# A tick reads due cases in batches, each batch one transaction, so commands and intake
# are not held up behind a long catch-up.
BATCH = 200
RETRY_AFTER_ERROR = timedelta(hours=1)


# ------------------------------------------------------------------------------ posting


def permalink(room_id: str, event_id: str) -> str:
    return f"https://matrix.to/#/{room_id}/{event_id}"


@dataclass
class TickResult:
    """What one tick did (for logs, tests and the benchmark)."""

    checked: int = 0
    warned: list[str] = field(default_factory=list)
    escalated: list[str] = field(default_factory=list)
    deferred: list[str] = field(default_factory=list)
    update_warned: list[str] = field(default_factory=list)

    @property
    def queued(self) -> bool:
        return bool(self.warned or self.escalated or self.update_warned)


class SlaWatch:
    """Looks at the cases that fall due and posts their warnings; see the module docstring."""

    def __init__(self, db: Database, config: Config, calendar: WorkingCalendar) -> None:
        self._db = db
        self._config = config
        self._calendar = calendar
        self.points = parse_points(config.policy.warnings, calendar)
        self.updates = UpdateWatch(config, calendar)

    async def tick(self, now: datetime) -> TickResult:
        result = TickResult()
        while True:
            async with self._db.transaction() as conn:
                due = await next_checks.due_for_check(conn, now, BATCH)
                for case_id in due:
                    # One case that cannot be evaluated must not stop the others, nor come
                    # back at every tick.
                    try:
                        async with savepoint(conn, "sla_case"):
                            await self._check(conn, case_id, now, result)
                    except Exception:
                        log.exception("SLA check of %s failed; next try in an hour", case_id)
                        await next_checks.set_next_check(conn, case_id, now + RETRY_AFTER_ERROR)
            result.checked += len(due)
            if len(due) < BATCH:
                break
        if result.queued or result.deferred:  # update_warned counts as queued
            log.info(
                "SLA tick: %d checked, %d warned, %d escalated, %d waiting for business hours,"
                " %d warned of a reporter without update",
                result.checked,
                len(result.warned),
                len(result.escalated),
                len(result.deferred),
                len(result.update_warned),
            )
        return result

    async def next_check(self) -> datetime | str | None:
        async with self._db.transaction() as conn:
            return await next_checks.next_check(conn)

    async def _check(
        self, conn: aiosqlite.Connection, case_id: str, now: datetime, result: TickResult
    ) -> None:
        case = await cases.get_case(conn, case_id)
        if case is None:
            await next_checks.set_next_check(conn, case_id, None)
            return
        fix = await fix_clocks.load(conn, case_id)
        warned = {(w.promise, w.point) for w in await sla_warnings.warnings_of(conn, case_id)}
        pending: list[Passage] = []
        upcoming: list[datetime] = []
        for clock in open_clocks(case, fix, self._calendar):
            for passage in passages(clock, self.points, self._calendar):
                if (passage.promise, passage.point.name) in warned:
                    continue
                if case.imported_at is not None and passage.at <= case.imported_at:
                    continue  # passed before the backlog was imported: history, not news
                if passage.at <= now:
                    pending.append(passage)
                else:
                    upcoming.append(passage.at)
        ibd_at = await check_ibd_share(
            conn,
            case,
            now,
            self._calendar,
            self._config.policy.share_ibd_within_working_days,
            self._who(case),
        )
        if ibd_at is not None:
            upcoming.append(ibd_at)
        next_at = min(upcoming, default=None)
        if pending:
            deadline_passed = any(p.point.overdue for p in pending)
            if deadline_passed or self._calendar.in_business_hours(now):
                await self._warn(conn, case, pending, now)
                result.warned.append(case.id)
                if deadline_passed:
                    await self._escalate(conn, case, [p for p in pending if p.point.overdue], now)
                    result.escalated.append(case.id)
            else:
                opens = self._calendar.clock_start(now).astimezone(UTC)
                next_at = opens if next_at is None else min(next_at, opens)
                result.deferred.append(case.id)
        # The update warning point (bot/watch/update_warnings.py) shares this schedule.
        update_warned, update_next = await self.updates.check(conn, case, now, self._who(case))
        if update_warned:
            result.update_warned.append(case.id)
        if update_next is not None:
            update_next = update_next.astimezone(UTC)
            next_at = update_next if next_at is None else min(next_at, update_next)
        if next_at is not None and next_at <= now:
            next_at = now + timedelta(minutes=1)  # never a check that is due again at once
        await next_checks.set_next_check(conn, case_id, next_at)

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
                    f"{BY_NAME[promise].label}: OVERDUE — was due {local(latest.due, tz)} "
                    f"({time_left(latest.due, now)})"
                )
            else:
                line = (
                    f"{BY_NAME[promise].label}: {latest.point.label()} — due "
                    f"{local(latest.due, tz)} ({time_left(latest.due, now)})"
                )
            earlier = [p.point.name for p in passed[:-1]]
            if earlier:
                line += f"; also passed, not announced at the time: {', '.join(earlier)}"
            lines.append(line + ".")
        heading = f"⏰ {case.id}: deadline warning for {' '.join(who) or 'the team'}"
        footer = "!sla explains how each deadline is counted."
        if any(p.promise == FIX.name for p in pending):
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
            await sla_warnings.record_warning(
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

        key = escalation_key_prefix(case.id) + "+".join(
            sorted(f"{p.promise}@{p.due:%Y%m%dT%H%M%S}" for p in overdue)
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


def escalation_key_prefix(case_id: str) -> str:
    """The start of the outbox key of every overdue alert about the case (the deletion of its
    data finds them by it: bot/watch/retention.py)."""
    return f"escalate:{case_id}:"


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
    if fix.paused and case.fixed_at is None:
        # A paused clock: judge the points as if it restarted now.
        resumed = fix_clock.resume(case, fix, now)
        case, fix = resumed.case, resumed.clock
    clocks = [c for c in open_clocks(case, fix, calendar) if c.promise == FIX.name]
    future = [p.point.name for c in clocks for p in passages(c, points, calendar) if p.at > now]
    await sla_warnings.forget_warnings(conn, case.id, FIX.name, future)
    return future
