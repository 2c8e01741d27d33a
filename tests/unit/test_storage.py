"""Storage: migrations, private file, case IDs, outbox idempotency, handled events."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

from storage import cases, outbox, sync_state
from storage.db import Database, migrations, savepoint

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
