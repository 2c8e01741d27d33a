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


@dataclass(frozen=True)
class OutboxProgress:
    """A channel with items waiting: how many, since when, and its last successful send."""

    channel: str
    pending: int
    oldest_created_at: datetime
    last_sent_at: datetime | None


async def outbox_progress(conn: aiosqlite.Connection) -> list[OutboxProgress]:
    """Per channel that has pending items. The last send is looked up through the partial
    index of migration 0013, so the probe does not read the sent history."""
    async with conn.execute(
        "SELECT p.channel, COUNT(*), MIN(p.created_at),"
        " (SELECT MAX(s.sent_at) FROM outbox AS s WHERE s.state = 'sent'"
        " AND s.channel = p.channel)"
        " FROM outbox AS p WHERE p.state = 'pending' GROUP BY p.channel ORDER BY p.channel"
    ) as cur:
        rows = await cur.fetchall()
    progress = []
    for channel, pending, oldest, last_sent in rows:
        created = from_text(oldest)
        assert created is not None
        progress.append(OutboxProgress(str(channel), int(pending), created, from_text(last_sent)))
    return progress


async def outbox_totals(conn: aiosqlite.Connection) -> dict[tuple[str, str], int]:
    """(channel, state) -> number of items: mails sent and failed survive restarts."""
    async with conn.execute(
        "SELECT channel, state, COUNT(*) FROM outbox GROUP BY channel, state"
    ) as cur:
        return {(str(row[0]), str(row[1])): int(row[2]) for row in await cur.fetchall()}
