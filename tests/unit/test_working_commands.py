"""!assign, !note, !history and !assess's CVSS check through the real dispatcher and database
(no Matrix): the answer, the audit log, and that a refused step changes nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bot.policy.lifecycle import Case, CaseState
from storage import case_events, cases
from storage.db import Database
from tests.unit.test_sla_commands import MovableClock, Room
from tests.unit.test_sla_watch import ALICE, BOB, BOSS, add_case, at, make_config

MALLORY = "@mallory:example.org"
V31_HIGH = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"  # 7.5 high
V31_CRITICAL = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"  # 9.8 critical
V40_MEDIUM = "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:L/VI:N/VA:N/SC:N/SI:N/SA:N"  # 6.9 medium


@pytest.fixture
async def room(tmp_path: Path) -> Any:
    db = await Database.open(tmp_path / "cvdbot.sqlite3")
    yield Room(db, make_config(tmp_path), MovableClock(at(3, 10)))
    await db.close()


async def answer_payload(room: Room, body: str, thread: str = "$root-1") -> dict[str, Any]:
    await room.say(body, thread=thread)
    async with room.db.transaction() as conn:
        async with conn.execute(
            "SELECT payload FROM outbox WHERE channel = 'matrix' ORDER BY id DESC LIMIT 1"
        ) as cur:
            row = await cur.fetchone()
    assert row is not None
    return dict(json.loads(row[0]))


async def snapshot(room: Room, case_id: str) -> tuple[Case | None, list[Any], int]:
    """The case row, its audit log and the number of queued mails."""
    async with room.db.transaction() as conn:
        case = await cases.get_case(conn, case_id)
        events = await case_events.history(conn, case_id)
        async with conn.execute("SELECT COUNT(*) FROM outbox WHERE channel = 'mail'") as cur:
            row = await cur.fetchone()
    assert row is not None
    return case, events, int(row[0])


async def test_assign_me_other_outsider_and_none(room: Room) -> None:
    case = await add_case(room.db, room.calendar)
    mine = await answer_payload(room, "!assign me")
    assert mine["body"] == f"👤 {case.id} assigned to {ALICE} by {ALICE}."
    assert mine["mentions"] == [ALICE]
    assert f'<a href="https://matrix.to/#/{ALICE}">{ALICE}</a>' in mine["html"]

    boss = await answer_payload(room, f"!assign {BOSS}")  # a manager may be assigned
    assert boss["mentions"] == [BOSS]
    bob = await answer_payload(room, "!assign bob")  # as a client may write a mention
    assert bob["mentions"] == [BOB] and "assigned to @bob:example.org" in bob["body"]

    before = await snapshot(room, case.id)
    refused = await answer_payload(room, f"!assign {MALLORY}")
    assert "@mallory:example.org is not in the CVD team or among the managers" in refused["body"]
    assert refused["mentions"] == []
    assert await snapshot(room, case.id) == before, "a refused !assign changes nothing"
    again = await answer_payload(room, "!assign @bob:example.org")
    assert "already assigned to @bob:example.org" in again["body"]
    assert await snapshot(room, case.id) == before

    nobody = await answer_payload(room, "!assign none")
    assert nobody["body"] == f"👤 {case.id} is no longer assigned (was {BOB}), by {ALICE}."
    assert nobody["mentions"] == []
    stored, events, mails = await snapshot(room, case.id)
    assert stored is not None and stored.assignee is None
    assert [(e.kind, e.data["assignee"]) for e in events] == [
        ("assigned", ALICE),
        ("assigned", BOSS),
        ("assigned", BOB),
        ("assigned", None),
    ]
    assert mails == 0
    assert "Assignee: nobody" in await room.say("!status", thread="$root-1")


async def test_note_is_kept_never_mailed_and_history_lists_it(room: Room) -> None:
    case = await add_case(room.db, room.calendar)
    answer = await room.say("!note called the supplier, patch due Friday", thread="$root-1")
    assert "kept in the audit log" in answer and "never mailed" in answer
    too_long = await room.say("!note " + "x" * 4001, thread="$root-1")
    assert "at most 4000 characters" in too_long
    await room.say("!assign me", thread="$root-1")
    _, events, mails = await snapshot(room, case.id)
    assert [(e.kind, e.actor) for e in events] == [("note", ALICE), ("assigned", ALICE)]
    assert events[0].data == {"text": "called the supplier, patch due Friday"}
    assert mails == 0

    history = (await room.say("!history", thread="$root-1")).splitlines()
    assert history[0].startswith(f"History of {case.id} (2 entries")
    assert history[1] == (
        "3 Nov 2026 10:00 · @\u2060alice:example.org · note: called the supplier, patch due Friday"
    )
    assert history[2].endswith("assigned to @\u2060alice:example.org")
    _, after, _ = await snapshot(room, case.id)
    assert after == events, "!history only reads"


async def test_assess_scores_the_vector_and_says_when_severity_differs(room: Room) -> None:
    case = await add_case(
        room.db, room.calendar, state=CaseState.ACKNOWLEDGED, acknowledged_at=at(2, 11)
    )
    answer = await room.say(f"!assess high {V31_HIGH} info leak", thread="$root-1")
    assert f"{case.id} assessed as high by {ALICE}. CVSS 3.1 base score 7.5 (high)." in answer
    assert "⚠️" not in answer
    assert "Score: CVSS 3.1 base score 7.5 (high)" in await room.say("!status", thread="$root-1")

    room.clock.moment = at(4, 10)
    revised = await room.say(f"!assess medium {V31_CRITICAL}", thread="$root-1")
    assert "re-assessed as medium" in revised and "(revised: high -> medium)" in revised
    assert "CVSS 3.1 base score 9.8 (critical)" in revised
    assert "The vector's severity is critical, not medium; the case keeps medium" in revised
    stored, events, mails = await snapshot(room, case.id)
    assert stored is not None
    assert stored.severity == "medium" and stored.cvss_vector == V31_CRITICAL
    assert stored.assessed_at == at(3, 10), "a revision keeps the first assessment time"
    assert [e.kind for e in events] == ["assessed", "assessment_revised"]
    assert events[1].data["revised"] == "high -> medium"
    assert events[1].data["cvss_score"] == "CVSS 3.1 base score 9.8 (critical)"
    assert mails == 2

    v4 = await room.say(f"!assess medium {V40_MEDIUM}", thread="$root-1")
    assert "CVSS 4.0 CVSS-B 6.9 (medium)" in v4 and "⚠️" not in v4
    history = await room.say("!history", thread="$root-1")
    assert "assessment revised: high -> medium (CVSS 3.1 base score 9.8 (critical))" in history


@pytest.mark.parametrize(
    ("vector", "reason"),
    [
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H", "Missing mandatory metrics"),
        ("CVSS:3.1/AV:Q/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 'Unknown value "Q"'),
        ("CVSS:2.0/AV:N/AC:L/Au:N/C:P/I:P/A:P", "not a CVSS 3.0, 3.1 or 4.0 vector"),
    ],
)
async def test_an_invalid_vector_is_refused_and_nothing_changes(
    room: Room, vector: str, reason: str
) -> None:
    case = await add_case(
        room.db, room.calendar, state=CaseState.ACKNOWLEDGED, acknowledged_at=at(2, 11)
    )
    before = await snapshot(room, case.id)
    answer = await room.say(f"!assess high {vector} the text", thread="$root-1")
    assert answer.startswith("⚠️ the CVSS vector is not valid:")
    assert reason in answer and "Nothing was changed, no mail was sent." in answer
    assert await snapshot(room, case.id) == before
