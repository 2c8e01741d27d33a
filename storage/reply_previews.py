"""The `reply_previews` table: each `!reply`'s exact mail, until `!send` sends the latest."""

from __future__ import annotations

from datetime import datetime

import aiosqlite

from bot.policy.reply_preview import ReplyPreview
from storage.times import from_text, to_text

_COLUMNS = (
    "case_id, number, created_at, created_by, language, to_address, text, subject, body,"
    " encrypted, sent_at, sent_by"
)


def _preview(row: aiosqlite.Row) -> ReplyPreview:
    return ReplyPreview(
        case_id=row["case_id"],
        number=int(row["number"]),
        created_at=datetime.fromisoformat(row["created_at"]),
        created_by=row["created_by"],
        language=row["language"],
        to_address=row["to_address"],
        text=row["text"],
        subject=row["subject"],
        body=row["body"],
        encrypted=bool(row["encrypted"]),
        sent_at=from_text(row["sent_at"]),
        sent_by=row["sent_by"],
    )


async def latest(conn: aiosqlite.Connection, case_id: str) -> ReplyPreview | None:
    async with conn.execute(
        f"SELECT {_COLUMNS} FROM reply_previews WHERE case_id = ? ORDER BY number DESC LIMIT 1",
        (case_id,),
    ) as cur:
        row = await cur.fetchone()
    return _preview(row) if row else None


async def add(
    conn: aiosqlite.Connection,
    *,
    case_id: str,
    event_id: str,
    created_at: datetime,
    created_by: str,
    language: str,
    to_address: str,
    text: str,
    subject: str,
    body: str,
    encrypted: bool,
) -> ReplyPreview:
    """Store a new preview, numbered after the case's latest; it supersedes that one."""
    async with conn.execute(
        "SELECT COALESCE(MAX(number), 0) + 1 FROM reply_previews WHERE case_id = ?", (case_id,)
    ) as cur:
        row = await cur.fetchone()
    number = int(row[0]) if row else 1
    await conn.execute(
        "INSERT INTO reply_previews (case_id, number, created_at, created_by, event_id,"
        " language, to_address, text, subject, body, encrypted) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        (
            case_id,
            number,
            to_text(created_at),
            created_by,
            event_id,
            language,
            to_address,
            text,
            subject,
            body,
            int(encrypted),
        ),
    )
    preview = await latest(conn, case_id)
    assert preview is not None and preview.number == number
    return preview


async def mark_sent(
    conn: aiosqlite.Connection, case_id: str, number: int, *, at: datetime, by: str
) -> bool:
    """Record the preview as sent; False when it already was (then nothing may be queued)."""
    cur = await conn.execute(
        "UPDATE reply_previews SET sent_at = ?, sent_by = ?"
        " WHERE case_id = ? AND number = ? AND sent_at IS NULL",
        (to_text(at), by, case_id, number),
    )
    return cur.rowcount == 1
