"""Cases: allocating IDs, reading and saving `bot.policy.lifecycle.Case` rows."""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime
from typing import Any

import aiosqlite

from bot.policy.lifecycle import WORKING_STATES, Case, CaseState, format_case_id
from bot.policy.promises import PROMISES

_DATETIME_FIELDS = {
    "received_at",
    "imported_at",
    *(promise.due_field for promise in PROMISES),
    *(promise.done_field for promise in PROMISES),
    "outcome_at",
    "closed_at",
    "delete_after",
    "data_deleted_at",
}
_COLUMNS = [f.name for f in fields(Case)]

#: The working states as an SQL list, for "open cases" (the clocks run; see lifecycle.py).
WORKING_STATES_SQL = ", ".join(f"'{state.value}'" for state in sorted(WORKING_STATES))


def _to_row(case: Case) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for name in _COLUMNS:
        value = getattr(case, name)
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, CaseState):
            value = value.value
        row[name] = value
    return row


def _from_row(row: aiosqlite.Row) -> Case:
    values: dict[str, Any] = {}
    for name in _COLUMNS:
        value = row[name]
        if name in _DATETIME_FIELDS and value is not None:
            value = datetime.fromisoformat(value)
        values[name] = value
    values["state"] = CaseState(values["state"])
    return Case(**values)


async def allocate_case_id(conn: aiosqlite.Connection, year: int) -> tuple[str, int]:
    """The next case ID of `year`. IDs are never reused: the counter only grows."""
    await conn.execute(
        "INSERT INTO case_counters (year, last_seq) VALUES (?, 1)"
        " ON CONFLICT (year) DO UPDATE SET last_seq = last_seq + 1",
        (year,),
    )
    async with conn.execute("SELECT last_seq FROM case_counters WHERE year = ?", (year,)) as cur:
        row = await cur.fetchone()
    assert row is not None
    seq = int(row[0])
    return format_case_id(year, seq), seq


async def insert_case(
    conn: aiosqlite.Connection, case: Case, year: int, seq: int, now: str
) -> None:
    row = _to_row(case)
    row.update(year=year, seq=seq, created_at=now, updated_at=now)
    names = ", ".join(row)
    marks = ", ".join(f":{name}" for name in row)
    await conn.execute(f"INSERT INTO cases ({names}) VALUES ({marks})", row)


async def save_case(conn: aiosqlite.Connection, case: Case, now: str) -> None:
    row = _to_row(case)
    row["updated_at"] = now
    assignments = ", ".join(f"{name} = :{name}" for name in row if name != "id")
    await conn.execute(f"UPDATE cases SET {assignments} WHERE id = :id", row)


async def get_case(conn: aiosqlite.Connection, case_id: str) -> Case | None:
    async with conn.execute("SELECT * FROM cases WHERE id = ?", (case_id,)) as cur:
        row = await cur.fetchone()
    return _from_row(row) if row else None


async def case_by_thread_root(conn: aiosqlite.Connection, event_id: str) -> Case | None:
    async with conn.execute(
        "SELECT * FROM cases WHERE thread_root_event_id = ?", (event_id,)
    ) as cur:
        row = await cur.fetchone()
    return _from_row(row) if row else None


async def list_cases(conn: aiosqlite.Connection, *, open_only: bool = False) -> list[Case]:
    sql = "SELECT * FROM cases"
    if open_only:
        sql += f" WHERE state IN ({WORKING_STATES_SQL})"
    async with conn.execute(sql + " ORDER BY year, seq") as cur:
        return [_from_row(row) for row in await cur.fetchall()]


async def set_thread_events(
    conn: aiosqlite.Connection, case_id: str, *, last: str, root: str | None = None
) -> None:
    """Remember the thread root (once) and the thread's latest bot message."""
    if root is not None:
        await conn.execute(
            "UPDATE cases SET thread_root_event_id = ?, thread_last_event_id = ? WHERE id = ?",
            (root, last, case_id),
        )
    else:
        await conn.execute(
            "UPDATE cases SET thread_last_event_id = ? WHERE id = ?", (last, case_id)
        )


async def case_ids_of_reporter(conn: aiosqlite.Connection, address: str) -> list[str]:
    """Every case whose reporter is `address`, oldest first."""
    async with conn.execute(
        "SELECT id FROM cases WHERE lower(reporter_address) = ? ORDER BY year, seq",
        (address.lower(),),
    ) as cur:
        return [str(row[0]) for row in await cur.fetchall()]
