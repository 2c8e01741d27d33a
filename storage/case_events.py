"""The per-case audit log: who changed what, when."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiosqlite


@dataclass(frozen=True)
class CaseEvent:
    at: datetime
    actor: str
    kind: str
    data: dict[str, Any]


async def record(
    conn: aiosqlite.Connection,
    case_id: str,
    *,
    actor: str,
    kind: str,
    at: datetime,
    data: dict[str, Any] | None = None,
) -> None:
    await conn.execute(
        "INSERT INTO case_events (case_id, at, actor, kind, data) VALUES (?,?,?,?,?)",
        (case_id, at.isoformat(), actor, kind, json.dumps(data or {}, default=str)),
    )


async def history(conn: aiosqlite.Connection, case_id: str) -> list[CaseEvent]:
    async with conn.execute(
        "SELECT at, actor, kind, data FROM case_events WHERE case_id = ? ORDER BY id", (case_id,)
    ) as cur:
        rows = await cur.fetchall()
    return [CaseEvent(datetime.fromisoformat(r[0]), r[1], r[2], json.loads(r[3])) for r in rows]
