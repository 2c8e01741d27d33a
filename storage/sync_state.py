"""Where the bot left off: the Matrix sync token, handled event IDs, the IMAP position."""

from __future__ import annotations

from datetime import datetime

import aiosqlite


async def get_value(conn: aiosqlite.Connection, key: str) -> str | None:
    async with conn.execute("SELECT value FROM kv WHERE key = ?", (key,)) as cur:
        row = await cur.fetchone()
    return str(row[0]) if row else None


async def set_value(conn: aiosqlite.Connection, key: str, value: str) -> None:
    await conn.execute(
        "INSERT INTO kv (key, value) VALUES (?, ?)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


async def mark_event_handled(conn: aiosqlite.Connection, event_id: str, at: datetime) -> bool:
    """Record a Matrix event as handled; False when it already was (a replayed sync)."""
    cur = await conn.execute(
        "INSERT INTO handled_events (event_id, handled_at) VALUES (?, ?)"
        " ON CONFLICT (event_id) DO NOTHING",
        (event_id, at.isoformat()),
    )
    return cur.rowcount == 1


async def imap_position(conn: aiosqlite.Connection, folder: str) -> tuple[int, int] | None:
    """(UIDVALIDITY, last UID ingested) for a folder, or None before the first run."""
    async with conn.execute(
        "SELECT uidvalidity, last_uid FROM imap_state WHERE folder = ?", (folder,)
    ) as cur:
        row = await cur.fetchone()
    return (int(row[0]), int(row[1])) if row else None


async def set_imap_position(
    conn: aiosqlite.Connection, folder: str, uidvalidity: int, last_uid: int
) -> None:
    await conn.execute(
        "INSERT INTO imap_state (folder, uidvalidity, last_uid) VALUES (?,?,?)"
        " ON CONFLICT (folder) DO UPDATE SET uidvalidity = excluded.uidvalidity,"
        " last_uid = excluded.last_uid",
        (folder, uidvalidity, last_uid),
    )
