"""The `case_decisions` table: credit, consent, reward, IBD share and publication per case
(bot/policy/decisions.py), and the lists the digest and the SLA watch read from it."""

from __future__ import annotations

from dataclasses import fields
from datetime import date, datetime
from typing import Any

import aiosqlite

from bot.policy.decisions import Decisions
from storage.times import to_text

_COLUMNS = [f.name for f in fields(Decisions)]
_DATETIMES = {
    "credit_at",
    "consent_at",
    "reward_at",
    "ibd_shared_at",
    "ibd_updated_at",
    "publish_at",
}


def _to_row(d: Decisions) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for name in _COLUMNS:
        value = getattr(d, name)
        if isinstance(value, datetime):
            value = to_text(value)
        elif isinstance(value, date):
            value = value.isoformat()
        elif isinstance(value, bool):
            value = int(value)
        row[name] = value
    return row


def _from_row(row: aiosqlite.Row) -> Decisions:
    values: dict[str, Any] = {name: row[name] for name in _COLUMNS}
    for name in _DATETIMES:
        values[name] = datetime.fromisoformat(values[name]) if values[name] else None
    values["share_contact"] = bool(values["share_contact"])
    values["publish_date"] = (
        date.fromisoformat(values["publish_date"]) if values["publish_date"] else None
    )
    return Decisions(**values)


async def load(conn: aiosqlite.Connection, case_id: str) -> Decisions:
    """The case's decisions, or the defaults when nothing was decided yet."""
    async with conn.execute("SELECT * FROM case_decisions WHERE case_id = ?", (case_id,)) as cur:
        row = await cur.fetchone()
    return _from_row(row) if row else Decisions(case_id)


async def save(conn: aiosqlite.Connection, d: Decisions) -> None:
    row = _to_row(d)
    names = ", ".join(row)
    marks = ", ".join(f":{name}" for name in row)
    updates = ", ".join(f"{name} = excluded.{name}" for name in row if name != "case_id")
    await conn.execute(
        f"INSERT INTO case_decisions ({names}) VALUES ({marks})"
        f" ON CONFLICT (case_id) DO UPDATE SET {updates}",
        row,
    )


async def not_shared_with_ibd(conn: aiosqlite.Connection) -> list[str]:
    """Assessed cases (not spam, data not deleted) never shared with the IBD, oldest first."""
    async with conn.execute(
        "SELECT c.id FROM cases c LEFT JOIN case_decisions d ON d.case_id = c.id"
        " WHERE c.assessed_at IS NOT NULL AND d.ibd_shared_at IS NULL"
        " AND c.state != 'spam' AND c.data_deleted_at IS NULL"
        " ORDER BY c.assessed_at, c.id"
    ) as cur:
        return [row[0] for row in await cur.fetchall()]


async def pending_rewards(conn: aiosqlite.Connection) -> list[tuple[str, str]]:
    """(case ID, state) of every reward proposed and not decided, or approved and not sent."""
    async with conn.execute(
        "SELECT case_id, reward_state FROM case_decisions"
        " WHERE reward_state IN ('proposed', 'approved') ORDER BY reward_at, case_id"
    ) as cur:
        return [(row[0], row[1]) for row in await cur.fetchall()]
