"""Commands under faults, through the real dispatcher and database: an edit is not run, a
redacted command never runs, two !ack at once give one mail, and a database that refuses
writes (disk full) keeps nothing of a step. On the real servers:
tests/integration/test_room_trust.py."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.policy.workdays import WorkingCalendar
from bot.services import calendar_rules
from commands.dispatch import EDIT_NOTE, IncomingMessage
from storage import cases
from storage.db import Database, StorageUnavailable, is_transient
from tests.unit.test_sla_commands import MovableClock, Room
from tests.unit.test_sla_watch import ALICE, BOB, add_case, at, make_config

CASE_ROOM = "!cases:example.org"


@pytest.fixture
async def room(tmp_path: Path) -> AsyncIterator[Room]:
    db = await Database.open(tmp_path / "cvdbot.sqlite3")
    yield Room(db, make_config(tmp_path), MovableClock(at(3, 10)))
    await db.close()


def message(room: Room, event_id: str, body: str, **more: Any) -> IncomingMessage:
    return IncomingMessage(
        room_id=CASE_ROOM,
        event_id=event_id,
        sender=more.pop("sender", ALICE),
        body=body,
        sent_at=room.clock.now(),
        thread_root=more.pop("thread_root", None),
        **more,
    )


async def outbox_rows(db: Database) -> list[tuple[str, str, str | None, dict[str, Any]]]:
    async with db.transaction() as conn:
        async with conn.execute(
            "SELECT idem_key, channel, case_id, payload FROM outbox ORDER BY id"
        ) as cur:
            return [(r[0], r[1], r[2], json.loads(r[3])) for r in await cur.fetchall()]


async def test_an_edited_command_is_not_run_and_gets_one_note(room: Room) -> None:
    case = await add_case(room.db, WorkingCalendar(calendar_rules(make_config(Path()).policy)))
    thread = case.thread_root_event_id
    assert await room.dispatcher.handle(message(room, "$ack", "!ack", thread_root=thread))
    edit = message(room, "$edit", "!ack", replaces="$ack")
    assert await room.dispatcher.handle(edit)
    assert not await room.dispatcher.handle(edit), "a replayed edit is not answered twice"
    rows = await outbox_rows(room.db)
    assert [(key, channel) for key, channel, _, _ in rows] == [
        ("mail:$ack", "mail"),
        ("reply:$ack", "matrix"),
        ("reply:$edit", "matrix"),
    ]
    _, _, case_id, note = rows[2]
    assert case_id == case.id, "the note goes into the original command's case thread"
    assert note["body"] == EDIT_NOTE
    # An edit of a plain message that now reads as a command: the note, nothing run.
    assert await room.dispatcher.handle(message(room, "$edit2", "!fixed", replaces="$chat"))
    async with room.db.transaction() as conn:
        stored = await cases.get_case(conn, case.id)
    assert stored is not None and stored.state.value == "acknowledged"
    assert len(await outbox_rows(room.db)) == 4


async def test_a_redacted_command_never_runs(room: Room) -> None:
    case = await add_case(room.db, WorkingCalendar(calendar_rules(make_config(Path()).policy)))
    await room.dispatcher.forget(CASE_ROOM, "$ack")  # e.g. it waited for its room key
    ack = message(room, "$ack", "!ack", thread_root=case.thread_root_event_id)
    assert not await room.dispatcher.handle(ack)
    assert await outbox_rows(room.db) == []


async def test_two_acks_at_the_same_moment_give_one_mail_and_one_refusal(room: Room) -> None:
    case = await add_case(room.db, WorkingCalendar(calendar_rules(make_config(Path()).policy)))
    thread = case.thread_root_event_id
    await asyncio.gather(
        room.dispatcher.handle(message(room, "$a", "!ack", thread_root=thread)),
        room.dispatcher.handle(message(room, "$b", "!ack", thread_root=thread, sender=BOB)),
    )
    rows = await outbox_rows(room.db)
    assert [key for key, channel, _, _ in rows if channel == "mail"] == ["mail:$a"]
    replies = [p["body"] for key, _, _, p in rows if key.startswith("reply:")]
    assert sum("acknowledged by" in r for r in replies) == 1
    assert sum("already acknowledged" in r for r in replies) == 1


async def test_a_full_disk_keeps_nothing_of_the_step_and_the_next_one_works(room: Room) -> None:
    case = await add_case(room.db, WorkingCalendar(calendar_rules(make_config(Path()).policy)))
    ack = message(room, "$ack", "!ack", thread_root=case.thread_root_event_id)
    room.db.fail_writes = "database or disk is full"
    with pytest.raises(StorageUnavailable, match="disk is full"):
        await room.dispatcher.handle(ack)
    async with room.db.transaction() as conn:  # reading still works
        stored = await cases.get_case(conn, case.id)
    assert stored is not None and stored.state.value == "new"
    room.db.fail_writes = None
    assert await outbox_rows(room.db) == []
    assert await room.dispatcher.handle(ack), "not marked handled: runs once space is back"
    assert [key for key, _, _, _ in await outbox_rows(room.db)] == ["mail:$ack", "reply:$ack"]


async def test_a_broken_statement_is_a_bug_not_a_storage_fault(room: Room) -> None:
    with pytest.raises(sqlite3.OperationalError) as caught:
        async with room.db.transaction() as conn:
            await conn.execute("SELECT * FROM no_such_table")
    assert not isinstance(caught.value, StorageUnavailable)
    assert not is_transient(caught.value)
    assert is_transient(sqlite3.OperationalError("database or disk is full"))
    full = sqlite3.OperationalError("x")
    full.sqlite_errorcode = 13  # type: ignore[attr-defined]  # SQLITE_FULL
    assert is_transient(full)


async def test_another_process_commit_changes_data_version(room: Room, tmp_path: Path) -> None:
    before = await room.db.data_version()
    async with room.db.transaction() as conn:  # our own commit: no change
        await conn.execute("INSERT INTO kv (key, value) VALUES ('a', 'b')")
    assert await room.db.data_version() == before
    with sqlite3.connect(tmp_path / "cvdbot.sqlite3") as other:
        other.execute("INSERT INTO kv (key, value) VALUES ('c', 'd')")
    assert await room.db.data_version() != before
