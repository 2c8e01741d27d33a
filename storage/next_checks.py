"""When the SLA watch must look at each case again: the `cases.next_sla_check_at` column.

'' means "as soon as possible", NULL "nothing to watch". The tick reads only the rows that
are due, through an index, so its cost follows the cases falling due, not all cases.
"""

from __future__ import annotations

from datetime import datetime

import aiosqlite

from storage.times import to_text


def _check_time(text: str | None) -> datetime | str | None:
    if text is None:
        return None
    return "" if text == "" else datetime.fromisoformat(text)


async def due_for_check(conn: aiosqlite.Connection, now: datetime, limit: int) -> list[str]:
    """Cases whose next SLA check is due ('' = as soon as possible), oldest first."""
    async with conn.execute(
        "SELECT id FROM cases WHERE next_sla_check_at <= ? ORDER BY next_sla_check_at, id LIMIT ?",
        (to_text(now), limit),
    ) as cur:
        return [row[0] for row in await cur.fetchall()]


async def set_next_check(conn: aiosqlite.Connection, case_id: str, at: datetime | None) -> None:
    await conn.execute(
        "UPDATE cases SET next_sla_check_at = ? WHERE id = ?",
        (to_text(at) if at is not None else None, case_id),
    )


async def check_soon(conn: aiosqlite.Connection, case_id: str) -> None:
    """Have the next tick look at a case again.

    Whatever makes a deadline earlier or reopens a promise must call this (saving a fix
    clock does it itself); a change that only keeps promises needs not: an early check
    finds nothing and reschedules.
    """
    await conn.execute("UPDATE cases SET next_sla_check_at = '' WHERE id = ?", (case_id,))


async def next_check(conn: aiosqlite.Connection) -> datetime | str | None:
    """The earliest scheduled check: a time, '' (a case waits to be looked at), or None."""
    async with conn.execute(
        "SELECT next_sla_check_at FROM cases WHERE next_sla_check_at IS NOT NULL"
        " ORDER BY next_sla_check_at LIMIT 1"
    ) as cur:
        row = await cur.fetchone()
    return None if row is None else _check_time(row[0])


async def next_check_of(conn: aiosqlite.Connection, case_id: str) -> datetime | str | None:
    async with conn.execute("SELECT next_sla_check_at FROM cases WHERE id = ?", (case_id,)) as cur:
        row = await cur.fetchone()
    return None if row is None else _check_time(row[0])
