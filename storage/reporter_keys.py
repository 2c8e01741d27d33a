"""Reporter keys as trust on first use: which key of an address is pinned, which wait for a
team member's decision (`!key accept` / `!key reject`), and which were rejected or replaced.
Only the pinned key is encrypted to (bot/mailout/sealing.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import aiosqlite

KeyStatus = Literal["pinned", "pending", "rejected", "replaced"]


@dataclass(frozen=True)
class KeyRecord:
    address: str
    fingerprint: str
    status: KeyStatus
    recorded_at: datetime
    case_id: str | None


_COLUMNS = "address, fingerprint, status, imported_at, case_id"


def _record(row: tuple[object, ...]) -> KeyRecord:
    status = str(row[2])
    assert status in ("pinned", "pending", "rejected", "replaced")
    return KeyRecord(
        str(row[0]),
        str(row[1]),
        status,  # type: ignore[arg-type]
        datetime.fromisoformat(str(row[3])),
        None if row[4] is None else str(row[4]),
    )


async def keys_of(conn: aiosqlite.Connection, address: str) -> list[KeyRecord]:
    """Every key recorded for `address`, oldest first."""
    async with conn.execute(
        f"SELECT {_COLUMNS} FROM reporter_keys WHERE address = ? ORDER BY imported_at, rowid",
        (address.lower(),),
    ) as cur:
        return [_record(tuple(row)) for row in await cur.fetchall()]


async def record_key(
    conn: aiosqlite.Connection,
    *,
    address: str,
    fingerprint: str,
    status: KeyStatus,
    mail_id: int | None,
    case_id: str | None,
    at: datetime,
) -> bool:
    """Record a key seen for `address`; False when it was recorded already (unchanged)."""
    cur = await conn.execute(
        "INSERT INTO reporter_keys (address, fingerprint, mail_id, case_id, imported_at, status)"
        " VALUES (?,?,?,?,?,?) ON CONFLICT DO NOTHING",
        (address.lower(), fingerprint, mail_id, case_id, at.isoformat(), status),
    )
    return cur.rowcount == 1


async def decide(
    conn: aiosqlite.Connection,
    *,
    address: str,
    fingerprint: str,
    accept: bool,
    by: str,
    at: datetime,
) -> None:
    """`!key accept` pins `fingerprint` (the pinned one becomes 'replaced'); reject marks it."""
    if accept:
        await conn.execute(
            "UPDATE reporter_keys SET status = 'replaced', decided_by = ?, decided_at = ?"
            " WHERE address = ? AND status = 'pinned'",
            (by, at.isoformat(), address.lower()),
        )
    await conn.execute(
        "UPDATE reporter_keys SET status = ?, decided_by = ?, decided_at = ?"
        " WHERE address = ? AND fingerprint = ?",
        ("pinned" if accept else "rejected", by, at.isoformat(), address.lower(), fingerprint),
    )


async def key_choice(conn: aiosqlite.Connection, address: str) -> tuple[str | None, list[str]]:
    """(the pinned fingerprint or None, the recorded fingerprints that must not be used)."""
    records = await keys_of(conn, address)
    pinned = [r.fingerprint for r in records if r.status == "pinned"]
    others = [r.fingerprint for r in records if r.status != "pinned"]
    return (pinned[-1] if pinned else None), others
