"""What the digest and !cases read about many cases at once: one line per case, open counts,
the open promises falling due, and the share of promises kept in time.

Every query reads through an index on a small slice of the table (the open promises, a
recent time window), so its cost follows that slice, not the number of cases ever handled.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import aiosqlite

from bot.policy.lifecycle import WORKING_STATES, CaseState
from bot.policy.promises import BY_NAME, PROMISES
from storage.cases import WORKING_STATES_SQL
from storage.times import from_text, to_text

# The working states, in lifecycle order (bot/policy/lifecycle.py decides which they are).
OPEN_STATES = tuple(state.value for state in CaseState if state in WORKING_STATES)


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
    fix_paused_at: datetime | None
    due: Mapping[str, datetime]  # per promise name
    done: Mapping[str, datetime | None]  # per promise name: when it was kept

    def open_promises(self) -> list[tuple[str, datetime]]:
        """(promise, deadline) of each promise not yet kept, a paused fix clock left out."""
        if not CaseState(self.state).clocks_run:
            return []
        return [
            (promise.name, self.due[promise.name])
            for promise in PROMISES
            if self.done[promise.name] is None
            and not (promise.pausable and self.fix_paused_at is not None)
        ]


@dataclass(frozen=True)
class PromiseDue:
    """One open promise with its deadline."""

    case: CaseLine
    promise: str
    due: datetime
    paused: bool


_PROMISE_COLUMNS = ", ".join(
    column for promise in PROMISES for column in (promise.due_field, promise.done_field)
)
_LINE_COLUMNS = (
    "id, state, subject, assignee, severity, thread_root_event_id, created_at, fix_paused_at, "
    + _PROMISE_COLUMNS
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
        fixed_at=from_text(row["fixed_at"]),
        fix_paused_at=from_text(row["fix_paused_at"]),
        due={p.name: datetime.fromisoformat(row[p.due_field]) for p in PROMISES},
        done={p.name: from_text(row[p.done_field]) for p in PROMISES},
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
        (to_text(start), to_text(end)),
    ) as cur:
        return [_line(row) for row in await cur.fetchall()]


async def fixed_between(
    conn: aiosqlite.Connection, start: datetime, end: datetime
) -> list[CaseLine]:
    async with conn.execute(
        f"SELECT {_LINE_COLUMNS} FROM cases WHERE fixed_at >= ? AND fixed_at < ?"
        " ORDER BY fixed_at, id",
        (to_text(start), to_text(end)),
    ) as cur:
        return [_line(row) for row in await cur.fetchall()]


async def open_promises_due_by(conn: aiosqlite.Connection, until: datetime) -> list[PromiseDue]:
    """Every promise not yet kept with a deadline at or before `until` (partial indexes),
    paused fix clocks included and marked, earliest first."""
    found: list[PromiseDue] = []
    for promise in PROMISES:
        due_column, done_column = promise.due_field, promise.done_field
        async with conn.execute(
            f"SELECT {_LINE_COLUMNS}, {due_column} AS due FROM cases"
            f" WHERE {done_column} IS NULL AND {due_column} <= ?"
            f" AND state IN ({WORKING_STATES_SQL})",
            (to_text(until),),
        ) as cur:
            for row in await cur.fetchall():
                paused = promise.pausable and row["fix_paused_at"] is not None
                found.append(
                    PromiseDue(_line(row), promise.name, datetime.fromisoformat(row["due"]), paused)
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
    conn: aiosqlite.Connection, promise_name: str, start: datetime, end: datetime
) -> OnTime:
    """A promise is decided once, when its outcome became certain: when it was kept, if that
    was in time, else when its deadline passed. Counted if that moment lies in [start, end).

    Two index range reads: kept in time within the window, and deadlines within the window
    that were not kept in time (still open, or kept late).
    """
    promise = BY_NAME[promise_name]
    due_column, done_column = promise.due_field, promise.done_field
    in_time = f"{done_column} <= {due_column}"
    not_missed = ""
    if promise.pausable:
        # A fix clock paused before its deadline has missed nothing: the stored deadline moves
        # later by the time paused, and a fix recorded during the pause is in time.
        in_time = f"({in_time} OR fix_paused_at <= {due_column})"
        not_missed = f" AND (fix_paused_at IS NULL OR fix_paused_at > {due_column})"
    async with conn.execute(
        f"SELECT COUNT(*) FROM cases WHERE {done_column} >= ? AND {done_column} < ? AND {in_time}",
        (to_text(start), to_text(end)),
    ) as cur:
        row = await cur.fetchone()
    kept = int(row[0]) if row else 0
    async with conn.execute(
        f"SELECT COUNT(*) FROM cases WHERE {due_column} >= ? AND {due_column} < ?"
        f" AND ({done_column} IS NULL OR {done_column} > {due_column})"
        # An outcome recorded before the deadline (a rejection, say) leaves nothing missed.
        f" AND ({done_column} IS NOT NULL OR outcome_at IS NULL OR outcome_at > {due_column})"
        f"{not_missed}",
        (to_text(start), to_text(end)),
    ) as cur:
        row = await cur.fetchone()
    missed = int(row[0]) if row else 0
    return OnTime(kept, kept + missed)


async def created_and_fixed_since(
    conn: aiosqlite.Connection, start: datetime
) -> tuple[list[datetime], list[datetime]]:
    """Creation and fix times from `start` on (the chart's day-by-day changes)."""
    async with conn.execute(
        "SELECT created_at FROM cases WHERE created_at >= ?", (to_text(start),)
    ) as cur:
        created = [datetime.fromisoformat(row[0]) for row in await cur.fetchall()]
    async with conn.execute(
        "SELECT fixed_at FROM cases WHERE fixed_at >= ?", (to_text(start),)
    ) as cur:
        fixed = [datetime.fromisoformat(row[0]) for row in await cur.fetchall()]
    return created, fixed


async def lines_of(conn: aiosqlite.Connection, case_ids: list[str]) -> list[CaseLine]:
    """The lines of the given cases, in the order given."""
    found: dict[str, CaseLine] = {}
    for start in range(0, len(case_ids), 200):
        chunk = case_ids[start : start + 200]
        marks = ",".join("?" * len(chunk))
        async with conn.execute(
            f"SELECT {_LINE_COLUMNS} FROM cases WHERE id IN ({marks})", chunk
        ) as cur:
            for row in await cur.fetchall():
                found[row["id"]] = _line(row)
    return [found[case_id] for case_id in case_ids if case_id in found]
