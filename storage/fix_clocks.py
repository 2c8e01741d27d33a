"""The fix clock's columns on `cases`: loading and saving a `bot.policy.fix_clock.FixClock`.

The rules (pause, resume, extend) are in the policy core; this module only stores the result.
"""

from __future__ import annotations

from collections.abc import Iterable

import aiosqlite

from bot.policy.fix_clock import FixClock
from storage.times import from_text, to_text

_COLUMNS = "fix_paused_at, fix_pause_reason, fix_paused_seconds, fix_extension_days"
# SQLite's default limit on bound parameters is far above this; chunks keep each IN small.
_CHUNK = 500


def _clock(paused_at: str | None, reason: str | None, seconds: int, days: int) -> FixClock:
    return FixClock(from_text(paused_at), reason, int(seconds), int(days))


async def load(conn: aiosqlite.Connection, case_id: str) -> FixClock:
    async with conn.execute(f"SELECT {_COLUMNS} FROM cases WHERE id = ?", (case_id,)) as cur:
        row = await cur.fetchone()
    if row is None:
        return FixClock()
    return _clock(row[0], row[1], row[2], row[3])


async def load_many(conn: aiosqlite.Connection, case_ids: Iterable[str]) -> dict[str, FixClock]:
    ids = list(case_ids)
    found: dict[str, FixClock] = {}
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        marks = ",".join("?" * len(chunk))
        async with conn.execute(
            f"SELECT id, {_COLUMNS} FROM cases WHERE id IN ({marks})", chunk
        ) as cur:
            for row in await cur.fetchall():
                found[row[0]] = _clock(row[1], row[2], row[3], row[4])
    return found


async def save(conn: aiosqlite.Connection, case_id: str, clock: FixClock) -> None:
    """Store the clock; the SLA watch looks at the case again at its next tick, because
    every change of the clock moves or stops the fix promise's warning points."""
    await conn.execute(
        "UPDATE cases SET fix_paused_at = ?, fix_pause_reason = ?, fix_paused_seconds = ?,"
        " fix_extension_days = ?, next_sla_check_at = '' WHERE id = ?",
        (
            to_text(clock.paused_at) if clock.paused_at is not None else None,
            clock.pause_reason,
            clock.paused_seconds,
            clock.extension_days,
            case_id,
        ),
    )
