"""The persisted outbox: every Matrix post and every mail is written here before it is sent.

An item is keyed by an idempotency key chosen by the code that creates it (for example
`reply:<command event id>`), so enqueuing the same thing twice stores it once; the sender
marks it sent in the same place, so a crash between any two steps neither loses nor repeats it.
The payload is stored as the JSON text bot/outbox/payloads.py writes; this module never reads it.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import aiosqlite

Channel = Literal["matrix", "mail"]


@dataclass(frozen=True)
class OutboxItem:
    id: int
    idem_key: str
    channel: Channel
    case_id: str | None
    payload: str  # JSON, see bot/outbox/payloads.py
    attempts: int


async def enqueue(
    conn: aiosqlite.Connection,
    *,
    idem_key: str,
    channel: Channel,
    case_id: str | None,
    payload: str,
    now: datetime,
    priority: int = 1,
) -> bool:
    """Store an item unless one with the same key exists; True when it was new.

    Lower `priority` goes first; within a priority, the order of enqueueing holds.
    """
    cur = await conn.execute(
        "INSERT INTO outbox (idem_key, channel, priority, case_id, payload, next_attempt_at,"
        " created_at) VALUES (?,?,?,?,?,?,?) ON CONFLICT (idem_key) DO NOTHING",
        (
            idem_key,
            channel,
            priority,
            case_id,
            payload,
            now.isoformat(),
            now.isoformat(),
        ),
    )
    return cur.rowcount == 1


# A case's items leave in the order they were queued (per channel): only the earliest pending
# item of each case is ever due, so a later item never overtakes one that is backing off,
# across retries and restarts alike. Items of no case (help answers, the digest) have no
# order among themselves. Uses the partial index of migration 0012.
_HEAD_OF_ITS_CASE = (
    "(o.case_id IS NULL OR NOT EXISTS (SELECT 1 FROM outbox AS e"
    " WHERE e.state = 'pending' AND e.case_id = o.case_id AND e.channel = o.channel"
    " AND e.id < o.id))"
)


async def due(
    conn: aiosqlite.Connection,
    channel: Channel,
    now: datetime,
    limit: int = 50,
    *,
    skip: Collection[int] = (),
) -> list[OutboxItem]:
    """The items to send now, lowest priority first, then in the order queued: per case only
    its earliest pending item (and only when its back-off has ended), never one in `skip`
    (those being sent right now)."""
    skipped = tuple(skip)
    marks = ",".join("?" * len(skipped))
    not_skipped = f" AND o.id NOT IN ({marks})" if skipped else ""
    async with conn.execute(
        "SELECT o.id, o.idem_key, o.channel, o.case_id, o.payload, o.attempts FROM outbox AS o"
        " WHERE o.state = 'pending' AND o.channel = ? AND o.next_attempt_at <= ?"
        f"{not_skipped} AND {_HEAD_OF_ITS_CASE}"
        " ORDER BY o.priority, o.id LIMIT ?",
        (channel, now.isoformat(), *skipped, limit),
    ) as cur:
        rows = await cur.fetchall()
    return [OutboxItem(*row) for row in rows]


async def get(conn: aiosqlite.Connection, item_id: int) -> OutboxItem | None:
    async with conn.execute(
        "SELECT id, idem_key, channel, case_id, payload, attempts FROM outbox WHERE id = ?",
        (item_id,),
    ) as cur:
        row = await cur.fetchone()
    return OutboxItem(*row) if row else None


async def replace_payload(conn: aiosqlite.Connection, item_id: int, *, old: str, new: str) -> bool:
    """Swap a pending item's payload, only if it is still `old`; True when swapped.

    The mail sender stores a mail's sealed bytes this way: whoever stores first wins, and
    every later attempt sends what was stored.
    """
    cur = await conn.execute(
        "UPDATE outbox SET payload = ? WHERE id = ? AND state = 'pending' AND payload = ?",
        (new, item_id, old),
    )
    return cur.rowcount == 1


async def next_due_at(conn: aiosqlite.Connection, channel: Channel) -> datetime | None:
    """When the next item becomes due: items waiting behind an earlier one of their case do
    not count (they are due only after it)."""
    async with conn.execute(
        "SELECT MIN(o.next_attempt_at) FROM outbox AS o WHERE o.state = 'pending'"
        f" AND o.channel = ? AND {_HEAD_OF_ITS_CASE}",
        (channel,),
    ) as cur:
        row = await cur.fetchone()
    return datetime.fromisoformat(row[0]) if row and row[0] else None


async def mark_sent(
    conn: aiosqlite.Connection, item_id: int, result: str | None, now: datetime
) -> None:
    await conn.execute(
        "UPDATE outbox SET state = 'sent', result = ?, sent_at = ?, attempts = attempts + 1,"
        " last_error = NULL WHERE id = ?",
        (result, now.isoformat(), item_id),
    )


async def mark_retry(
    conn: aiosqlite.Connection, item_id: int, error: str, next_attempt_at: datetime
) -> None:
    await conn.execute(
        "UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?"
        " WHERE id = ?",
        (error[:500], next_attempt_at.isoformat(), item_id),
    )


async def mark_failed(conn: aiosqlite.Connection, item_id: int, error: str) -> None:
    await conn.execute(
        "UPDATE outbox SET state = 'failed', attempts = attempts + 1, last_error = ? WHERE id = ?",
        (error[:500], item_id),
    )


async def pending_count(conn: aiosqlite.Connection) -> int:
    async with conn.execute("SELECT COUNT(*) FROM outbox WHERE state = 'pending'") as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def any_pending(conn: aiosqlite.Connection, idem_prefix: str) -> bool:
    """Whether an item whose idempotency key starts with `idem_prefix` is still unsent."""
    async with conn.execute(
        "SELECT 1 FROM outbox WHERE state = 'pending' AND substr(idem_key, 1, ?) = ? LIMIT 1",
        (len(idem_prefix), idem_prefix),
    ) as cur:
        return await cur.fetchone() is not None


async def pending_in(conn: aiosqlite.Connection, channel: Channel) -> int:
    async with conn.execute(
        "SELECT COUNT(*) FROM outbox WHERE state = 'pending' AND channel = ?", (channel,)
    ) as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def retry_now(conn: aiosqlite.Connection, channel: Channel, now: datetime) -> int:
    """Make every pending item of a channel due now, its back-off started over: what waited
    for a reason that is gone (the case room safe again) goes out at once, and the waiting
    does not count against an attachment's attempts. The number of items."""
    cur = await conn.execute(
        "UPDATE outbox SET next_attempt_at = ?, attempts = 0 WHERE state = 'pending'"
        " AND channel = ? AND (next_attempt_at > ? OR attempts > 0)",
        (now.isoformat(), channel, now.isoformat()),
    )
    return cur.rowcount


async def case_of(conn: aiosqlite.Connection, idem_key: str) -> str | None:
    """The case an item was queued for (None: no such item, or not a case's)."""
    async with conn.execute("SELECT case_id FROM outbox WHERE idem_key = ?", (idem_key,)) as cur:
        row = await cur.fetchone()
    return str(row[0]) if row and row[0] is not None else None
