"""!sla, !pause, !resume, !extend, !cases and !status through the real dispatcher and
database (no Matrix): what the team reads, what the audit log keeps, what the deadline does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.config import Config
from bot.failpoints import Failpoints
from bot.mailout.reporter import ReporterMailer
from bot.policy.lifecycle import CaseState
from bot.policy.workdays import WorkingCalendar
from bot.services import Services, calendar_rules
from commands import build_registry
from commands.dispatch import CommandDispatcher, IncomingMessage
from storage import case_events, cases, fix_clocks, next_checks
from storage.db import Database
from tests.unit.test_sla_watch import ALICE, AMS, BOB, RECEIVED, add_case, at, make_config


@dataclass
class MovableClock:
    moment: datetime

    def now(self) -> datetime:
        return self.moment


class Room:
    """A dispatcher over a temporary database; `say` returns the bot's answer."""

    def __init__(self, db: Database, config: Config, clock: MovableClock) -> None:
        calendar = WorkingCalendar(calendar_rules(config.policy))
        self.calendar = calendar
        self.db = db
        self.clock = clock
        services = Services(config, calendar, ReporterMailer(config))
        self.dispatcher = CommandDispatcher(
            build_registry(), db, services, clock, Failpoints({}), lambda: None
        )
        self._count = 0

    async def say(self, body: str, *, sender: str = ALICE, thread: str | None = None) -> str:
        self._count += 1
        event_id = f"$event-{self._count}"
        await self.dispatcher.handle(
            IncomingMessage(
                room_id="!cases:example.org",
                event_id=event_id,
                sender=sender,
                body=body,
                sent_at=self.clock.now(),
                thread_root=thread,
            )
        )
        async with self.db.transaction() as conn:
            async with conn.execute(
                "SELECT payload FROM outbox WHERE idem_key = ?", (f"reply:{event_id}",)
            ) as cur:
                row = await cur.fetchone()
        assert row is not None, f"no answer to {body!r}"
        return str(json.loads(row[0])["body"])


@pytest.fixture
async def room(tmp_path: Path) -> Any:
    config = make_config(tmp_path)
    db = await Database.open(tmp_path / "cvdbot.sqlite3")
    yield Room(db, config, MovableClock(at(3, 10)))
    await db.close()


async def test_sla_explains_each_deadline(room: Room) -> None:
    # Received on Friday evening: the clock starts Monday 09:00; the weekend is skipped.
    case = await add_case(
        room.db, room.calendar, received=datetime(2026, 10, 30, 17, 30, tzinfo=AMS)
    )
    text = await room.say(f"!sla {case.id}")
    assert "Acknowledge — " in text and "Assess — " in text and "Fix — " in text
    assert "2 working days from Mon 2 Nov 2026 09:00 CET" in text
    assert "received Fri 30 Oct 2026 17:30 CET, after business hours" in text
    assert "Skipped: Sat 31 Oct 2026, Sun 1 Nov 2026." in text
    assert "90 calendar days from Mon 2 Nov 2026 09:00 CET" in text
    assert "Warnings posted: none yet." in text


async def test_pause_and_resume_move_the_fix_deadline_by_the_time_paused(room: Room) -> None:
    case = await add_case(room.db, room.calendar, thread_root_event_id="$root")
    answer = await room.say("!pause waiting for the supplier's patch", thread="$root")
    assert "Fix clock of CVD-2026-0001 paused" in answer
    assert "acknowledge and assess deadlines keep running" in answer
    assert "already paused" in await room.say("!pause again", thread="$root")

    room.clock.moment = at(3, 10) + timedelta(days=3, hours=2)
    status = await room.say("!status", thread="$root")
    assert "Fix clock paused since Tue 3 Nov 2026 10:00 CET" in status
    # The fix time left is frozen: the same as when the clock was paused.
    frozen = case.fix_due - at(3, 10)
    assert f"{frozen.days}d {frozen.seconds // 3600}h left" in status

    answer = await room.say("!resume", thread="$root")
    assert "after 3d 2h paused" in answer
    async with room.db.transaction() as conn:
        stored = await cases.get_case(conn, case.id)
        clock = await fix_clocks.load(conn, case.id)
        history = await case_events.history(conn, case.id)
        next_check = await next_checks.next_check_of(conn, case.id)
    assert stored is not None
    assert stored.fix_due == case.fix_due + timedelta(days=3, hours=2)
    assert clock.paused_at is None and clock.paused_seconds == (3 * 24 + 2) * 3600
    assert [(e.kind, e.actor) for e in history] == [("fix_paused", ALICE), ("fix_resumed", ALICE)]
    assert history[0].data["reason"] == "waiting for the supplier's patch"
    assert next_check == "", "the watch looks at the case again"
    assert "nothing to resume" in await room.say("!resume", thread="$root")

    text = await room.say("!sla", thread="$root")
    assert "Paused Tue 3 Nov 2026 10:00 CET – Fri 6 Nov 2026 12:00 CET (3d 2h)" in text
    assert "waiting for the supplier's patch" in text


