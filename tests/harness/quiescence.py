"""Waiting until a bot has nothing left to do, so a test can then count exactly.

The outbox is the only way anything leaves the bot, and a sent mail's thread note is queued
in the same transaction that marks the mail sent: once no row is pending, every post and
mail the bot has accepted so far is out (and SMTP has recorded it). Quiescent also means
nothing is due: no row waits for its retry time (it is still pending) and no SLA check's
time has passed (a warning it posts would come after the count). Then nothing more
follows until something new comes in.

What "something new" the bot has taken in is a separate wait: a mail is read once the bot's
stored IMAP position reaches its UID, a command once its event is recorded as handled; both
are committed in the same transaction as (or after) what they queue, so waiting for them and
then for quiescence leaves no window in which a late effect could still be on its way.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from tests.harness.person import Person


def outbox_counts(db_path: Path) -> dict[str, int]:
    with sqlite3.connect(db_path) as conn:
        rows = conn.execute("SELECT state, COUNT(*) FROM outbox GROUP BY state").fetchall()
    return {str(state): int(count) for state, count in rows}


def overdue_sla_checks(db_path: Path) -> list[str]:
    """Cases whose SLA check has a time that has passed: the bot's next tick may warn.

    '' ("as soon as possible", every new or changed case) is left to the minute tick and not
    waited for: its deadlines are days away in these tests, so it posts nothing, and waiting
    for it would cost up to 60 s per count.
    """
    now = datetime.now(UTC).isoformat()
    with sqlite3.connect(db_path) as conn:
        rows = conn.execute(
            "SELECT id FROM cases WHERE next_sla_check_at != '' AND next_sla_check_at <= ?",
            (now,),
        ).fetchall()
    return [str(row[0]) for row in rows]


async def _until(probe: Callable[[], str | None], timeout: float) -> None:
    """Poll `probe` (None: done; else what is still missing) until done or `timeout`."""
    deadline = time.monotonic() + timeout
    while (missing := probe()) is not None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"after {timeout} s: {missing}")
        await asyncio.sleep(0.1)


async def wait_quiescent(db_path: Path, timeout: float = 60.0) -> dict[str, int]:
    """Until nothing is due: no outbox row pending (due now or backing off) and no SLA check
    overdue; returns the outbox counts by state. A failed row is an error: it would never be
    sent."""
    counts: dict[str, int] = {}

    def busy() -> str | None:
        nonlocal counts
        counts = outbox_counts(db_path)
        if counts.get("failed"):
            raise AssertionError(f"outbox rows failed: {counts}")
        if counts.get("pending"):
            return f"the outbox still has pending rows: {counts}"
        overdue = overdue_sla_checks(db_path)
        return f"SLA checks overdue: {overdue}" if overdue else None

    await _until(busy, timeout)
    return counts


async def wait_mail_read(
    db_path: Path, uid: int, folder: str = "INBOX", timeout: float = 60.0
) -> None:
    """Until the bot has taken the mail with IMAP UID `uid` (its stored position reached
    it): whatever that mail queues is in the outbox by then."""

    def unread() -> str | None:
        with sqlite3.connect(db_path) as conn:
            row = conn.execute(
                "SELECT last_uid FROM imap_state WHERE folder = ?", (folder,)
            ).fetchone()
        last = int(row[0]) if row else 0
        return None if last >= uid else f"the bot read {folder} up to UID {last}, not {uid}"

    await _until(unread, timeout)


async def wait_handled(db_path: Path, event_id: str, timeout: float = 60.0) -> None:
    """Until the bot has handled a Matrix event (a command, an edit, a redaction): it is
    recorded in the same transaction as the command's effects."""

    def unhandled() -> str | None:
        with sqlite3.connect(db_path) as conn:
            row = conn.execute(
                "SELECT 1 FROM handled_events WHERE event_id = ?", (event_id,)
            ).fetchone()
        return None if row else f"event {event_id} not handled"

    await _until(unhandled, timeout)


# Payload kinds the outbox posts to the case room (bot/outbox/matrix_channel.py); the
# kinds "room" and "image" name their room in the payload. "redaction" and "deleted" (a
# row emptied by retention) are not posts a person receives.
CASE_ROOM_KINDS = ("root", "thread", "unsorted", "media", "file")
ROOM_KINDS = ("room", "image")


def sent_posts(db_path: Path, room_id: str, *, case_room: str | None = None) -> set[str]:
    """The event IDs of every post the outbox marked sent to `room_id`. `case_room` is the
    deployment's case room; by default `room_id` is it."""
    case_room = room_id if case_room is None else case_room
    with sqlite3.connect(db_path) as conn:
        rows = conn.execute(
            "SELECT result FROM outbox WHERE channel = 'matrix' AND state = 'sent'"
            " AND result IS NOT NULL AND ("
            f"  (json_extract(payload, '$.kind') IN {CASE_ROOM_KINDS} AND ? = ?)"
            f"  OR (json_extract(payload, '$.kind') IN {ROOM_KINDS}"
            "       AND json_extract(payload, '$.room_id') = ?))",
            (room_id, case_room, room_id),
        ).fetchall()
    return {str(row[0]) for row in rows}


async def wait_seen(
    db_path: Path,
    person: Person,
    room_id: str,
    *,
    case_room: str | None = None,
    timeout: float = 60.0,
) -> None:
    """Until `person` has received every post the outbox marked sent to `room_id` so far
    (a post redacted since counts when they saw the redaction). Call it once nothing is
    pending: their view of the room is then complete, and counting in it is exact."""
    sent = sent_posts(db_path, room_id, case_room=case_room)

    def unseen() -> str | None:
        received = {m.event_id for m in person.messages(room_id)}
        missing = sent - received - set(person.redacted(room_id))
        if not missing:
            return None
        undecryptable = {e.event_id for e in person.undecryptable(room_id)} & missing
        return (
            f"{person.user_id} has not received {sorted(missing - undecryptable)}"
            f" and cannot decrypt {sorted(undecryptable)}"
        )

    await _until(unseen, timeout)


async def wait_quiescent_and_seen(
    db_path: Path,
    person: Person,
    room_id: str,
    timeout: float = 60.0,
    *,
    case_room: str | None = None,
) -> dict[str, int]:
    """Quiescent, and `person` has received every post the bot sent to `room_id`: their
    view of the room is complete, so counting in it is exact (a duplicate could not still be
    on its way to them)."""
    counts = await wait_quiescent(db_path, timeout)
    await wait_seen(db_path, person, room_id, case_room=case_room, timeout=timeout)
    return counts
