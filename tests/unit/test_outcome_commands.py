"""!reject, !duplicate, !withdrawn, !spam and !reopen through the real dispatcher and database
(no Matrix, no SMTP): the answer, the audit entry, the queued mail, the stopped clocks, and
refused steps that change nothing. The mails themselves on the real servers:
tests/integration/test_outcomes.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from bot.config import Config
from bot.outbox.payloads import Mail, decode
from bot.policy.lifecycle import REJECT_REASONS, CaseState, same_reporter
from bot.watch.deadline_warnings import SlaWatch
from commands import build_registry
from commands.registry import UsageError
from storage import case_events, case_overview, cases, next_checks
from storage.db import Database
from tests.unit.test_lifecycle import new_case
from tests.unit.test_sla_commands import MovableClock, Room
from tests.unit.test_sla_watch import RECEIVED, add_case, at, make_config, posts


class OutcomeRoom(Room):
    def __init__(self, db: Database, config: Config, clock: MovableClock) -> None:
        super().__init__(db, config, clock)
        self.config = config


@pytest.fixture
async def room(tmp_path: Path) -> AsyncIterator[OutcomeRoom]:
    config = make_config(tmp_path)
    db = await Database.open(tmp_path / "cvdbot.sqlite3")
    yield OutcomeRoom(db, config, MovableClock(at(3, 10)))
    await db.close()


# ------------------------------------------------------------------------------ parsing


def test_reject_takes_one_of_the_reasons_and_optional_text() -> None:
    reject = build_registry().get("reject")
    assert reject is not None
    assert reject.parse("out-of-scope") == {"reason": "out-of-scope", "text": None}
    assert reject.parse("Not-Reproducible we tried twice") == {
        "reason": "not-reproducible",
        "text": "we tried twice",
    }
    for reason in REJECT_REASONS:
        assert reject.parse(reason)["reason"] == reason
    with pytest.raises(UsageError, match="reason must be one of not-a-vulnerability"):
        reject.parse("boring it is")
    with pytest.raises(UsageError, match="missing <not-a-vulnerability|out-of-scope"):
        reject.parse("")
    assert reject.usage() == (
        "!reject [CVD-YYYY-NNNN] "
        "<not-a-vulnerability|out-of-scope|not-reproducible|accepted-risk> [text]"
    )


def test_duplicate_takes_a_case_id_and_nothing_else() -> None:
    duplicate = build_registry().get("duplicate")
    assert duplicate is not None
    assert duplicate.parse("CVD-2026-0001") == {"original": "CVD-2026-0001"}
    assert duplicate.usage() == "!duplicate [CVD-YYYY-NNNN] <CVD-ID>"
    with pytest.raises(UsageError, match="not a valid original"):
        duplicate.parse("#12")
    with pytest.raises(UsageError, match="unexpected"):
        duplicate.parse("CVD-2026-0001 and more")
    # Inside another case's thread a case ID is this command's argument, not the case.
    assert duplicate.takes_case_id_first("CVD-2026-0001")
    ack = build_registry().get("ack")
    assert ack is not None and not ack.takes_case_id_first("CVD-2026-0001")


def test_every_outcome_command_says_what_the_reporter_gets() -> None:
    registry = build_registry()
    gets = {name: registry.get(name).reporter_gets for name in OUTCOME_NAMES}  # type: ignore[union-attr]
    assert gets["reject"].startswith("the rejection mail")
    assert gets["duplicate"].startswith("the duplicate notice")
    assert gets["withdrawn"] == "the confirmation that we stopped handling the report"
    assert gets["spam"] == "nothing"
    assert gets["reopen"].startswith("nothing")
    assert "What the reporter gets: nothing." in registry.help_text("spam")


def test_same_reporter_compares_addresses_without_letter_case() -> None:
    sam = new_case(reporter_address="Sam@Finder.example")
    assert same_reporter(sam, new_case(id="CVD-2026-0001", reporter_address="sam@finder.example"))
    assert not same_reporter(sam, new_case(reporter_address="eva@researcher.example"))
    assert not same_reporter(new_case(reporter_address=None), new_case(reporter_address=None))


# ------------------------------------------------------------------ through the dispatcher

OUTCOME_NAMES = ("reject", "duplicate", "withdrawn", "spam", "reopen")


async def snapshot(db: Database, case_id: str) -> tuple[Any, ...]:
    """Everything a refused step must leave as it was: the case row, its audit log, its
    mails and every outbox row except the refusal's own answer."""
    async with db.transaction() as conn:
        async with conn.execute("SELECT * FROM cases WHERE id = ?", (case_id,)) as cur:
            row = tuple(await cur.fetchone() or ())
        events = await case_events.history(conn, case_id)
        async with conn.execute("SELECT COUNT(*) FROM mails") as cur:
            (mail_count,) = await cur.fetchone() or (0,)
        async with conn.execute(
            "SELECT idem_key FROM outbox WHERE idem_key NOT LIKE 'reply:%' ORDER BY id"
        ) as cur:
            queued = [r[0] for r in await cur.fetchall()]
    return row, events, mail_count, queued