async def test_extend_keeps_the_time_of_day_across_dst(room: Room) -> None:
    # Received in September: fix due 17:00 CET in December; 200 days later is summer time.
    case = await add_case(room.db, room.calendar, received=datetime(2026, 9, 14, 10, 0, tzinfo=UTC))
    answer = await room.say(f"!extend {case.id} 200 the supplier ships the fix in spring")
    assert "extended by 200 days" in answer
    async with room.db.transaction() as conn:
        stored = await cases.get_case(conn, case.id)
        history = await case_events.history(conn, case.id)
    assert stored is not None
    local_due = stored.fix_due.astimezone(room.calendar.tz)
    assert (local_due.hour, local_due.minute) == (17, 0)
    assert local_due.date() == case.fix_due.astimezone(room.calendar.tz).date() + timedelta(
        days=200
    )
    assert history[-1].kind == "fix_extended" and history[-1].data["days"] == 200
    usage = await room.say(f"!extend {case.id} soon because")
    assert "not a valid days" in usage
    assert "at most 365" in await room.say(f"!extend {case.id} 999 far too long")


async def test_cases_lists_open_cases_with_next_deadline(room: Room) -> None:
    first = await add_case(room.db, room.calendar)
    second = await add_case(room.db, room.calendar, assignee=BOB)
    received = RECEIVED.astimezone(UTC)
    await add_case(
        room.db,
        room.calendar,
        state=CaseState.FIXED,
        acknowledged_at=received,
        assessed_at=received,
        fixed_at=received,
    )
    text = await room.say("!cases")
    assert text.splitlines()[0] == "Open cases: 2"
    assert f"{first.id} · new · unassigned · acknowledge by Wed 4 Nov 2026 17:00 CET" in text
    assert f"{second.id} · new · {BOB} ·" in text
    assert "CVD-2026-0003" not in text, "fixed cases are not open"
    mine = await room.say("!cases mine", sender=BOB)
    assert second.id in mine and first.id not in mine
    room.clock.moment = at(5, 10)
    overdue = await room.say("!cases overdue")
    assert overdue.startswith("Open cases (overdue): 2")
    assert "Open cases (paused): 0." == await room.say("!cases paused")
    assert "unknown filter" in await room.say("!cases everything")


async def test_help_lists_the_new_commands(room: Room) -> None:
    text = await room.say("!help")
    for usage in (
        "!sla [CVD-YYYY-NNNN]",
        "!pause [CVD-YYYY-NNNN] <reason>",
        "!resume [CVD-YYYY-NNNN]",
        "!extend [CVD-YYYY-NNNN] <days> <reason>",
        "!cases [filter]",
    ):
        assert usage in text


async def test_a_command_word_followed_by_a_newline_or_tab_is_run(room: Room) -> None:
    """Issue 10 item 10: the command word ends at any whitespace; all lines are the text."""
    case = await add_case(room.db, room.calendar, thread_root_event_id="$root")
    answer = await room.say("!pause\twaiting for the supplier\nsecond line", thread="$root")
    assert "Fix clock of CVD-2026-0001 paused" in answer
    answer = await room.say(f"!resume\n{case.id}")
    assert "after" in answer and "paused" in answer
    async with room.db.transaction() as conn:
        history = await case_events.history(conn, case.id)
    assert [e.kind for e in history] == ["fix_paused", "fix_resumed"]
    assert history[0].data["reason"] == "waiting for the supplier\nsecond line"
