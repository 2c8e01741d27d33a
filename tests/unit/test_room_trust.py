"""The case room's trust boundary: the rule (bot/policy/room_trust.py), and the guard that
alerts the managers once per break and resumes once (bot/matrix/case_room_guard.py) on a
real database. On the real servers: tests/integration/test_room_trust.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bot.config import Config
from bot.matrix.case_room_guard import STATE_KEY, CaseRoomGuard
from bot.matrix.posts import Post, post_to_room
from bot.outbox.payloads import Mail, RoomPost, decode
from bot.policy.room_trust import RoomView, boundary_breaks, is_trusted
from storage import outbox, sync_state
from storage.db import Database
from tests.unit.test_sla_commands import MovableClock
from tests.unit.test_sla_watch import BOSS, MANAGERS_ROOM, at, make_config

SAFE = RoomView(joined=True, encrypted=True, join_rule="invite", history_visibility="shared")


@pytest.mark.parametrize(
    ("view", "trusted"),
    [
        (SAFE, True),
        (replace(SAFE, join_rule="knock"), True),
        (replace(SAFE, history_visibility="joined"), True),
        (replace(SAFE, history_visibility="invited"), True),
        (replace(SAFE, join_rule="public"), False),
        (replace(SAFE, join_rule="restricted"), False),
        (replace(SAFE, join_rule="knock_restricted"), False),
        (replace(SAFE, history_visibility="world_readable"), False),
        (replace(SAFE, encrypted=False), False),
        (RoomView(joined=False), False),
        (RoomView(joined=False, left_as="ban"), False),
    ],
)
def test_what_breaks_the_boundary(view: RoomView, trusted: bool) -> None:
    assert is_trusted(view) is trusted
    assert bool(boundary_breaks(view)) is not trusted


def test_each_break_is_named() -> None:
    both = replace(SAFE, join_rule="public", history_visibility="world_readable")
    assert [r.split(":")[0] for r in boundary_breaks(both)] == [
        "the case room's join rule is 'public'",
        "the case room's history visibility is 'world_readable'",
    ]
    assert boundary_breaks(RoomView(joined=False, left_as="ban")) == [
        "I was banned from the case room"
    ]


class Setup:
    def __init__(self, db: Database, config: Config, joined: set[str]) -> None:
        self.db = db
        self.config = config
        self.joined = joined
        self.clock = MovableClock(at(3, 10))
        self.wakes = 0

    def guard(self) -> CaseRoomGuard:
        def wake() -> None:
            self.wakes += 1

        return CaseRoomGuard(
            self.db, self.config, self.clock, is_joined=self.joined.__contains__, wake=wake
        )

    async def items(self) -> list[tuple[str, Any, str]]:
        async with self.db.transaction() as conn:
            async with conn.execute(
                "SELECT idem_key, payload, next_attempt_at FROM outbox ORDER BY id"
            ) as cur:
                return [(r[0], decode(r[1]), r[2]) for r in await cur.fetchall()]


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    db = await Database.open(tmp_path / "cvdbot.sqlite3")
    yield Setup(db, make_config(tmp_path), {"!cases:example.org", MANAGERS_ROOM})
    await db.close()


async def test_a_kick_alerts_the_managers_once_and_the_return_resumes_once(setup: Setup) -> None:
    guard = setup.guard()
    await guard.observe(SAFE)  # the first ready: no note, nothing broke
    assert await setup.items() == []
    async with setup.db.transaction() as conn:  # a post for the case room, tried while kicked
        await post_to_room(
            conn,
            "!cases:example.org",
            Post.text("Sorry"),
            idem_key="reply:$1",
            now=setup.clock.now(),
        )
        [item] = await outbox.due(conn, "matrix", setup.clock.now())
        later = setup.clock.now().replace(year=2027)
        await outbox.mark_retry(conn, item.id, "the case room is not safe now", later)
    kicked = RoomView(joined=False, changed_by="@mallory:example.org", left_reason="bye @room")
    await guard.observe(kicked)
    await guard.observe(kicked)  # every later sync: nothing new
    key, alert, _ = (await setup.items())[1]
    assert key == "room-trust:1:broken"
    assert isinstance(alert, RoomPost) and alert.room_id == MANAGERS_ROOM
    assert "I am not a member of the case room (by @mallory:example.org)" in alert.body
    assert "@\u2060room" in alert.body and "1 post(s) wait" in alert.body
    assert alert.mentions == (BOSS,)
    assert alert.unencrypted is not None, "no report content: it may go to a plain room"

    # A restart: the state is in the database, the alert is not repeated.
    await setup.guard().observe(kicked)
    assert [k for k, _, _ in await setup.items()] == ["reply:$1", "room-trust:1:broken"]

    await setup.guard().observe(SAFE)  # invited back
    await setup.guard().observe(SAFE)
    keys = [k for k, _, _ in await setup.items()]
    assert keys == ["reply:$1", "room-trust:1:broken", "room-trust:1:resumed"]
    root_due = (await setup.items())[0][2]
    assert root_due == setup.clock.now().isoformat(), "the held root is due at once"
    async with setup.db.transaction() as conn:
        assert await sync_state.get_value(conn, STATE_KEY) == "trusted:1"

    await setup.guard().observe(replace(SAFE, join_rule="public", changed_by="@bob:example.org"))
    key, second, _ = (await setup.items())[-1]
    assert key == "room-trust:2:broken"
    assert isinstance(second, RoomPost) and "'public'" in second.body


async def test_without_the_digest_room_the_alert_goes_by_mail(setup: Setup) -> None:
    setup.joined.discard(MANAGERS_ROOM)
    setup.config = setup.config.model_copy(
        update={"digest": setup.config.digest.model_copy(update={"email_to": ["boss@x.org"]})}
    )
    guard = setup.guard()
    await guard.observe(SAFE)
    await guard.observe(RoomView(joined=False, left_as="ban", changed_by="@mallory:example.org"))
    [(key, mail, _)] = await setup.items()
    assert key == "room-trust:1:broken:boss@x.org"
    assert isinstance(mail, Mail) and mail.kind == "alert" and mail.to_address == "boss@x.org"
    assert mail.composed is not None
    message = mail.composed.to_message()
    assert message["Subject"] == "cvdbot: the CVD case room is no longer safe"
    assert "I was banned from the case room" in message.get_content()


async def test_not_yet_invited_is_no_break(setup: Setup) -> None:
    await setup.guard().observe(RoomView(joined=False))
    assert await setup.items() == []
    # Joined into a room that is public from the start: that is a break.
    await setup.guard().observe(replace(SAFE, join_rule="public"))
    assert [k for k, _, _ in await setup.items()] == ["room-trust:1:broken"]
