"""Mails in and out, stored whole (raw bytes) so nothing a reporter sent is ever lost.

An outgoing mail's row is written when it is queued and holds the composed, unsealed bytes
until the outbox seals it; from then on it holds the exact bytes sent (`seal_outgoing`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import aiosqlite


@dataclass(frozen=True)
class StoredMail:
    id: int
    direction: str
    message_id: str
    case_id: str | None
    subject: str
    from_address: str | None
    to_address: str | None


async def find_incoming(conn: aiosqlite.Connection, message_id: str) -> StoredMail | None:
    async with conn.execute(
        "SELECT id, direction, message_id, case_id, subject, from_address, to_address"
        " FROM mails WHERE direction = 'in' AND message_id = ?",
        (message_id,),
    ) as cur:
        row = await cur.fetchone()
    return StoredMail(*row) if row else None


async def is_own_message_id(conn: aiosqlite.Connection, message_id: str) -> bool:
    """Whether the bot itself sent a mail with this Message-ID (so it came back to us)."""
    async with conn.execute(
        "SELECT 1 FROM mails WHERE direction = 'out' AND message_id = ? LIMIT 1",
        (message_id,),
    ) as cur:
        return await cur.fetchone() is not None


async def set_case(conn: aiosqlite.Connection, mail_id: int, case_id: str) -> None:
    """File a stored mail under a case (a report is stored before its case exists)."""
    await conn.execute("UPDATE mails SET case_id = ? WHERE id = ?", (case_id, mail_id))


async def case_for_message_ids(conn: aiosqlite.Connection, message_ids: list[str]) -> str | None:
    """The case of any stored mail (in or out) among `message_ids`, latest reference first."""
    for message_id in reversed(message_ids):
        async with conn.execute(
            "SELECT case_id FROM mails WHERE message_id = ? AND case_id IS NOT NULL LIMIT 1",
            (message_id,),
        ) as cur:
            row = await cur.fetchone()
        if row:
            return str(row[0])
    return None


async def insert_mail(
    conn: aiosqlite.Connection,
    *,
    direction: str,
    message_id: str,
    case_id: str | None,
    source: str,
    raw: bytes,
    subject: str,
    from_address: str | None,
    to_address: str | None,
    sent_date: str | None,
    stored_at: str,
    language: str | None = None,
    is_automatic: bool = False,
    problems: list[str] | None = None,
    thread_ids: list[str] | None = None,
    received_at: str | None = None,
    automatic_reason: str | None = None,
) -> int:
    cur = await conn.execute(
        "INSERT INTO mails (direction, message_id, case_id, source, raw, subject, from_address,"
        " to_address, sent_date, stored_at, language, is_automatic, problems,"
        " thread_ids, received_at, automatic_reason) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            direction,
            message_id,
            case_id,
            source,
            raw,
            subject,
            from_address,
            to_address,
            sent_date,
            stored_at,
            language,
            int(is_automatic),
            json.dumps(problems or []),
            json.dumps(thread_ids or []),
            received_at,
            automatic_reason,
        ),
    )
    assert cur.lastrowid is not None
    return cur.lastrowid


async def seal_outgoing(conn: aiosqlite.Connection, message_id: str, raw: bytes) -> None:
    """Replace an outgoing mail's stored bytes by the signed (and encrypted) bytes sent."""
    await conn.execute(
        "UPDATE mails SET raw = ? WHERE direction = 'out' AND message_id = ?", (raw, message_id)
    )


async def raw_mail(conn: aiosqlite.Connection, mail_id: int) -> bytes | None:
    async with conn.execute("SELECT raw FROM mails WHERE id = ?", (mail_id,)) as cur:
        row = await cur.fetchone()
    return bytes(row[0]) if row else None


async def message_id_of(conn: aiosqlite.Connection, mail_id: int) -> str | None:
    async with conn.execute("SELECT message_id FROM mails WHERE id = ?", (mail_id,)) as cur:
        row = await cur.fetchone()
    return str(row[0]) if row else None


async def references_of(conn: aiosqlite.Connection, mail_id: int) -> list[str]:
    """The References chain a reply to this mail should carry (its own Message-ID last)."""
    async with conn.execute(
        "SELECT message_id, thread_ids FROM mails WHERE id = ?", (mail_id,)
    ) as cur:
        row = await cur.fetchone()
    if row is None:
        return []
    own = str(row[0])
    earlier = [ref for ref in json.loads(row[1]) if ref != own]
    return earlier + [own]


@dataclass(frozen=True)
class CaseMail:
    """One mail of a case as stored, for `cvdbot export` (empty once its data was deleted)."""

    id: int
    direction: str
    message_id: str
    subject: str
    from_address: str | None
    to_address: str | None
    sent_date: str | None
    stored_at: str
    language: str | None
    raw: bytes
    sha256: str | None
    deleted_at: str | None


async def case_mails(conn: aiosqlite.Connection, case_id: str) -> list[CaseMail]:
    """Every mail in and out of a case, in the order they were stored."""
    async with conn.execute(
        "SELECT id, direction, message_id, subject, from_address, to_address, sent_date,"
        " stored_at, language, raw, sha256, deleted_at FROM mails WHERE case_id = ? ORDER BY id",
        (case_id,),
    ) as cur:
        rows = await cur.fetchall()
    return [
        CaseMail(
            id=int(r[0]),
            direction=str(r[1]),
            message_id=str(r[2]),
            subject=str(r[3]),
            from_address=r[4],
            to_address=r[5],
            sent_date=r[6],
            stored_at=str(r[7]),
            language=r[8],
            raw=bytes(r[9]),
            sha256=r[10],
            deleted_at=r[11],
        )
        for r in rows
    ]


async def case_mail(conn: aiosqlite.Connection, case_id: str, ref: str) -> StoredMail | None:
    """An incoming mail of the case named by its stored number or its Message-ID."""
    column, value = ("id", int(ref)) if ref.isdigit() else ("message_id", ref)
    async with conn.execute(
        "SELECT id, direction, message_id, case_id, subject, from_address, to_address"
        f" FROM mails WHERE direction = 'in' AND case_id = ? AND {column} = ?",
        (case_id, value),
    ) as cur:
        row = await cur.fetchone()
    return StoredMail(*row) if row else None


async def latest_from(conn: aiosqlite.Connection, case_id: str, address: str) -> StoredMail | None:
    """The case's latest incoming mail from `address` (the reporter), if any."""
    async with conn.execute(
        "SELECT id, direction, message_id, case_id, subject, from_address, to_address"
        " FROM mails WHERE direction = 'in' AND case_id = ? AND lower(from_address) = lower(?)"
        " ORDER BY id DESC LIMIT 1",
        (case_id, address),
    ) as cur:
        row = await cur.fetchone()
    return StoredMail(*row) if row else None


@dataclass(frozen=True)
class UnsortedMail:
    """An incoming mail filed under no case (automatic or list mail that matched none)."""

    id: int
    source: str
    raw: bytes
    received_at: str


async def unsorted_mail(conn: aiosqlite.Connection, mail_id: int) -> UnsortedMail | None:
    """The incoming mail `mail_id` if it belongs to no case yet (what `!open` may open)."""
    async with conn.execute(
        "SELECT id, source, raw, coalesce(received_at, stored_at) FROM mails"
        " WHERE id = ? AND direction = 'in' AND case_id IS NULL",
        (mail_id,),
    ) as cur:
        row = await cur.fetchone()
    return UnsortedMail(int(row[0]), str(row[1]), bytes(row[2]), str(row[3])) if row else None