async def queued_mails(db: Database) -> list[tuple[Mail, EmailMessage]]:
    async with db.transaction() as conn:
        async with conn.execute(
            "SELECT payload FROM outbox WHERE channel = 'mail' ORDER BY id"
        ) as cur:
            rows = await cur.fetchall()
    found = []
    for (payload,) in rows:
        mail = decode(payload)
        assert isinstance(mail, Mail) and mail.composed is not None
        found.append((mail, mail.composed.to_message()))
    return found


def body_of(message: EmailMessage) -> str:
    return str(message.get_content())


async def watch_posts(db: Database, case_id: str) -> list[dict[str, Any]]:
    """What the SLA watch posted about the case (everything but the answers to commands)."""
    return [
        p for p in await posts(db) if p["case"] == case_id and not p["key"].startswith("reply:")
    ]


async def stored(db: Database, case_id: str) -> Any:
    async with db.transaction() as conn:
        case = await cases.get_case(conn, case_id)
        history = await case_events.history(conn, case_id)
        check = await next_checks.next_check_of(conn, case_id)
    return case, history, check


@pytest.mark.parametrize(
    ("command", "state", "audit", "mail_kind", "answer"),
    [
        (
            "!reject out-of-scope the portal is run by the province",
            CaseState.REJECTED,
            "rejected",
            "rejected",
            "rejected (out-of-scope) by @alice:example.org",
        ),
        ("!duplicate CVD-2026-0001", CaseState.DUPLICATE, "duplicate", "duplicate", "duplicate of"),
        ("!withdrawn", CaseState.WITHDRAWN, "withdrawn", "withdrawn", "marked as withdrawn"),
        ("!spam", CaseState.SPAM, "spam", None, "marked as spam"),
    ],
)
async def test_an_outcome_stops_the_clocks_records_and_mails_once(
    room: OutcomeRoom,
    command: str,
    state: CaseState,
    audit: str,
    mail_kind: str | None,
    answer: str,
) -> None:
    earlier = await add_case(room.db, room.calendar, reporter_address="eva@researcher.example")
    case = await add_case(room.db, room.calendar)
    answer_text = await room.say(command, thread=case.thread_root_event_id)
    assert answer in answer_text
    assert "Its clocks stopped" in answer_text

    ended, history, _ = await stored(room.db, case.id)
    assert ended.state is state and ended.outcome == state.value
    assert ended.outcome_at == room.clock.now()
    assert [(e.kind, e.actor) for e in history] == [(audit, "@alice:example.org")]
    mails = await queued_mails(room.db)
    if mail_kind is None:
        assert mails == [] and "No mail was sent." in answer_text
    else:
        [(mail, message)] = mails
        assert mail.kind == mail_kind and mail.to_address == "sam@finder.example"
        assert message["Subject"].startswith(f"[{case.id}] ")
        assert message["Content-Language"] == "en"
        assert "mail to the reporter is queued" in answer_text
        if mail_kind == "rejected":
            assert history[0].data == {"reason": "out-of-scope"}
            text = body_of(message)
            assert "our vulnerability disclosure policy\ndoes not cover" in text
            assert "the portal is run by the province" in text
        if mail_kind == "duplicate":
            # Another reporter's case: the mail must not name it.
            assert earlier.id not in body_of(message) and "already been reported" in body_of(
                message
            )
            assert history[0].data == {"duplicate_of": earlier.id, "named_in_mail": False}

    # The SLA watch posts nothing for it, however late; !cases and the digest skip it.
    for moment in (at(3, 14), at(4, 17, 5), at(20, 12)):
        await SlaWatch(room.db, room.config, room.calendar).tick(moment)
    assert await watch_posts(room.db, case.id) == []
    assert await watch_posts(room.db, earlier.id) != [], (
        "the watch did run: the open case got warnings"
    )
    listed = await room.say("!cases")
    assert case.id not in listed and earlier.id in listed
    async with room.db.transaction() as conn:
        assert sum((await case_overview.count_open_by_state(conn)).values()) == 1
        assert await next_checks.next_check_of(conn, case.id) is None


async def test_a_duplicate_of_the_same_reporters_case_names_it(room: OutcomeRoom) -> None:
    earlier = await add_case(room.db, room.calendar, reporter_address="SAM@finder.example")
    case = await add_case(room.db, room.calendar)
    # Outside the thread: this case first, then the earlier one.
    answer = await room.say(f"!duplicate {case.id} {earlier.id}")
    assert f"The mail names {earlier.id}: it is the same reporter's case." in answer
    [(_, message)] = await queued_mails(room.db)
    assert f"You already reported this problem to us earlier, as {earlier.id}." in body_of(message)


async def test_anonymous_reports_get_no_outcome_mail(room: OutcomeRoom) -> None:
    case = await add_case(room.db, room.calendar, reporter_address=None)
    answer = await room.say("!withdrawn", thread=case.thread_root_event_id)
    assert "No withdrawal confirmation mail: the reporter left no address" in answer
    assert await queued_mails(room.db) == []
    ended, history, _ = await stored(room.db, case.id)
    assert ended.state is CaseState.WITHDRAWN and [e.kind for e in history] == ["withdrawn"]


