"""The `sla_warnings` table: which warning point of which promise each case has been told
about, recorded with the post so a point is warned exactly once across restarts."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import aiosqlite

from storage.times import to_text


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
        (case_id, promise, point, to_text(due), to_text(at)),
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
