"""What /healthz judges (bot/ops/health.py through bot/ops/http.py's Monitor), on a real
database and a clock the test moves: a sync loop that stopped completing rounds, a mailbox
that is disconnected (and one that is connected but quiet), an outbox that stalled against
one that works off a long burst, and a loop that ended."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.ops.health import Liveness, PartHealth
from bot.ops.http import Monitor
from storage import outbox
from storage.db import Database
from storage.outbox import Channel

LIMIT = 60.0
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


class Clock:
    """One moved clock for both the heartbeats (monotonic) and the database times (wall)."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def monotonic(self) -> float:
        return self.seconds

    def now(self) -> datetime:
        return T0 + timedelta(seconds=self.seconds)

    def advance(self, seconds: float) -> None:
        self.seconds += seconds


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(tmp_path / "cvdbot.sqlite3")
    yield database
    await database.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


class Bot:
    """The Monitor as the app wires it, with switches for the IMAP connection and loops."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self.clock = clock
        self.db = db
        self.imap_connected = True
        self.ended: list[str] = []
        self.liveness = Liveness(clock.monotonic)
        self.monitor = Monitor(
            db,
            stall_after=LIMIT,
            liveness=self.liveness,
            imap_connected=lambda: self.imap_connected,
            tasks_alive=lambda: self.ended,
            now=clock.now,
        )

    def beat_all(self) -> None:
        self.liveness.beat("sync")
        self.liveness.beat("imap")

    async def parts(self) -> dict[str, PartHealth]:
        return {part.name: part for part in await self.monitor.health()}

    async def failed(self) -> list[str]:
        return [name for name, part in (await self.parts()).items() if not part.ok]

    async def enqueue(self, count: int, channel: Channel = "matrix", prefix: str = "post") -> None:
        async with self.db.transaction() as conn:
            for number in range(count):
                await outbox.enqueue(
                    conn,
                    idem_key=f"{prefix}:{self.clock.seconds}:{number}",
                    channel=channel,
                    case_id=None,
                    payload="{}",
                    now=self.clock.now(),
                )

    async def send_one(self, channel: Channel = "matrix") -> None:
        """What the worker does after a successful send: the oldest due item is marked sent."""
        async with self.db.transaction() as conn:
            (item,) = await outbox.due(conn, channel, self.clock.now(), limit=1)
            await outbox.mark_sent(conn, item.id, "$event", self.clock.now())


@pytest.fixture
def bot(db: Database, clock: Clock) -> Bot:
    return Bot(db, clock)


async def test_a_fresh_bot_is_healthy_and_everything_beating_is_healthy(
    bot: Bot, clock: Clock
) -> None:
    parts = await bot.parts()
    assert list(parts) == ["sync", "imap", "outbox"]
    assert all(part.ok for part in parts.values())
    assert parts["sync"].detail == "starting; no completed sync yet"
    clock.advance(LIMIT * 10)
    bot.beat_all()
    clock.advance(LIMIT - 1)
    assert await bot.failed() == []
    assert (await bot.parts())["outbox"].detail == "nothing waiting"


async def test_a_sync_loop_that_stops_completing_rounds_fails_after_the_limit(
    bot: Bot, clock: Clock
) -> None:
    bot.beat_all()
    clock.advance(LIMIT)
    bot.liveness.beat("imap")
    assert await bot.failed() == []  # exactly the limit: still healthy
    clock.advance(1)
    bot.liveness.beat("imap")
    assert await bot.failed() == ["sync"]
    assert (await bot.parts())["sync"].detail == "last completed sync 61 s ago (limit 60 s)"
    bot.liveness.beat("sync")
    assert await bot.failed() == []


async def test_a_sync_that_never_completed_fails_once_the_start_is_longer_ago_than_the_limit(
    bot: Bot, clock: Clock
) -> None:
    clock.advance(LIMIT + 1)
    bot.liveness.beat("imap")
    assert await bot.failed() == ["sync"]
    assert (await bot.parts())["sync"].detail == "no completed sync since the start 61 s ago"


async def test_a_disconnected_mailbox_fails_and_a_connected_quiet_one_does_not(
    bot: Bot, clock: Clock
) -> None:
    bot.beat_all()
    clock.advance(LIMIT * 5)
    bot.liveness.beat("sync")
    # IDLE with no mail for five minutes: the connection is up, nothing to do.
    assert await bot.failed() == []
    assert (await bot.parts())["imap"].detail == "connected, waiting for mail"
    bot.imap_connected = False
    assert await bot.failed() == ["imap"]
    assert (await bot.parts())["imap"].detail == "last mailbox activity 300 s ago (limit 60 s)"


async def test_a_reconnecting_mailbox_does_not_flap(bot: Bot, clock: Clock) -> None:
    """Disconnected, but active within the limit: a reconnect under way is not a failure."""
    bot.beat_all()
    bot.imap_connected = False
    clock.advance(LIMIT - 1)
    bot.liveness.beat("sync")
    assert await bot.failed() == []


async def test_an_outbox_working_off_a_long_burst_is_healthy(bot: Bot, clock: Clock) -> None:
    """300 posts at once, one leaving every 2 s: the oldest waits for ten minutes, yet the
    outbox makes progress all the time."""
    await bot.enqueue(300)
    for _ in range(300):
        clock.advance(2)
        bot.beat_all()
        await bot.send_one()
        if clock.seconds % 100 == 0:
            assert await bot.failed() == [], clock.seconds
    parts = await bot.parts()
    assert parts["outbox"].ok
    assert parts["outbox"].detail == "nothing waiting"


async def test_an_outbox_that_sends_nothing_for_the_limit_is_stalled(
    bot: Bot, clock: Clock
) -> None:
    await bot.enqueue(5)
    clock.advance(1)
    await bot.send_one()
    clock.advance(LIMIT)
    bot.beat_all()
    assert await bot.failed() == []
    clock.advance(1)
    bot.beat_all()
    assert await bot.failed() == ["outbox"]
    assert (await bot.parts())["outbox"].detail == (
        "matrix: 4 waiting, last sent 61 s ago, no progress for 61 s (limit 60 s)"
    )
    await bot.send_one()  # the homeserver is back
    assert await bot.failed() == []


async def test_a_new_burst_after_a_quiet_day_is_judged_by_its_own_age(
    bot: Bot, clock: Clock
) -> None:
    """The last send was yesterday; items queued a moment ago have not stalled yet."""
    await bot.enqueue(1)
    await bot.send_one()
    clock.advance(86_400)
    bot.beat_all()
    await bot.enqueue(3)
    clock.advance(LIMIT)
    bot.beat_all()
    assert await bot.failed() == []
    clock.advance(1)
    bot.beat_all()
    assert await bot.failed() == ["outbox"]


async def test_one_stuck_channel_is_stalled_while_the_other_sends(bot: Bot, clock: Clock) -> None:
    """Matrix posts keep leaving; the SMTP server is down: the outbox is stalled, for smtp."""
    await bot.enqueue(3, channel="mail", prefix="mail")
    await bot.enqueue(100)
    for _ in range(40):
        clock.advance(2)
        await bot.send_one()
    bot.beat_all()
    detail = (await bot.parts())["outbox"].detail
    assert await bot.failed() == ["outbox"]
    assert detail == "mail: 3 waiting, no progress for 80 s (limit 60 s)"


async def test_a_restarted_bot_gets_the_limit_before_old_items_count_as_stalled(
    db: Database, clock: Clock
) -> None:
    """Items left pending by the previous run, which stopped an hour ago: the new run has
    not had the chance to send them yet."""
    first = Bot(db, clock)
    await first.enqueue(2)
    clock.advance(3600)
    restarted = Bot(db, clock)
    restarted.beat_all()
    assert await restarted.failed() == []
    clock.advance(LIMIT + 1)
    restarted.beat_all()
    assert await restarted.failed() == ["outbox"]


async def test_a_loop_that_ended_fails_by_its_name(bot: Bot) -> None:
    bot.beat_all()
    bot.ended.append("scheduler")
    parts = await bot.parts()
    assert [name for name, part in parts.items() if not part.ok] == ["scheduler"]
    assert parts["scheduler"].detail == "the loop ended"
