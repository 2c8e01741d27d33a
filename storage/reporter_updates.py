"""What the update warning point and the digest read: when each case last mailed its
reporter, and which quiet periods were warned about (the `update_warnings` table)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import aiosqlite

from bot.policy.lifecycle import CaseState
from storage.case_overview import _LINE_COLUMNS, CaseLine, _line
from storage.times import from_text, to_text

# Any mail the bot sent the case's reporter: the outbox stores each one in `mails` when it
# is queued (bot/mailout/reporter.py), addressed to the case's reporter address.
_LAST_MAIL = (
    "SELECT MAX(stored_at) FROM mails WHERE case_id = cases.id AND direction = 'out'"
    " AND to_address = cases.reporter_address"
)


async def last_reporter_mail_at(conn: aiosqlite.Connection, case_id: str) -> datetime | None:
    async with conn.execute(f"SELECT ({_LAST_MAIL}) FROM cases WHERE id = ?", (case_id,)) as cur:
        row = await cur.fetchone()
    return from_text(row[0]) if row else None


@dataclass(frozen=True)
class WatchedCase:
    """An assessed case with a reporter address, and when it last mailed the reporter."""

    line: CaseLine
    received_at: datetime
    last_mail_at: datetime | None


async def watched_cases(conn: aiosqlite.Connection) -> list[WatchedCase]:
    """Assessed cases with a reporter to update (the cases_state index; mails by case)."""
    async with conn.execute(
        f"SELECT {_LINE_COLUMNS}, received_at, ({_LAST_MAIL}) AS last_mail FROM cases"
        " WHERE state = ? AND reporter_address IS NOT NULL AND data_deleted_at IS NULL"
        " ORDER BY year, seq",
        (CaseState.ASSESSED.value,),
    ) as cur:
        rows = await cur.fetchall()
    return [
        WatchedCase(
            _line(row), datetime.fromisoformat(row["received_at"]), from_text(row["last_mail"])
        )
        for row in rows
    ]


async def was_warned(conn: aiosqlite.Connection, case_id: str, quiet_since: datetime) -> bool:
    async with conn.execute(
        "SELECT 1 FROM update_warnings WHERE case_id = ? AND quiet_since = ?",
        (case_id, to_text(quiet_since)),
    ) as cur:
        return await cur.fetchone() is not None


async def record_warning(
    conn: aiosqlite.Connection, case_id: str, quiet_since: datetime, at: datetime
) -> bool:
    """Remember the quiet period as warned; False when it already was."""
    cur = await conn.execute(
        "INSERT INTO update_warnings (case_id, quiet_since, warned_at) VALUES (?,?,?)"
        " ON CONFLICT (case_id, quiet_since) DO NOTHING",
        (case_id, to_text(quiet_since), to_text(at)),
    )
    return cur.rowcount == 1
