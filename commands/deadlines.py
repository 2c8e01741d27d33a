"""The policy's clock in the room: !sla explains the deadlines, !pause/!resume stop and restart
the fix clock, !extend records a later fix deadline agreed with the reporter, !cases lists
the open cases. Every change is written to the audit log with who made it and why.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from bot.matrix import render
from bot.matrix.posts import defuse_mentions
from bot.matrix.render import local, time_left
from bot.policy import fix_clock
from bot.policy.fix_clock import (
    MAX_EXTEND_DAYS,
    AlreadyPaused,
    FixClock,
    FixClockError,
    effective_fix_due,
)
from bot.policy.promises import PROMISES, promise_days
from bot.text import duration, shorten
from bot.watch.deadline_warnings import forget_future_fix_warnings
from bot.watch.warning_points import parse_points
from commands.context import CommandContext
from commands.registry import Arg, CommandError, CommandGroup
from storage import case_events, case_overview, fix_clocks, sla_warnings
from storage.case_overview import CaseLine

group = CommandGroup()
CASES_SHOWN = 50
SUBJECT_CHARS = 60


def _state_of(due: datetime, done: datetime | None, now: datetime, tz: ZoneInfo) -> str:
    if done is not None:
        verdict = "in time" if done <= due else f"late by {duration(done - due)}"
        return f"kept {local(done, tz)} ({verdict})"
    return time_left(due, now)


async def status_text(ctx: CommandContext) -> str:
    """!status: the case card with the fix clock as it stands (frozen while paused)."""
    case = ctx.the_case
    tz = ctx.services.tz
    fix = await fix_clocks.load(ctx.conn, case.id)
    shown = replace(case, fix_due=effective_fix_due(case, fix, ctx.now))
    lines = [render.status(shown, tz, ctx.now).body]
    if fix.paused_at is not None and case.fixed_at is None:
        lines.append(
            f"⏸️ Fix clock paused since {local(fix.paused_at, tz)} "
            f"({defuse_mentions(fix.pause_reason or '')}); the fix time left is frozen "
            "until !resume."
        )
    if fix.extension_days:
        lines.append(
            f"📅 Fix deadline extended by {fix.extension_days} days in total (!sla shows why)."
        )
    return "\n".join(lines)


def _fix_history(events: list[case_events.CaseEvent], tz: ZoneInfo, now: datetime) -> list[str]:
    """Pauses and extensions of the fix clock, from the audit log, oldest first."""
    lines: list[str] = []
    paused: case_events.CaseEvent | None = None
    for event in events:
        reason = defuse_mentions(str(event.data.get("reason", "")))
        if event.kind == "fix_extended":
            lines.append(
                f"  Extended by {event.data.get('days')} days on {local(event.at, tz)} by "
                f"{event.actor}: {reason}."
            )
        elif event.kind == "fix_paused":
            paused = event
        elif event.kind == "fix_resumed" and paused is not None:
            why = defuse_mentions(str(paused.data.get("reason", "")))
            lines.append(
                f"  Paused {local(paused.at, tz)} – {local(event.at, tz)} "
                f"({duration(event.at - paused.at)}) by {paused.actor}: {why}; the deadline "
                "moved later by that time."
            )
            paused = None
    if paused is not None:
        why = defuse_mentions(str(paused.data.get("reason", "")))
        lines.append(
            f"  Paused since {local(paused.at, tz)} ({duration(now - paused.at)} so far) by "
            f"{paused.actor}: {why}; the deadline moves later by the time paused."
        )
    return lines


@group.command(
    "sla",
    summary="explain each deadline: when its clock started, which days were skipped and why",
    details=(
        "Also lists pauses and extensions of the fix clock and the warnings already posted. "
        "Acknowledge and assess count working days in business hours; fix counts calendar days."
    ),
)
async def sla(ctx: CommandContext) -> str:
    case = ctx.the_case
    services = ctx.services
    tz = services.tz
    calendar = services.calendar
    policy = services.config.policy
    fix = await fix_clocks.load(ctx.conn, case.id)
    events = await case_events.history(ctx.conn, case.id)
    days = promise_days(policy)
    lines = [
        f"{case.id}: how its deadlines are counted ({policy.timezone}, business hours "
        f"{policy.business_hours_start}–{policy.business_hours_end} on working days)."
    ]
    for promise in PROMISES:
        deadline = calendar.deadline(case.received_at, promise.counting, days[promise.name])
        if promise.pausable:
            lines.extend(_fix_clock_lines(ctx, fix, promise.label, deadline.explain(tz), events))
            continue
        stored, done = promise.due(case), promise.done(case)
        lines.append(f"{promise.label} — {_state_of(stored, done, ctx.now, tz)}:")
        lines.extend(f"  {line}" for line in deadline.explain(tz).splitlines())
        if deadline.due != stored:
            lines.append(
                f"  Stored deadline: {local(stored, tz)} (counted under the policy settings "
                "in force when the report came in)."
            )
    warned = await sla_warnings.warnings_of(ctx.conn, case.id)
    if warned:
        posted = ", ".join(f"{w.promise} {w.point} ({local(w.warned_at, tz)})" for w in warned)
        lines.append(f"Warnings posted: {posted}.")
    else:
        lines.append("Warnings posted: none yet.")
    lines.append(f"Warning points: {', '.join(policy.warnings)}.")
    return "\n".join(lines)


def _fix_clock_lines(
    ctx: CommandContext,
    fix: FixClock,
    label: str,
    explained: str,
    events: list[case_events.CaseEvent],
) -> list[str]:
    """The fix promise in !sla: its state, how it was counted, and its pauses and extensions."""
    case = ctx.the_case
    tz = ctx.services.tz
    lines = []
    fix_due = effective_fix_due(case, fix, ctx.now)
    if fix.paused and case.fixed_at is None:
        fix_state = f"paused; {time_left(fix_due, ctx.now)} when it restarts"
    else:
        fix_state = _state_of(fix_due, case.fixed_at, ctx.now, tz)
    lines.append(f"{label} — {fix_state}:")
    lines.extend(f"  {line}" for line in explained.splitlines())
    history = _fix_history(events, tz, ctx.now)
    if history:
        lines.extend(history)
        lines.append(f"  Fix deadline now: {local(fix_due, tz)}.")
    return lines


@group.command(
    "pause",
    summary="stop the fix clock while waiting for the reporter or a supplier",
    args=[Arg("reason", "what the team is waiting for", rest=True)],
    details=(
        "Time paused does not count: !resume moves the fix deadline later by exactly the time "
        "paused. Acknowledge and assess keep running; a paused fix clock gets no warnings."
    ),
)
async def pause(ctx: CommandContext, reason: str) -> str:
    case = ctx.the_case
    fix = await fix_clocks.load(ctx.conn, case.id)
    try:
        paused = fix_clock.pause(case, fix, ctx.now, reason)
    except AlreadyPaused as exc:
        raise CommandError(
            f"the fix clock of {case.id} is already paused since "
            f"{local(exc.since, ctx.services.tz)} ({exc.reason}); !resume first."
        ) from None
    except FixClockError as exc:
        raise CommandError(str(exc)) from None
    await fix_clocks.save(ctx.conn, case.id, paused)
    await case_events.record(
        ctx.conn,
        case.id,
        actor=ctx.sender,
        kind="fix_paused",
        at=ctx.now,
        data={"reason": reason, "fix_due": case.fix_due.isoformat()},
    )
    running = [p.name for p in PROMISES if not p.pausable and p.done(case) is None]
    still = ""
    if running:
        verb = "deadline keeps" if len(running) == 1 else "deadlines keep"
        still = f" The {' and '.join(running)} {verb} running."
    return (
        f"⏸️ Fix clock of {case.id} paused by {ctx.sender}: {defuse_mentions(reason)}. Time "
        f"paused does not count; !resume restarts it.{still}"
    )


@group.command("resume", summary="restart the fix clock; the deadline moves by the time paused")
async def resume(ctx: CommandContext) -> str:
    case = ctx.the_case
    fix = await fix_clocks.load(ctx.conn, case.id)
    try:
        resumed = fix_clock.resume(case, fix, ctx.now)
    except FixClockError as exc:
        raise CommandError(str(exc)) from None
    new_due = resumed.case.fix_due
    await ctx.save(
        resumed.case,
        "fix_resumed",
        paused_seconds=int(resumed.paused_for.total_seconds()),
        reason=fix.pause_reason,
        fix_due_before=case.fix_due.isoformat(),
        fix_due=new_due.isoformat(),
    )
    await fix_clocks.save(ctx.conn, case.id, resumed.clock)
    tz = ctx.services.tz
    return (
        f"▶️ Fix clock of {case.id} restarted by {ctx.sender} after "
        f"{duration(resumed.paused_for)} paused: fix due {local(new_due, tz)} "
        f"({time_left(new_due, ctx.now)})."
    )


@group.command(
    "extend",
    summary="record a later fix deadline agreed with the reporter",
    args=[
        Arg(
            "days",
            f"calendar days to add to the fix deadline (1–{MAX_EXTEND_DAYS})",
            pattern=re.compile(r"[1-9][0-9]{0,2}"),
        ),
        Arg("reason", "what was agreed with the reporter, and why", rest=True),
    ],
    details="The deadline keeps its time of day. Warnings start again for the new deadline.",
)
async def extend(ctx: CommandContext, days: str, reason: str) -> str:
    case = ctx.the_case
    count = int(days)
    tz = ctx.services.tz
    fix = await fix_clocks.load(ctx.conn, case.id)
    try:
        extended, fix = fix_clock.extend(case, fix, count, tz)
    except FixClockError as exc:
        raise CommandError(str(exc)) from None
    await ctx.save(
        extended,
        "fix_extended",
        days=count,
        reason=reason,
        fix_due_before=case.fix_due.isoformat(),
        fix_due=extended.fix_due.isoformat(),
    )
    await fix_clocks.save(ctx.conn, case.id, fix)
    calendar = ctx.services.calendar
    points = parse_points(ctx.services.config.policy.warnings, calendar)
    await forget_future_fix_warnings(ctx.conn, extended, fix, calendar, points, ctx.now)
    shown = effective_fix_due(extended, fix, ctx.now)
    paused = " (the clock is paused; !resume adds the time paused)" if fix.paused else ""
    return (
        f"📅 Fix deadline of {case.id} extended by {count} days by {ctx.sender}, agreed with the "
        f"reporter: {defuse_mentions(reason)}. Fix due {local(shown, tz)}{paused}."
    )


_STATES = ("new", "acknowledged", "assessed")
_USER = re.compile(r"@[^\s:]+:\S+")


def _next_deadline(line: CaseLine) -> tuple[str, datetime] | None:
    return min(line.open_promises(), key=lambda item: item[1], default=None)


@group.command(
    "cases",
    summary="list the open cases with state, assignee and next deadline",
    args=[
        Arg(
            "filter",
            "new, acknowledged, assessed, overdue, paused, mine, unassigned, or a user ID",
            optional=True,
        )
    ],
    needs_case=False,
)
async def cases_command(ctx: CommandContext, filter: str | None) -> str:
    wanted = (filter or "").strip()
    lowered = wanted.lower()
    if wanted and not (
        lowered in (*_STATES, "overdue", "paused", "mine", "unassigned") or _USER.fullmatch(wanted)
    ):
        raise CommandError(
            f"unknown filter {wanted!r}: use new, acknowledged, assessed, overdue, paused, "
            "mine, unassigned, or a Matrix user ID"
        )
    tz = ctx.services.tz
    now = ctx.now
    rows = []
    for line in await case_overview.open_cases(ctx.conn):
        upcoming = _next_deadline(line)
        paused = line.fixed_at is None and line.fix_paused_at is not None
        if lowered in _STATES and line.state != lowered:
            continue
        if lowered == "overdue" and not (upcoming and upcoming[1] < now):
            continue
        if lowered == "paused" and not paused:
            continue
        if lowered == "mine" and line.assignee != ctx.sender:
            continue
        if lowered == "unassigned" and line.assignee is not None:
            continue
        if wanted.startswith("@") and line.assignee != wanted:
            continue
        rows.append((upcoming, paused, line))
    far = datetime.max.replace(tzinfo=UTC)
    rows.sort(key=lambda row: (row[0][1] if row[0] else far, row[2].id))
    title = f"Open cases{f' ({wanted})' if wanted else ''}: {len(rows)}"
    if not rows:
        return title + "."
    out = [title]
    for upcoming, paused, line in rows[:CASES_SHOWN]:
        if upcoming:
            nxt = f"{upcoming[0]} by {local(upcoming[1], tz)} ({time_left(upcoming[1], now)})"
        else:
            nxt = "no deadline running"
        if paused:
            nxt += " · fix clock paused"
        subject = shorten(defuse_mentions(" ".join(line.subject.split())), SUBJECT_CHARS)
        out.append(
            f"{line.id} · {line.state} · {line.assignee or 'unassigned'} · {nxt} · "
            f"{subject or '(no subject)'}"
        )
    if len(rows) > CASES_SHOWN:
        out.append(f"… and {len(rows) - CASES_SHOWN} more; narrow it down with a filter.")
    return "\n".join(out)
