"""The SLA side of a case: its fix clock (pause, extension), when to look at it again, and
which warnings it has had; plus the figures the managers' digest is built from.

Every query here reads through an index on a small slice of the table (the cases falling
due, the open promises, a recent time window), so its cost follows that slice, not the
number of cases ever handled.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import aiosqlite

PROMISES = ("acknowledge", "assess", "fix")
# Per promise: the column with its deadline and the column that records it was kept.
PROMISE_COLUMNS: dict[str, tuple[str, str]] = {
    "acknowledge": ("acknowledge_due", "acknowledged_at"),
    "assess": ("assess_due", "assessed_at"),
    "fix": ("fix_due", "fixed_at"),
}
OPEN_STATES = ("new", "acknowledged", "assessed")


def _iso(moment: datetime) -> str:
    # Always UTC, so that text comparison in SQL is time order.
    return moment.astimezone(UTC).isoformat()


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


# ------------------------------------------------------------------------------ fix clock


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


async def fix_clock(conn: aiosqlite.Connection, case_id: str) -> FixClock:
    async with conn.execute(
        "SELECT fix_paused_at, fix_pause_reason, fix_paused_seconds, fix_extension_days"
        " FROM cases WHERE id = ?",
        (case_id,),
    ) as cur:
        row = await cur.fetchone()
    if row is None:
        return FixClock()
    return FixClock(_time(row[0]), row[1], int(row[2]), int(row[3]))


async def fix_clocks(conn: aiosqlite.Connection, case_ids: Iterable[str]) -> dict[str, FixClock]:
    ids = list(case_ids)
    found: dict[str, FixClock] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        async with conn.execute(
            "SELECT id, fix_paused_at, fix_pause_reason, fix_paused_seconds, fix_extension_days"
            f" FROM cases WHERE id IN ({marks})",
            chunk,
        ) as cur:
            for row in await cur.fetchall():
                found[row[0]] = FixClock(_time(row[1]), row[2], int(row[3]), int(row[4]))
    return found


async def pause_fix(conn: aiosqlite.Connection, case_id: str, at: datetime, reason: str) -> None:
    await conn.execute(
        "UPDATE cases SET fix_paused_at = ?, fix_pause_reason = ?, next_sla_check_at = ''"
        " WHERE id = ?",
        (_iso(at), reason, case_id),
    )


async def resume_fix(conn: aiosqlite.Connection, case_id: str, paused_seconds: int) -> None:
    """Restart the clock; `paused_seconds` is the new total of paused time."""
    await conn.execute(
        "UPDATE cases SET fix_paused_at = NULL, fix_pause_reason = NULL,"
        " fix_paused_seconds = ?, next_sla_check_at = '' WHERE id = ?",
        (paused_seconds, case_id),
    )


async def extend_fix(conn: aiosqlite.Connection, case_id: str, days: int) -> None:
    await conn.execute(
        "UPDATE cases SET fix_extension_days = fix_extension_days + ?, next_sla_check_at = ''"
        " WHERE id = ?",
        (days, case_id),
    )


# ------------------------------------------------------------------------------ the watch


async def due_for_check(conn: aiosqlite.Connection, now: datetime, limit: int) -> list[str]:
    """Cases whose next SLA check is due ('' = as soon as possible), oldest first."""
    async with conn.execute(
        "SELECT id FROM cases WHERE next_sla_check_at <= ? ORDER BY next_sla_check_at, id LIMIT ?",
        (_iso(now), limit),
    ) as cur:
        return [row[0] for row in await cur.fetchall()]


async def set_next_check(conn: aiosqlite.Connection, case_id: str, at: datetime | None) -> None:
    await conn.execute(
        "UPDATE cases SET next_sla_check_at = ? WHERE id = ?",
        (_iso(at) if at is not None else None, case_id),
    )


async def check_soon(conn: aiosqlite.Connection, case_id: str) -> None:
    """Have the next tick look at a case again.

    Whatever makes a deadline earlier or reopens a promise must call this (or set the
    column itself, as pause, resume and extend do); a change that only keeps promises
    needs not: an early check finds nothing and reschedules.
    """
    await conn.execute("UPDATE cases SET next_sla_check_at = '' WHERE id = ?", (case_id,))


async def next_check(conn: aiosqlite.Connection) -> datetime | str | None:
    """The earliest scheduled check: a time, '' (a case waits to be looked at), or None."""
    async with conn.execute(
        "SELECT next_sla_check_at FROM cases WHERE next_sla_check_at IS NOT NULL"
        " ORDER BY next_sla_check_at LIMIT 1"
    ) as cur:
        row = await cur.fetchone()
    if row is None:
        return None
    return "" if row[0] == "" else datetime.fromisoformat(row[0])


async def next_check_of(conn: aiosqlite.Connection, case_id: str) -> datetime | str | None:
    async with conn.execute("SELECT next_sla_check_at FROM cases WHERE id = ?", (case_id,)) as cur:
        row = await cur.fetchone()
    if row is None or row[0] is None:
        return None
    return "" if row[0] == "" else datetime.fromisoformat(row[0])


@dataclass(frozen=True)
class Warned:
    promise: str
    point: str
    due: datetime
    warned_at: datetime


async def warnings_of(conn: aiosqlite.Connection, case_id: str) -> list[Warned]:
    async with conn.execute(
        "SELECT promise, point, due, warned_at FROM sla_warnings WHERE case_id = ?"
        " ORDER BY warned_at, promise",
        (case_id,),
    ) as cur:
        rows = await cur.fetchall()
    return [
        Warned(row[0], row[1], datetime.fromisoformat(row[2]), datetime.fromisoformat(row[3]))
        for row in rows
    ]


async def record_warning(
    conn: aiosqlite.Connection,
    case_id: str,
    *,
    promise: str,
    point: str,
    due: datetime,
    at: datetime,
) -> bool:
    """Remember a point as warned; False when it already was (then nothing is posted)."""
    cur = await conn.execute(
        "INSERT INTO sla_warnings (case_id, promise, point, due, warned_at) VALUES (?,?,?,?,?)"
        " ON CONFLICT (case_id, promise, point) DO NOTHING",
        (case_id, promise, point, _iso(due), _iso(at)),
    )
    return cur.rowcount == 1


async def forget_warnings(
    conn: aiosqlite.Connection, case_id: str, promise: str, points: Iterable[str]
) -> None:
    for point in points:
        await conn.execute(
            "DELETE FROM sla_warnings WHERE case_id = ? AND promise = ? AND point = ?",
            (case_id, promise, point),
        )


# ------------------------------------------------------------------------------ digest


@dataclass(frozen=True)
class CaseLine:
    """What the digest and !cases show of one case."""

    id: str
    state: str
    subject: str
    assignee: str | None
    severity: str | None
    thread_root_event_id: str | None
    created_at: datetime
    fixed_at: datetime | None
    acknowledge_due: datetime
    assess_due: datetime
    fix_due: datetime
    acknowledged_at: datetime | None
    assessed_at: datetime | None
    fix_paused_at: datetime | None

    def open_promises(self) -> list[tuple[str, datetime]]:
        """(promise, deadline) of each promise not yet kept, a paused fix clock left out."""
        found = []
        if self.state != "fixed":
            if self.acknowledged_at is None:
                found.append(("acknowledge", self.acknowledge_due))
            if self.assessed_at is None:
                found.append(("assess", self.assess_due))
            if self.fixed_at is None and self.fix_paused_at is None:
                found.append(("fix", self.fix_due))
        return found


@dataclass(frozen=True)
class PromiseDue:
    """One open promise with its deadline."""

    case: CaseLine
    promise: str
    due: datetime
    paused: bool


_LINE_COLUMNS = (
    "id, state, subject, assignee, severity, thread_root_event_id, created_at, fixed_at,"
    " acknowledge_due, assess_due, fix_due, acknowledged_at, assessed_at, fix_paused_at"
)


def _line(row: aiosqlite.Row) -> CaseLine:
    return CaseLine(
        id=row["id"],
        state=row["state"],
        subject=row["subject"],
        assignee=row["assignee"],
        severity=row["severity"],
        thread_root_event_id=row["thread_root_event_id"],
        created_at=datetime.fromisoformat(row["created_at"]),
        fixed_at=_time(row["fixed_at"]),
        acknowledge_due=datetime.fromisoformat(row["acknowledge_due"]),
        assess_due=datetime.fromisoformat(row["assess_due"]),
        fix_due=datetime.fromisoformat(row["fix_due"]),
        acknowledged_at=_time(row["acknowledged_at"]),
        assessed_at=_time(row["assessed_at"]),
        fix_paused_at=_time(row["fix_paused_at"]),
    )


async def count_open_by_state(conn: aiosqlite.Connection) -> dict[str, int]:
    """Open cases per state (the cases_state index; fixed cases are not read)."""
    counts = dict.fromkeys(OPEN_STATES, 0)
    async with conn.execute(
        f"SELECT state, COUNT(*) FROM cases WHERE state IN ({','.join('?' * len(OPEN_STATES))})"
        " GROUP BY state",
        OPEN_STATES,
    ) as cur:
        for row in await cur.fetchall():
            counts[row[0]] = int(row[1])
    return counts


async def count_paused(conn: aiosqlite.Connection) -> int:
    async with conn.execute(
        "SELECT COUNT(*) FROM cases WHERE fixed_at IS NULL AND fix_paused_at IS NOT NULL"
    ) as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def created_between(
    conn: aiosqlite.Connection, start: datetime, end: datetime
) -> list[CaseLine]:
    async with conn.execute(
        f"SELECT {_LINE_COLUMNS} FROM cases WHERE created_at >= ? AND created_at < ?"
        " ORDER BY created_at, id",
        (_iso(start), _iso(end)),
    ) as cur:
        return [_line(row) for row in await cur.fetchall()]


async def fixed_between(
    conn: aiosqlite.Connection, start: datetime, end: datetime
) -> list[CaseLine]:
    async with conn.execute(
        f"SELECT {_LINE_COLUMNS} FROM cases WHERE fixed_at >= ? AND fixed_at < ?"
        " ORDER BY fixed_at, id",
        (_iso(start), _iso(end)),
    ) as cur:
        return [_line(row) for row in await cur.fetchall()]


async def open_promises_due_by(conn: aiosqlite.Connection, until: datetime) -> list[PromiseDue]:
    """Every promise not yet kept with a deadline at or before `until` (partial indexes),
    paused fix clocks included and marked, earliest first."""
    found: list[PromiseDue] = []
    for promise, (due_column, done_column) in PROMISE_COLUMNS.items():
        async with conn.execute(
            f"SELECT {_LINE_COLUMNS}, {due_column} AS due FROM cases"
            f" WHERE {done_column} IS NULL AND {due_column} <= ? AND state != 'fixed'",
            (_iso(until),),
        ) as cur:
            for row in await cur.fetchall():
                paused = promise == "fix" and row["fix_paused_at"] is not None
                found.append(
                    PromiseDue(_line(row), promise, datetime.fromisoformat(row["due"]), paused)
                )
    found.sort(key=lambda item: (item.due, item.case.id))
    return found


async def open_cases(conn: aiosqlite.Connection) -> list[CaseLine]:
    async with conn.execute(
        f"SELECT {_LINE_COLUMNS} FROM cases"
        f" WHERE state IN ({','.join('?' * len(OPEN_STATES))}) ORDER BY year, seq",
        OPEN_STATES,
    ) as cur:
        return [_line(row) for row in await cur.fetchall()]


@dataclass(frozen=True)
class OnTime:
    """Promises decided in a window and how many of them were kept in time."""

    kept: int
    decided: int

    @property
    def rate(self) -> float | None:
        return self.kept / self.decided if self.decided else None


async def on_time(
    conn: aiosqlite.Connection, promise: str, start: datetime, end: datetime
) -> OnTime:
    """A promise is decided once, when its outcome became certain: when it was kept, if that
    was in time, else when its deadline passed. Counted if that moment lies in [start, end).

    Two index range reads: kept in time within the window, and deadlines within the window
    that were not kept in time (still open, or kept late).
    """
    due_column, done_column = PROMISE_COLUMNS[promise]
    in_time = f"{done_column} <= {due_column}"
    not_missed = ""
    if promise == "fix":
        # A fix clock paused before its deadline has missed nothing: the stored deadline moves
        # later by the time paused, and a fix recorded during the pause is in time.
        in_time = f"({in_time} OR fix_paused_at <= {due_column})"
        not_missed = f" AND (fix_paused_at IS NULL OR fix_paused_at > {due_column})"
    async with conn.execute(
        f"SELECT COUNT(*) FROM cases WHERE {done_column} >= ? AND {done_column} < ? AND {in_time}",
        (_iso(start), _iso(end)),
    ) as cur:
        row = await cur.fetchone()
    kept = int(row[0]) if row else 0
    async with conn.execute(
        f"SELECT COUNT(*) FROM cases WHERE {due_column} >= ? AND {due_column} < ?"
        f" AND ({done_column} IS NULL OR {done_column} > {due_column})"
        f" AND ({done_column} IS NOT NULL OR state != 'fixed'){not_missed}",
        (_iso(start), _iso(end)),
    ) as cur:
        row = await cur.fetchone()
    missed = int(row[0]) if row else 0
    return OnTime(kept, kept + missed)


async def created_and_fixed_since(
    conn: aiosqlite.Connection, start: datetime
) -> tuple[list[datetime], list[datetime]]:
    """Creation and fix times from `start` on (the chart's day-by-day changes)."""
    async with conn.execute(
        "SELECT created_at FROM cases WHERE created_at >= ?", (_iso(start),)
    ) as cur:
        created = [datetime.fromisoformat(row[0]) for row in await cur.fetchall()]
    async with conn.execute(
        "SELECT fixed_at FROM cases WHERE fixed_at >= ?", (_iso(start),)
    ) as cur:
        fixed = [datetime.fromisoformat(row[0]) for row in await cur.fetchall()]
    return created, fixed
