"""The scheduler and the digest's timing: jobs derived from the database at start, the first
tick catching up at once, the next tick planned at the next due check, one digest per
working day, and no digest on a new installation's first start.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.config import Config
from bot.pgp.gpg import Pgp
from bot.policy.workdays import WorkingCalendar
from bot.services import calendar_rules
from bot.watch.digest import DigestService
from bot.watch.digest_contents import due_until, moment_at_or_before
from bot.watch.scheduler import make_scheduler
from storage import outbox
from storage.db import Database
from tests.unit.test_sla_commands import MovableClock
from tests.unit.test_sla_watch import add_case, at, make_config

EIGHT_THIRTY = datetime(2000, 1, 1, 8, 30).time()


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return make_config(tmp_path)


@pytest.fixture
def calendar(config: Config) -> WorkingCalendar:
    return WorkingCalendar(calendar_rules(config.policy))


@pytest.fixture
async def db(tmp_path: Path) -> Any:
    database = await Database.open(tmp_path / "cvdbot.sqlite3")
    yield database
    await database.close()


def test_digest_moments_follow_working_days(calendar: WorkingCalendar) -> None:
    # Monday 2 November 2026 before 08:30: the previous digest was Friday's.
    assert moment_at_or_before(calendar, EIGHT_THIRTY, at(2, 8)) == at(30, 8, 30, month=10)
    assert moment_at_or_before(calendar, EIGHT_THIRTY, at(2, 8, 30)) == at(2, 8, 30)
    # Sunday: Friday. Christmas week: Boxing Day (Sat) and Christmas (Fri) are not working.
    assert moment_at_or_before(calendar, EIGHT_THIRTY, at(1, 12)) == at(30, 8, 30, month=10)
    assert moment_at_or_before(calendar, EIGHT_THIRTY, at(27, 12, month=12)) == at(
        24, 8, 30, month=12
    )
    # Due within 3 working days, counted from Friday: Friday, Monday, Tuesday 17:00.
    assert due_until(calendar, at(6, 9), 3) == at(10, 17)
    assert due_until(calendar, at(7, 9), 1) == at(9, 17)  # Saturday: from Monday


async def test_one_digest_per_working_day(
    db: Database, config: Config, calendar: WorkingCalendar, tmp_path: Path
) -> None:
    service = DigestService(db, config, calendar, Pgp(tmp_path / "gnupg", None, None))
    assert service.due_moment(at(2, 8, 29)) is None  # not yet
    assert service.due_moment(at(7, 10)) is None  # Saturday
    assert await service.any_queued() is False
    assert await service.send_if_due(at(2, 8, 30)) is True
    assert await service.send_if_due(at(2, 15)) is False
    assert await service.any_queued() is True
    async with db.transaction() as conn:
        items = await outbox.due(conn, "matrix", at(2, 9))
    assert [item.idem_key for item in items] == [
        "digest:2026-11-02:room",
        "digest:2026-11-02:chart",
    ]
    # Tuesday's digest lists what is new since Monday's was built.
    digest = await service.build(at(3, 8, 30))
    assert digest.since == at(2, 8, 30)


async def test_start_catches_up_and_plans_the_next_tick(
    db: Database, config: Config, calendar: WorkingCalendar, tmp_path: Path
) -> None:
    case = await add_case(db, calendar)
    clock = MovableClock(at(3, 14))  # acknowledge half time (13:30) has passed
    queued: list[bool] = []
    scheduler = make_scheduler(
        db,
        config,
        calendar,
        Pgp(tmp_path / "gnupg", None, None),
        clock,
        lambda: queued.append(True),
    )
    scheduler.start()
    try:
        for _ in range(100):
            async with db.transaction() as conn:
                items = await outbox.due(conn, "matrix", clock.now())
            if items:
                break
            await asyncio.sleep(0.05)
        assert [item.case_id for item in items] == [case.id], "the first tick runs at start"
        assert queued
        # Next: one working day left, Wednesday 09:00, 19 hours after the clock's now.
        await scheduler.tick_sla()
        job = scheduler._aps.get_job("sla-next")
        assert job is not None
        expected = datetime.now(UTC) + timedelta(hours=19)
        assert abs(job.next_run_time - expected) < timedelta(seconds=5)
        # A new installation: no digest at start although it is past 08:30 on a weekday.
        assert scheduler._aps.get_job("digest-catch-up") is None  # it has run
        await asyncio.sleep(0.2)
        assert await scheduler.digests.any_queued() is False
    finally:
        await scheduler.stop()


async def test_start_sends_the_digest_missed_this_morning(
    db: Database, config: Config, calendar: WorkingCalendar, tmp_path: Path
) -> None:
    digests = DigestService(db, config, calendar, Pgp(tmp_path / "gnupg", None, None))
    assert await digests.send_if_due(at(2, 8, 30)) is True  # Monday's went out
    clock = MovableClock(at(3, 11))  # down at Tuesday 08:30, back at 11:00
    scheduler = make_scheduler(
        db, config, calendar, Pgp(tmp_path / "gnupg", None, None), clock, lambda: None
    )
    scheduler.start()
    try:
        for _ in range(100):
            if scheduler.digests.due_moment(clock.now()) and await scheduler.digests._queued(
                at(3, 8, 30)
            ):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("Tuesday's digest was not sent at start")
        digest = await scheduler.digests.build(at(3, 11))
        assert digest.since == at(2, 8, 30)
    finally:
        await scheduler.stop()
