"""The storage the watch and the fix clock use: fix clock rows, the digests table, and the
case overview's open promises (a paused fix clock marked, a kept promise left out)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.policy.fix_clock import FixClock
from bot.policy.workdays import WorkingCalendar
from storage import case_overview, digests, fix_clocks, next_checks
from storage.db import Database
from tests.unit.test_sla_watch import RECEIVED, add_case, at
from tests.unit.test_sla_watch import calendar as calendar  # noqa: F401 - fixture
from tests.unit.test_sla_watch import config as config  # noqa: F401 - fixture


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(tmp_path / "cvdbot.sqlite3")
    yield database
    await database.close()


async def test_fix_clock_round_trip_asks_the_watch_to_look_again(
    db: Database,
    calendar: WorkingCalendar,  # noqa: F811
) -> None:
    case = await add_case(db, calendar)
    clock = FixClock(
        paused_at=at(3, 10), pause_reason="vendor", paused_seconds=3600, extension_days=7
    )
    async with db.transaction() as conn:
        assert await fix_clocks.load(conn, case.id) == FixClock()
        await next_checks.set_next_check(conn, case.id, at(20, 9))
        await fix_clocks.save(conn, case.id, clock)
        assert await fix_clocks.load(conn, case.id) == clock
        assert await fix_clocks.load_many(conn, [case.id, "CVD-2026-9999"]) == {case.id: clock}
        assert await next_checks.next_check_of(conn, case.id) == ""
        await fix_clocks.save(conn, case.id, FixClock(paused_seconds=7200))
        assert await fix_clocks.load(conn, case.id) == FixClock(paused_seconds=7200)
        assert await fix_clocks.load(conn, "CVD-2026-9999") == FixClock()


async def test_digests_are_recorded_once_per_moment(db: Database) -> None:
    first = datetime(2026, 11, 2, 7, 30, tzinfo=UTC)
    second = first + timedelta(days=1)
    async with db.transaction() as conn:
        assert not await digests.any_queued(conn)
        assert await digests.previous_until(conn, second) is None
        assert await digests.record(conn, first, first - timedelta(days=3), first)
        assert not await digests.record(conn, first, first, first + timedelta(hours=1))
        assert await digests.any_queued(conn)
        assert await digests.is_queued(conn, first)
        assert not await digests.is_queued(conn, second)
        assert await digests.previous_until(conn, second) == first
        assert await digests.previous_until(conn, first) is None


async def test_open_promises_mark_a_paused_fix_clock(
    db: Database,
    calendar: WorkingCalendar,  # noqa: F811
) -> None:
    received = RECEIVED.astimezone(UTC)
    kept = await add_case(db, calendar, acknowledged_at=received + timedelta(hours=1))
    async with db.transaction() as conn:
        await fix_clocks.save(conn, kept.id, FixClock(paused_at=at(3, 9), pause_reason="x"))
        due = await case_overview.open_promises_due_by(conn, at(1, 9, month=3, year=2027))
        (line,) = await case_overview.open_cases(conn)
    assert [(d.promise, d.paused) for d in due] == [("assess", False), ("fix", True)]
    assert line.open_promises() == [("assess", kept.assess_due)]
    assert line.due["fix"] == kept.fix_due and line.done["acknowledge"] == kept.acknowledged_at
