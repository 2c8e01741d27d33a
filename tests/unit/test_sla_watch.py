"""The SLA watch on a real SQLite database with a moved clock: warning points, exactly-once,
business hours, one combined message after downtime, pause, extend, and an indexed tick.

The case is received Monday 2 November 2026 10:00 CET (no holidays that month):
acknowledge by Wed 4 Nov 17:00, assess by Mon 9 Nov 17:00, fix by Sun 31 Jan 2027 17:00.
Acknowledge gives 23 working hours: half used Tue 13:30, one working day left Wed 09:00.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.config import Config
from bot.policy.decisions import Decisions
from bot.policy.fix_clock import FixClock
from bot.policy.lifecycle import Case, CaseState
from bot.policy.workdays import WorkingCalendar, case_deadlines
from bot.services import calendar_rules
from bot.watch.deadline_warnings import SlaWatch
from bot.watch.warning_points import open_clocks, parse_points, passages
from storage import case_decisions, cases, fix_clocks, next_checks, outbox, sla_warnings
from storage.db import Database

AMS = ZoneInfo("Europe/Amsterdam")
ALICE = "@alice:example.org"
BOB = "@bob:example.org"
BOSS = "@boss:example.org"
MANAGERS_ROOM = "!managers:example.org"
RECEIVED = datetime(2026, 11, 2, 10, 0, tzinfo=AMS)


def at(day: int, hour: int, minute: int = 0, month: int = 11, year: int = 2026) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=AMS).astimezone(UTC)


def make_config(tmp_path: Path, **policy: Any) -> Config:
    data: dict[str, Any] = {
        "matrix": {
            "homeserver": "https://matrix.example.org",
            "user_id": "@cvdbot:example.org",
            "password": "x",
            "store_path": "store",
            "case_room": "!cases:example.org",
            "digest_room": MANAGERS_ROOM,
            "team": [ALICE, BOB],
            "managers": [BOSS],
        },
        "imap": {
            "host": "localhost",
            "port": 143,
            "security": "none",
            "username": "u",
            "password": "p",
        },
        "smtp": {"host": "localhost", "port": 25, "security": "none", "from_address": "s@x.org"},
        "pgp": {"gnupg_home": "gpg", "key_fingerprint": "A" * 40, "passphrase": "p"},
        "storage": {"path": "db.sqlite3"},
        "policy": policy,
    }
    return Config.model_validate(data, context={"base_dir": tmp_path})


async def add_case(
    db: Database, calendar: WorkingCalendar, received: datetime = RECEIVED, **changes: Any
) -> Case:
    deadlines = case_deadlines(calendar, received.astimezone(UTC))
    async with db.transaction() as conn:
        case_id, seq = await cases.allocate_case_id(conn, received.year)
        case = Case(
            id=case_id,
            state=CaseState.NEW,
            subject="XSS in the parking permit search",
            reporter_address="sam@finder.example",
            reporter_name=None,
            language="en",
            received_at=received.astimezone(UTC),
            acknowledge_due=deadlines.acknowledge.due,
            assess_due=deadlines.assess.due,
            fix_due=deadlines.fix.due,
            thread_root_event_id=f"$root-{seq}",
        )
        case = replace(case, **changes)
        await cases.insert_case(
            conn, case, received.year, seq, received.astimezone(UTC).isoformat()
        )
    return case


async def share_with_ibd(db: Database, case: Case) -> None:
    """Mark the case shared with the IBD: for tests about other promises than that one."""
    async with db.transaction() as conn:
        await case_decisions.save(conn, Decisions(case.id, ibd_shared_at=case.received_at))


async def posts(db: Database) -> list[dict[str, Any]]:
    async with db.transaction() as conn:
        async with conn.execute(
            "SELECT idem_key, case_id, payload FROM outbox WHERE channel = 'matrix' ORDER BY id"
        ) as cur:
            rows = await cur.fetchall()
    return [{"key": r[0], "case": r[1], **json.loads(r[2])} for r in rows]


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


# ------------------------------------------------------------------------------ pure parts


def test_working_time_forward_and_back(calendar: WorkingCalendar) -> None:
    start = RECEIVED.astimezone(UTC)
    assert calendar.advance_working(start, timedelta(hours=11, minutes=30)) == at(3, 13, 30)
    # Friday 16:00 plus two working hours: Monday 10:00 (the weekend does not count).
    assert calendar.advance_working(at(6, 16), timedelta(hours=2)) == at(9, 10)
    assert calendar.rewind_working(at(4, 17), timedelta(hours=8)) == at(4, 9)
    assert calendar.rewind_working(at(9, 17), timedelta(hours=16)) == at(6, 9)


def test_warning_points_of_each_promise(calendar: WorkingCalendar, config: Config) -> None:
    points = parse_points(config.policy.warnings, calendar)
    assert [p.name for p in points] == ["50%", "1 working day left", "overdue"]
    case = Case(
        id="CVD-2026-0001",
        state=CaseState.NEW,
        subject="s",
        reporter_address=None,
        reporter_name=None,
        language="en",
        received_at=RECEIVED.astimezone(UTC),
        **{
            f"{name}_due": getattr(case_deadlines(calendar, RECEIVED), name).due
            for name in ("acknowledge", "assess", "fix")
        },
    )
    moments = {
        (p.promise, p.point.name): p.at
        for clock in open_clocks(case, FixClock(), calendar)
        for p in passages(clock, points, calendar)
    }
    assert moments[("acknowledge", "50%")] == at(3, 13, 30)
    assert moments[("acknowledge", "1 working day left")] == at(4, 9)
    assert moments[("acknowledge", "overdue")] == at(4, 17) + timedelta(seconds=1)
    # Assess: 47 working hours; half is 23.5 h: Mon 7 + Tue 8 + Wed 8, then Thu 09:30.
    assert moments[("assess", "50%")] == at(5, 9, 30)
    assert moments[("assess", "1 working day left")] == at(9, 9)
    # Fix: calendar time, Mon 10:00 to Sun 31 Jan 17:00; half of it before the deadline.
    fix_due = at(31, 17, month=1, year=2027)
    assert moments[("fix", "50%")] == fix_due - (fix_due - RECEIVED) / 2
    # One working day before a Sunday deadline: Friday 29 January 09:00.
    assert moments[("fix", "1 working day left")] == at(29, 9, month=1, year=2027)


def test_configured_points(tmp_path: Path) -> None:
    config = make_config(
        tmp_path, warnings=["75%", "2 Working Days Left", "4 working hours left", "overdue"]
    )
    calendar = WorkingCalendar(calendar_rules(config.policy))
    points = parse_points(config.policy.warnings, calendar)
    assert [(p.name, p.used, p.left) for p in points] == [
        ("75%", 0.75, None),
        ("2 working days left", None, timedelta(hours=16)),
        ("4 working hours left", None, timedelta(hours=4)),
        ("overdue", None, None),
    ]


@pytest.mark.parametrize(
    "warnings", [["50%"], ["half", "overdue"], ["150%", "overdue"], ["overdue", "overdue"]]
)
def test_bad_points_are_config_errors(tmp_path: Path, warnings: list[str]) -> None:
    with pytest.raises(ValueError, match="warnings"):
        make_config(tmp_path, warnings=warnings)


# ------------------------------------------------------------------------------ ticks


async def test_each_point_once_with_mentions_and_escalation(
    db: Database, config: Config, calendar: WorkingCalendar
) -> None:
    case = await add_case(db, calendar)
    watch = SlaWatch(db, config, calendar)
    assert (await watch.tick(at(3, 13, 29))).warned == []
    assert await posts(db) == []

    result = await watch.tick(at(3, 13, 31))
    assert result.warned == [case.id]
    [half] = await posts(db)
    assert half["kind"] == "thread" and half["case"] == case.id
    assert half["mentions"] == [ALICE, BOB]
    assert ALICE in half["body"] and BOB in half["body"]
    assert "Acknowledge: half the time is used" in half["body"]
    assert f'href="https://matrix.to/#/{ALICE}"' in half["html"]
    assert (await watch.tick(at(3, 13, 40))).warned == []  # exactly once
    assert (await watch.tick(at(3, 16, 0))).checked == 0  # nothing due: nothing read

    await watch.tick(at(4, 9, 1))
    last_day = (await posts(db))[-1]
    assert "Acknowledge: 1 working day left" in last_day["body"]

    result = await watch.tick(at(4, 17, 1))
    assert result.escalated == [case.id]
    *_, overdue, escalation = await posts(db)
    assert "Acknowledge: OVERDUE" in overdue["body"]
    assert escalation["kind"] == "room" and escalation["room_id"] == MANAGERS_ROOM
    assert escalation["mentions"] == [BOSS]
    assert "Overdue: CVD-2026-0001" in escalation["body"]
    assert "https://matrix.to/#/!cases:example.org/$root-1" in escalation["body"]
    assert "XSS in the parking permit search" in escalation["body"]
    assert "XSS" not in escalation["unencrypted"]["body"], "no report content in the clear"
    assert len(await posts(db)) == 4
    assert (await watch.tick(at(4, 17, 30))).warned == []


async def test_assignee_is_mentioned_instead_of_the_team(
    db: Database, config: Config, calendar: WorkingCalendar
) -> None:
    await add_case(db, calendar, assignee=BOB)
    await SlaWatch(db, config, calendar).tick(at(3, 14))
    [warning] = await posts(db)
    assert warning["mentions"] == [BOB]
    assert ALICE not in warning["body"]


async def test_no_warning_outside_business_hours_unless_overdue(
    db: Database, config: Config, calendar: WorkingCalendar
) -> None:
    case = await add_case(db, calendar)
    watch = SlaWatch(db, config, calendar)
    result = await watch.tick(at(3, 18, 0))  # half time passed at 13:30, now evening
    assert result.deferred == [case.id] and await posts(db) == []
    async with db.transaction() as conn:
        assert await next_checks.next_check_of(conn, case.id) == at(4, 9)
    # Next morning both points are due: one message, the latest point, the earlier named.
    await watch.tick(at(4, 9, 0))
    [message] = await posts(db)
    assert "Acknowledge: 1 working day left" in message["body"]
    assert "also passed, not announced at the time: 50%" in message["body"]
    # Overdue at 17:00:01 is posted even though business hours just ended.
    assert (await watch.tick(at(4, 17, 1))).escalated == [case.id]


async def test_after_downtime_one_combined_message_per_case(
    db: Database, config: Config, calendar: WorkingCalendar
) -> None:
    first = await add_case(db, calendar)
    second = await add_case(db, calendar)
    watch = SlaWatch(db, config, calendar)
    # Down from Monday to Friday 10 November 11:00: acknowledge is overdue and assess has
    # passed half time and one-day-left.
    result = await watch.tick(at(10, 11))
    assert sorted(result.warned) == [first.id, second.id]
    messages = await posts(db)
    threads = [m for m in messages if m["kind"] == "thread"]
    assert [m["case"] for m in threads] == [first.id, second.id]
    body = threads[0]["body"]
    assert "Acknowledge: OVERDUE" in body and "Assess: OVERDUE" in body
    assert "also passed, not announced at the time: 50%, 1 working day left" in body
    assert len([m for m in messages if m["kind"] == "room"]) == 2  # one escalation per case
    assert (await watch.tick(at(10, 11, 5))).warned == []


async def test_paused_fix_clock_warns_about_nothing(
    db: Database, config: Config, calendar: WorkingCalendar
) -> None:
    received = RECEIVED.astimezone(UTC)
    case = await add_case(
        db,
        calendar,
        state=CaseState.ASSESSED,
        acknowledged_at=received + timedelta(hours=1),
        assessed_at=received + timedelta(hours=2),
        # Anonymous: the update warning point (a reporter owed news; it keeps running while
        # paused, see test_reply_commands.py) does not apply; this is about the deadlines.
        reporter_address=None,
    )
    async with db.transaction() as conn:
        await fix_clocks.save(
            conn, case.id, FixClock(paused_at=at(3, 9), pause_reason="waiting for the supplier")
        )
    # Shared with the IBD, so that promise (not paused by !pause) has nothing to say.
    await share_with_ibd(db, case)
    watch = SlaWatch(db, config, calendar)
    result = await watch.tick(at(15, 12, month=2, year=2027))  # long after the fix deadline
    assert result.checked == 1 and result.warned == [] and await posts(db) == []
    async with db.transaction() as conn:
        assert await next_checks.next_check_of(conn, case.id) is None
        # Resumed after exactly 10 days: the deadline moves by those 10 days.
        await fix_clocks.save(conn, case.id, FixClock(paused_seconds=10 * 86400))
        await cases.save_case(
            conn, replace(case, fix_due=case.fix_due + timedelta(days=10)), at(13, 9).isoformat()
        )
    result = await watch.tick(at(13, 9))
    assert result.warned == []
    async with db.transaction() as conn:
        nxt = await next_checks.next_check_of(conn, case.id)
    fix_due = case.fix_due + timedelta(days=10)
    allowed = fix_due - received - timedelta(days=10)
    assert nxt == fix_due - allowed / 2


async def test_tick_reads_only_due_cases_through_the_index(
    db: Database, config: Config, calendar: WorkingCalendar
) -> None:
    for _ in range(30):
        await add_case(db, calendar)
    watch = SlaWatch(db, config, calendar)
    assert (await watch.tick(at(2, 10, 1))).checked == 30  # new cases: looked at once
    assert (await watch.tick(at(2, 11))).checked == 0
    assert (await watch.tick(at(3, 13, 31))).checked == 30
    async with db.transaction() as conn:
        async with conn.execute(
            "EXPLAIN QUERY PLAN SELECT id FROM cases WHERE next_sla_check_at <= ?"
            " ORDER BY next_sla_check_at, id LIMIT 200",
            ("x",),
        ) as cur:
            plan = " ".join(str(row[-1]) for row in await cur.fetchall())
    assert "cases_next_sla_check" in plan


async def test_extend_forgets_points_that_lie_ahead_again(
    db: Database, config: Config, calendar: WorkingCalendar
) -> None:
    from bot.watch.deadline_warnings import forget_future_fix_warnings

    received = RECEIVED.astimezone(UTC)
    case = await add_case(
        db,
        calendar,
        state=CaseState.ASSESSED,
        acknowledged_at=received + timedelta(hours=1),
        assessed_at=received + timedelta(hours=2),
    )
    await share_with_ibd(db, case)
    watch = SlaWatch(db, config, calendar)
    await watch.tick(at(29, 9, 30, month=1, year=2027))  # fix: half and one day left passed
    async with db.transaction() as conn:
        warned = {w.point for w in await sla_warnings.warnings_of(conn, case.id)}
    assert warned == {"50%", "1 working day left"}
    extended = replace(case, fix_due=case.fix_due + timedelta(days=30))
    async with db.transaction() as conn:
        await cases.save_case(conn, extended, at(29, 10, month=1, year=2027).isoformat())
        forgotten = await forget_future_fix_warnings(
            conn,
            extended,
            FixClock(),
            calendar,
            watch.points,
            at(29, 10, month=1, year=2027),
        )
        await next_checks.check_soon(conn, case.id)
    # Half of 120 days is still behind us; one working day left lies ahead again.
    assert forgotten == ["1 working day left", "overdue"]
    assert (await watch.tick(at(2, 10, month=3, year=2027))).warned == [case.id]
    assert "Fix: 1 working day left" in (await posts(db))[-1]["body"]


async def test_fixed_case_is_no_longer_watched(
    db: Database, config: Config, calendar: WorkingCalendar
) -> None:
    received = RECEIVED.astimezone(UTC)
    case = await add_case(db, calendar)
    async with db.transaction() as conn:
        await cases.save_case(
            conn,
            replace(
                case,
                state=CaseState.FIXED,
                acknowledged_at=received,
                assessed_at=received,
                fixed_at=received,
            ),
            received.isoformat(),
        )
    await share_with_ibd(db, case)
    result = await SlaWatch(db, config, calendar).tick(at(20, 12))
    assert result.checked == 1 and result.warned == []
    async with db.transaction() as conn:
        assert await next_checks.next_check_of(conn, case.id) is None
        assert await outbox.pending_count(conn) == 0


async def test_a_case_that_cannot_be_read_does_not_block_the_others(
    db: Database, config: Config, calendar: WorkingCalendar
) -> None:
    broken = await add_case(db, calendar)
    fine = await add_case(db, calendar)
    async with db.transaction() as conn:
        await conn.execute("UPDATE cases SET state = 'garbled' WHERE id = ?", (broken.id,))
    watch = SlaWatch(db, config, calendar)
    result = await watch.tick(at(3, 14))
    assert result.warned == [fine.id]
    async with db.transaction() as conn:
        assert await next_checks.next_check_of(conn, broken.id) == at(3, 15)
    assert (await watch.tick(at(3, 14, 30))).checked == 0


async def test_an_assessed_case_not_shared_with_the_ibd_is_warned_once(
    db: Database, config: Config, calendar: WorkingCalendar
) -> None:
    received = RECEIVED.astimezone(UTC)
    done = {"acknowledged_at": received + timedelta(hours=1), "assessed_at": at(2, 12)}
    unshared = await add_case(db, calendar, state=CaseState.ASSESSED, **done)
    shared = await add_case(db, calendar, state=CaseState.ASSESSED, **done)
    async with db.transaction() as conn:
        await case_decisions.save(conn, Decisions(shared.id, ibd_shared_at=at(3, 9)))
    # Assessed Monday 12:00: to be shared within 2 working days, by Wednesday 17:00.
    await SlaWatch(db, config, calendar).tick(at(4, 16, 59))
    assert not [p for p in await posts(db) if "IBD" in p["body"]]
    async with db.transaction() as conn:
        assert await next_checks.next_check_of(conn, unshared.id) == at(4, 17) + timedelta(
            seconds=1
        )
    await SlaWatch(db, config, calendar).tick(at(4, 17, 5))
    await SlaWatch(db, config, calendar).tick(at(5, 10))  # a restart: a new watch
    ibd_posts = [p for p in await posts(db) if "not shared with the IBD" in p["body"]]
    assert [p["case"] for p in ibd_posts] == [unshared.id]
    assert "Wed 4 Nov 2026 17:00 CET" in ibd_posts[0]["body"]
    assert ibd_posts[0]["mentions"] == [ALICE, BOB]
