"""The `digests` table: one row per digest moment queued, so a digest goes out once and the
next one knows where its "new since" period starts."""

from __future__ import annotations

from datetime import datetime

import aiosqlite


async def previous_until(conn: aiosqlite.Connection, moment: datetime) -> datetime | None:
    """When the latest digest before `moment` was built, or None if there was none."""
    async with conn.execute(
        "SELECT until FROM digests WHERE moment < ? ORDER BY moment DESC LIMIT 1",
        (moment.isoformat(),),
    ) as cur:
        row = await cur.fetchone()
    return datetime.fromisoformat(row[0]) if row is not None else None


async def any_queued(conn: aiosqlite.Connection) -> bool:
    async with conn.execute("SELECT 1 FROM digests LIMIT 1") as cur:
        return await cur.fetchone() is not None


async def is_queued(conn: aiosqlite.Connection, moment: datetime) -> bool:
    async with conn.execute("SELECT 1 FROM digests WHERE moment = ?", (moment.isoformat(),)) as cur:
        return await cur.fetchone() is not None


async def record(
    conn: aiosqlite.Connection, moment: datetime, since: datetime, until: datetime
) -> bool:
    """Record the digest of `moment` as queued (built at `until`); False when it already was,
    and then nothing of it may be queued again."""
    cur = await conn.execute(
        "INSERT INTO digests (moment, since, until, queued_at) VALUES (?,?,?,?)"
        " ON CONFLICT (moment) DO NOTHING",
        (moment.isoformat(), since.isoformat(), until.isoformat(), until.isoformat()),
    )
    return cur.rowcount == 1
