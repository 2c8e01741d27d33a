"""Intake attempts per mail and the quarantine of mails the intake could not handle."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import aiosqlite

from storage.times import to_text

#: What an attempt that never recorded its end is taken to mean.
DID_NOT_FINISH = "the intake stopped while reading it (the process was killed or crashed)"


@dataclass(frozen=True)
class Attempts:
    """Attempts at one mail begun before this one and not finished, and the last reason."""

    failed: int
    last_error: str | None


async def begin_attempt(conn: aiosqlite.Connection, digest: str, now: datetime) -> Attempts:
    """Count one more attempt at the mail; what earlier unfinished attempts there were."""
    async with conn.execute(
        "SELECT attempts, last_error FROM intake_attempts WHERE digest = ?", (digest,)
    ) as cur:
        row = await cur.fetchone()
    before = Attempts(int(row[0]), row[1]) if row else Attempts(0, None)
    await conn.execute(
        "INSERT INTO intake_attempts (digest, attempts, last_error, updated_at)"
        " VALUES (?, 1, ?, ?) ON CONFLICT (digest) DO UPDATE SET"
        " attempts = attempts + 1, last_error = excluded.last_error,"
        " updated_at = excluded.updated_at",
        (digest, DID_NOT_FINISH, to_text(now)),
    )
    return before


async def record_failure(conn: aiosqlite.Connection, digest: str, error: str, now: datetime) -> int:
    """Say why the current attempt failed; the number of failed attempts so far."""
    await conn.execute(
        "UPDATE intake_attempts SET last_error = ?, updated_at = ? WHERE digest = ?",
        (error, to_text(now), digest),
    )
    async with conn.execute(
        "SELECT attempts FROM intake_attempts WHERE digest = ?", (digest,)
    ) as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else 1


async def finish_attempt(conn: aiosqlite.Connection, digest: str) -> None:
    await conn.execute("DELETE FROM intake_attempts WHERE digest = ?", (digest,))


async def find(conn: aiosqlite.Connection, digest: str) -> int | None:
    """The quarantine ID of the mail with this digest, if it was put aside."""
    async with conn.execute("SELECT id FROM quarantine WHERE digest = ?", (digest,)) as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else None


async def put_aside(
    conn: aiosqlite.Connection,
    *,
    digest: str,
    raw: bytes,
    source: str,
    imap_uid: int | None,
    reason: str,
    received_at: datetime | None,
    now: datetime,
) -> tuple[int, bool]:
    """Store the mail raw with the reason; (its quarantine ID, whether it is new)."""
    existing = await find(conn, digest)
    if existing is not None:
        return existing, False
    cur = await conn.execute(
        "INSERT INTO quarantine (digest, source, imap_uid, raw, size, reason, received_at,"
        " stored_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            digest,
            source,
            imap_uid,
            raw,
            len(raw),
            reason,
            to_text(received_at) if received_at else None,
            to_text(now),
        ),
    )
    await conn.execute("DELETE FROM intake_attempts WHERE digest = ?", (digest,))
    assert cur.lastrowid is not None
    return cur.lastrowid, True
