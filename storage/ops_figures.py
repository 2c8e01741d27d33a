"""The figures an operator watches (bot/ops/metrics.py): counts only, never case content."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import aiosqlite

from storage.times import from_text


@dataclass(frozen=True)
class OutboxBacklog:
    pending: int
    oldest_created_at: datetime | None


async def cases_by_state(conn: aiosqlite.Connection) -> dict[str, int]:
    async with conn.execute("SELECT state, COUNT(*) FROM cases GROUP BY state") as cur:
        return {str(row[0]): int(row[1]) for row in await cur.fetchall()}


async def outbox_backlog(conn: aiosqlite.Connection) -> OutboxBacklog:
    async with conn.execute(
        "SELECT COUNT(*), MIN(created_at) FROM outbox WHERE state = 'pending'"
    ) as cur:
        row = await cur.fetchone()
    assert row is not None
    return OutboxBacklog(int(row[0]), from_text(row[1]))


async def outbox_totals(conn: aiosqlite.Connection) -> dict[tuple[str, str], int]:
    """(channel, state) -> number of items: mails sent and failed survive restarts."""
    async with conn.execute(
        "SELECT channel, state, COUNT(*) FROM outbox GROUP BY channel, state"
    ) as cur:
        return {(str(row[0]), str(row[1])): int(row[2]) for row in await cur.fetchall()}