async def test_refused_steps_change_nothing(room: OutcomeRoom) -> None:
    case = await add_case(room.db, room.calendar)
    thread = case.thread_root_event_id
    before = await snapshot(room.db, case.id)
    for command, refusal in (
        ("!reject boring", "reason must be one of"),
        ("!reject", "missing <not-a-vulnerability"),
        ("!duplicate CVD-2026-0099", "there is no case CVD-2026-0099; nothing was changed"),
        ("!duplicate CVD-2026-0001 CVD-2026-0001", "cannot be a duplicate of itself"),
        ("!duplicate", "missing <CVD-ID>"),
        ("!reopen", "it is open already"),
        ("!spam now", "unexpected 'now'"),
        # Only an argument that takes a case ID reads one in another case's thread.
        ("!spam CVD-2026-0002", "this is the thread of CVD-2026-0001, not CVD-2026-0002"),
    ):
        assert refusal in await room.say(command, thread=thread), command
        assert await snapshot(room.db, case.id) == before, command

    # A rejected case takes no work and no second outcome until it is reopened.
    await room.say("!reject not-reproducible", thread=thread)
    before = await snapshot(room.db, case.id)
    for command in (
        "!ack",
        "!assess low",
        "!fixed",
        "!withdrawn",
        "!spam",
        "!duplicate CVD-2026-0002",
    ):
        answer = await room.say(command, thread=thread)
        assert "is rejected (not-reproducible): run !reopen first" in answer, command
        assert await snapshot(room.db, case.id) == before, command

    # A fixed case is closed, not given an outcome.
    fixed = await add_case(
        room.db,
        room.calendar,
        state=CaseState.FIXED,
        acknowledged_at=RECEIVED.astimezone(UTC),
        assessed_at=RECEIVED.astimezone(UTC),
        fixed_at=RECEIVED.astimezone(UTC),
        severity="low",
    )
    before = await snapshot(room.db, fixed.id)
    answer = await room.say("!reject accepted-risk", thread=fixed.thread_root_event_id)
    assert "already fixed; close it with !close instead" in answer
    answer = await room.say("!reopen", thread=fixed.thread_root_event_id)
    assert "is fixed; this needs a case that is closed, duplicate" in answer
    assert await snapshot(room.db, fixed.id) == before


async def test_reopen_brings_the_case_back_and_its_clocks_run_again(room: OutcomeRoom) -> None:
    case = await add_case(room.db, room.calendar)
    thread = case.thread_root_event_id
    assert "acknowledged by" in await room.say("!ack", thread=thread)
    assert "rejected" in await room.say("!reject not-a-vulnerability", thread=thread)
    watch = SlaWatch(room.db, room.config, room.calendar)
    await watch.tick(at(4, 10))
    _, _, check = await stored(room.db, case.id)
    assert check is None, "nothing to watch while rejected"
    mails_before = len(await queued_mails(room.db))

    answer = await room.say("!reopen", thread=thread)
    assert "it was rejected (not-a-vulnerability), it is acknowledged again" in answer
    assert "Its clocks run again. The reporter was not told; !reply writes to them." in answer
    back, history, check = await stored(room.db, case.id)
    assert back.state is CaseState.ACKNOWLEDGED
    assert back.outcome is None and back.outcome_reason is None and back.outcome_at is None
    assert back.acknowledged_at is not None
    assert history[-1].kind == "reopened"
    assert history[-1].data == {
        "was": "rejected (not-a-vulnerability)",
        "now_state": "acknowledged",
    }
    assert check == "", "the watch looks at it again"
    assert len(await queued_mails(room.db)) == mails_before, "!reopen sends nothing"

    # Its assess clock runs again: the watch warns about it (assess half used Thu 09:30).
    await watch.tick(at(5, 9, 35))
    warnings = await watch_posts(room.db, case.id)
    assert len(warnings) == 1 and "Assess: half the time is used" in warnings[0]["body"]
    assert case.id in await room.say("!cases")
    assert "assessed as low" in await room.say("!assess low", thread=thread)
    assert len(await queued_mails(room.db)) == mails_before + 1


async def test_a_closed_case_is_reopened_to_its_working_state(room: OutcomeRoom) -> None:
    case = await add_case(room.db, room.calendar)
    closed = replace(
        case,
        state=CaseState.CLOSED,
        outcome="withdrawn",
        outcome_at=RECEIVED.astimezone(UTC),
        closed_at=RECEIVED.astimezone(UTC),
        delete_after=RECEIVED.astimezone(UTC) + timedelta(days=90),
    )
    async with room.db.transaction() as conn:
        await cases.save_case(conn, closed, RECEIVED.isoformat())
    answer = await room.say("!reopen", thread=case.thread_root_event_id)
    assert "it was closed (withdrawn), it is new again" in answer
    back, _, _ = await stored(room.db, case.id)
    assert back.state is CaseState.NEW and back.delete_after is None and back.closed_at is None
