"""Storage: migrations, private file, case IDs, outbox idempotency, handled events."""

from __future__ import annotations

import sqlite3
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from storage import cases, outbox, sync_state
from storage.db import Database, DatabaseTooNewError, Migration, migrations, savepoint

NOW = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)


async def test_migrations_apply_once_and_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "db" / "cvdbot.sqlite3"
    db = await Database.open(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert await db.migrate() == []  # already applied at open
    async with db.transaction() as conn:
        async with conn.execute("SELECT version FROM schema_migrations") as cur:
            versions = [row[0] for row in await cur.fetchall()]
        async with conn.execute("PRAGMA journal_mode") as cur:
            mode = (await cur.fetchone())[0]
    assert versions == [version for version, _, _ in migrations()]
    assert mode == "wal"
    await db.close()


# A trigger body and a string literal that both hold ';': splitting the file at every ';'
# by hand (as the runner once did) breaks both.
_TRICKY: Migration = (
    1,
    "0001_tricky.sql",
    """
    -- a comment; with a semicolon
    CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL, edits INTEGER DEFAULT 0);
    CREATE TRIGGER notes_edited AFTER UPDATE OF body ON notes BEGIN
        UPDATE notes SET edits = edits + 1 WHERE id = NEW.id;
    END;
    INSERT INTO notes (body) VALUES ('first; second -- not a comment');
    """,
)


async def _rows(db: Database, sql: str) -> list[tuple[object, ...]]:
    async with db.transaction() as conn:
        async with conn.execute(sql) as cur:
            return [tuple(row) for row in await cur.fetchall()]


async def test_a_migration_runs_whole_with_semicolons_in_strings_and_triggers(
    tmp_path: Path,
) -> None:
    db = await Database.open(tmp_path / "x.sqlite3", known=[_TRICKY])
    assert await _rows(db, "SELECT body, edits FROM notes") == [
        ("first; second -- not a comment", 0)
    ]
    async with db.transaction() as conn:
        await conn.execute("UPDATE notes SET body = 'changed' WHERE id = 1")
    assert await _rows(db, "SELECT body, edits FROM notes") == [("changed", 1)]
    assert await _rows(db, "SELECT version, name FROM schema_migrations") == [
        (1, "0001_tricky.sql")
    ]
    await db.close()


async def test_a_failing_migration_leaves_no_trace(tmp_path: Path) -> None:
    path = tmp_path / "x.sqlite3"
    broken: Migration = (
        2,
        "0002_broken.sql",
        "CREATE TABLE half (id INTEGER);\nINSERT INTO notes (body) VALUES ('x');\n"
        "INSERT INTO no_such_table VALUES (1);\n",
    )
    with pytest.raises(sqlite3.OperationalError, match="no_such_table"):
        await Database.open(path, known=[_TRICKY, broken])
    # The first migration stays applied; nothing of the second: no table, no row, no version.
    db = await Database.open(path, known=[_TRICKY])
    assert await _rows(db, "SELECT version FROM schema_migrations") == [(1,)]
    assert await _rows(db, "SELECT count(*) FROM notes") == [(1,)]
    assert await _rows(db, "SELECT name FROM sqlite_master WHERE name = 'half'") == []
    await db.close()


async def test_a_migration_may_not_end_its_own_transaction(tmp_path: Path) -> None:
    sneaky: Migration = (1, "0001_sneaky.sql", "CREATE TABLE a (id INTEGER);\nCOMMIT;\n")
    with pytest.raises(RuntimeError, match="must not contain BEGIN, COMMIT"):
        await Database.open(tmp_path / "x.sqlite3", known=[sneaky])


async def test_a_database_newer_than_the_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.sqlite3"
    newer: Migration = (99, "0099_future.sql", "CREATE TABLE future (id INTEGER);")
    db = await Database.open(path, known=[*migrations(), newer])
    await db.close()
    with pytest.raises(DatabaseTooNewError) as refused:
        await Database.open(path)
    newest = migrations()[-1][0]
    assert (refused.value.found, refused.value.known) == (99, newest)
    assert "schema version 99" in str(refused.value)
    assert f"up to version {newest}" in str(refused.value)
    # Refused before anything changed: the newer schema is as it was.
    db = await Database.open(path, known=[*migrations(), newer])
    assert await _rows(db, "SELECT max(version) FROM schema_migrations") == [(99,)]
    await db.close()


async def test_case_ids_per_year_never_reused(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "x.sqlite3")
    async with db.transaction() as conn:
        first = await cases.allocate_case_id(conn, 2026)
        second = await cases.allocate_case_id(conn, 2026)
        other_year = await cases.allocate_case_id(conn, 2027)
    assert (first, second, other_year) == (
        ("CVD-2026-0001", 1),
        ("CVD-2026-0002", 2),
        ("CVD-2027-0001", 1),
    )
    try:
        async with db.transaction() as conn:
            await cases.allocate_case_id(conn, 2026)
            raise RuntimeError("rolled back")
    except RuntimeError:
        pass
    async with db.transaction() as conn:
        assert await cases.allocate_case_id(conn, 2026) == ("CVD-2026-0003", 3)
    await db.close()


async def test_outbox_is_idempotent_and_orders_by_due_time(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "x.sqlite3")
    async with db.transaction() as conn:
        assert await outbox.enqueue(
            conn, idem_key="k1", channel="mail", case_id=None, payload='{"a": 1}', now=NOW
        )
        assert not await outbox.enqueue(
            conn, idem_key="k1", channel="mail", case_id=None, payload='{"a": 2}', now=NOW
        )
        await outbox.enqueue(
            conn, idem_key="k2", channel="mail", case_id=None, payload='{"a": 3}', now=NOW
        )
        items = await outbox.due(conn, "mail", NOW)
        assert [(i.idem_key, i.payload) for i in items] == [("k1", '{"a": 1}'), ("k2", '{"a": 3}')]
        await outbox.mark_retry(conn, items[0].id, "down", NOW + timedelta(seconds=4))
        await outbox.mark_sent(conn, items[1].id, "<id@x>", NOW)
        assert await outbox.due(conn, "mail", NOW) == []
        assert await outbox.next_due_at(conn, "mail") == NOW + timedelta(seconds=4)
        later = await outbox.due(conn, "mail", NOW + timedelta(seconds=5))
        assert [(i.idem_key, i.attempts) for i in later] == [("k1", 1)]
        assert await outbox.due(conn, "matrix", NOW + timedelta(days=1)) == []
    await db.close()


async def test_outbox_payload_is_replaced_only_once_and_only_while_pending(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "x.sqlite3")
    async with db.transaction() as conn:
        await outbox.enqueue(
            conn, idem_key="m", channel="mail", case_id=None, payload="unsealed", now=NOW
        )
        (item,) = await outbox.due(conn, "mail", NOW)
        assert await outbox.replace_payload(conn, item.id, old="unsealed", new="sealed-1")
        # A second sealer holding the old payload loses: the first stored bytes stay.
        assert not await outbox.replace_payload(conn, item.id, old="unsealed", new="sealed-2")
        stored = await outbox.get(conn, item.id)
        assert stored is not None and stored.payload == "sealed-1"
        await outbox.mark_sent(conn, item.id, "<id@x>", NOW)
        assert not await outbox.replace_payload(conn, item.id, old="sealed-1", new="sealed-3")
        assert await outbox.get(conn, item.id + 1) is None
    await db.close()


async def test_handled_events_and_positions(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "x.sqlite3")
    async with db.transaction() as conn:
        assert await sync_state.mark_event_handled(conn, "$e", NOW)
        assert not await sync_state.mark_event_handled(conn, "$e", NOW)
        assert await sync_state.imap_position(conn, "INBOX") is None
        await sync_state.set_imap_position(conn, "INBOX", 7, 12)
        await sync_state.set_imap_position(conn, "INBOX", 7, 13)
        assert await sync_state.imap_position(conn, "INBOX") == (7, 13)
        await sync_state.set_value(conn, "k", "v1")
        await sync_state.set_value(conn, "k", "v2")
        assert await sync_state.get_value(conn, "k") == "v2"
    await db.close()


async def test_savepoint_undoes_only_the_failed_step(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "x.sqlite3")
    async with db.transaction() as conn:
        kept = await cases.allocate_case_id(conn, 2026)
        try:
            async with savepoint(conn, "step"):
                await cases.allocate_case_id(conn, 2026)
                raise RuntimeError("the step fails")
        except RuntimeError:
            pass
        after = await cases.allocate_case_id(conn, 2026)
    assert (kept, after) == (("CVD-2026-0001", 1), ("CVD-2026-0002", 2))
    await db.close()
