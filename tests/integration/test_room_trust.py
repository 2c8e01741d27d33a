"""The case room's trust boundary and the faults around commands, on the real servers:
the bot kicked and re-invited, the room made public and private again, two team members
commanding one case at once, an edited and a redacted command, `cvdbot ingest` next to a
running bot, and a database that refuses writes (disk full) under a running bot.

Every count is taken when the bot is quiescent (tests/harness/quiescence.py), never after a
sleep.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
import time
from datetime import datetime

import pytest
from nio import RoomKickResponse, RoomPutStateResponse

from bot.app import App
from bot.config import load_config
from tests.conftest import MakePerson
from tests.harness.bot import CvdDeployment
from tests.harness.in_process import RunningBot
from tests.harness.person import Person, ReceivedMessage
from tests.harness.quiescence import wait_quiescent_and_seen, wait_seen
from tests.integration.conftest import MakeDeployment
from tests.integration.sample_mails import ENGLISH_BODY, report

CASE_ID = re.compile(r"CVD-\d{4}-\d{4,}")
BROKEN = "is no longer a safe place for reports"
RESUMED = "is safe again"
# The running bot posts a piped mail's root within this of storing it (measured: 0.1 to
# 0.3 s; without the wake-up it waits up to the outbox's 30 s idle wait). The bounds leave
# room for a loaded 2-core CI machine and still tell a wake-up from the idle wait.
POSTED_WITHIN = 5.0
# `cvdbot ingest` exited -> the root decrypted by a team member's client.
INGEST_TO_ROOT_BOUND = 8.0


def rows(d: CvdDeployment, sql: str, *args: object) -> list[tuple[object, ...]]:
    with sqlite3.connect(d.db_path) as conn:
        return conn.execute(sql, args).fetchall()


def roots(person: Person, room_id: str, subject: str) -> list[ReceivedMessage]:
    return [
        m
        for m in person.messages(room_id)
        if m.thread_root is None and "New report" in m.body and subject in m.body
    ]


def in_thread(person: Person, room_id: str, root: ReceivedMessage, text: str) -> int:
    return sum(
        1 for m in person.messages(room_id) if m.thread_root == root.event_id and text in m.body
    )


async def wait_root(person: Person, room_id: str, subject: str) -> ReceivedMessage:
    return await person.wait_for_message(
        room_id,
        lambda m: m.thread_root is None and "New report" in m.body and subject in m.body,
        timeout=60,
    )


async def wait_attempted_and_held(d: CvdDeployment, case_id: str, timeout: float = 30) -> None:
    """Until the worker has tried the case's root and held it back (pending, tried once),
    without anything of the case sent."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        held = rows(
            d,
            "SELECT state, attempts FROM outbox WHERE idem_key = ?",
            f"root:{case_id}",
        )
        if held and held[0][0] == "pending" and int(str(held[0][1])) >= 1:
            sent = rows(
                d, "SELECT COUNT(*) FROM outbox WHERE case_id = ? AND state = 'sent'", case_id
            )
            assert sent == [(0,)], "nothing of the case may be posted while the room is unsafe"
            return
        await asyncio.sleep(0.1)
    outbox = rows(d, "SELECT idem_key, state, attempts, last_error FROM outbox")
    raise TimeoutError(f"the root of {case_id} was not tried and held: {outbox}")


async def ingest(d: CvdDeployment, subject: str) -> str:
    done = await asyncio.to_thread(d.ingest_cli, report(subject=subject, body=ENGLISH_BODY))
    assert done.returncode == 0, done.stderr.decode()
    found = CASE_ID.search(done.stdout.decode())
    assert found is not None, done.stdout
    return found.group(0)


async def test_kicked_and_public_room_hold_posts_alert_managers_and_resume_once(
    make_deployment: MakeDeployment, make_person: MakePerson
) -> None:
    d = await make_deployment()
    alice = d.team
    bob = await make_person("bob", auto_join=True)
    boss = await make_person("boss", auto_join=True)
    await alice.invite(d.room_id, bob.user_id)
    await bob.wait_for_room(d.room_id)
    digest_room = await alice.create_encrypted_room(
        invite=[d.bot_user, boss.user_id], name="CVD managers"
    )
    await boss.wait_for_room(digest_room)
    d.extra_team = [bob.user_id]
    d.managers = [boss.user_id]
    d.config_overrides["matrix"] = {"digest_room": digest_room}
    d.start_bot()
    await alice.wait_for_member(digest_room, d.bot_user)

    # 1. `cvdbot ingest` while `cvdbot run` runs: the running bot posts the root at once.
    case_a = await ingest(d, "Open redirect in login")
    ingest_done = time.monotonic()
    root_a = await wait_root(alice, d.room_id, "Open redirect in login")
    seen_after = time.monotonic() - ingest_done
    [(stored_at,)] = rows(d, "SELECT stored_at FROM mails WHERE direction = 'in'")
    posted_after = root_a.timestamp / 1000 - datetime.fromisoformat(str(stored_at)).timestamp()
    print(
        f"cvdbot ingest: mail stored -> root on the homeserver {posted_after * 1000:.0f} ms; "
        f"ingest exited -> root decrypted by the team {seen_after * 1000:.0f} ms"
    )
    assert posted_after < POSTED_WITHIN
    assert seen_after < INGEST_TO_ROOT_BOUND

    # 2. Two team members !ack the same case at the same moment: one mail, one refusal.
    ack_a, _ = await asyncio.gather(
        alice.send(d.room_id, "!ack", thread_root=root_a.event_id),
        bob.send(d.room_id, "!ack", thread_root=root_a.event_id),
    )
    await alice.wait_for_message(
        d.room_id, lambda m: m.thread_root == root_a.event_id and "already acknowledged" in m.body
    )
    # 3. An edit of a command is not run again; it gets a short note.
    await alice.send_content(
        d.room_id,
        {
            "msgtype": "m.text",
            "body": "* !ack",
            "m.new_content": {"msgtype": "m.text", "body": "!ack"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": ack_a},
        },
    )
    await bob.wait_for_message(
        d.room_id, lambda m: m.thread_root == root_a.event_id and "edited commands" in m.body
    )
    await wait_quiescent_and_seen(d.db_path, d.team, d.room_id)
    assert len(d.smtp.messages) == 1, "exactly one receipt confirmation"
    assert in_thread(alice, d.room_id, root_a, "acknowledged by") == 1
    assert in_thread(alice, d.room_id, root_a, "already acknowledged") == 1
    assert in_thread(alice, d.room_id, root_a, "edited commands") == 1

    # 4. Kicked: the managers are told, the new case's posts wait, nothing reaches the room.
    kicked = await alice.client.room_kick(d.room_id, d.bot_user, reason="tidying up @room")
    assert isinstance(kicked, RoomKickResponse), kicked
    alert = await boss.wait_for_message(digest_room, lambda m: BROKEN in m.body, timeout=30)
    assert "I am not a member of the case room" in alert.body
    assert alert.content["m.mentions"] == {"user_ids": [boss.user_id]}
    assert "@\u2060room" in alert.body, "the kick reason cannot ping the room"
    case_b = await ingest(d, "Directory listing on files host")
    await wait_attempted_and_held(d, case_b)
    await alice.invite(d.room_id, d.bot_user)
    await boss.wait_for_message(digest_room, lambda m: RESUMED in m.body, timeout=30)
    root_b = await wait_root(alice, d.room_id, "Directory listing on files host")
    await wait_quiescent_and_seen(d.db_path, d.team, d.room_id)
    assert in_thread(alice, d.room_id, root_b, "The report:") == 1

    # 5. The room made public: the same, with the bot still in it; private again: resumed.
    public = await alice.client.room_put_state(
        d.room_id, "m.room.join_rules", {"join_rule": "public"}
    )
    assert isinstance(public, RoomPutStateResponse), public
    await boss.wait_for_message(
        digest_room, lambda m: BROKEN in m.body and "'public'" in m.body, timeout=30
    )
    case_c = await ingest(d, "Stack trace on error page")
    await wait_attempted_and_held(d, case_c)
    private = await alice.client.room_put_state(
        d.room_id, "m.room.join_rules", {"join_rule": "invite"}
    )
    assert isinstance(private, RoomPutStateResponse), private
    root_c = await wait_root(alice, d.room_id, "Stack trace on error page")
    await wait_quiescent_and_seen(d.db_path, d.team, d.room_id)

    # 6. A command sent and redacted while the bot was down is not run when it returns.
    assert d.bot is not None
    assert d.bot.stop() == 0
    ack_c = await alice.send(d.room_id, "!ack", thread_root=root_c.event_id)
    await alice.client.room_redact(d.room_id, ack_c, reason="wrong case")
    d.start_bot()
    await alice.send(d.room_id, "!status", thread_root=root_c.event_id)
    await alice.wait_for_message(
        d.room_id, lambda m: m.thread_root == root_c.event_id and f"{case_c}: new" in m.body
    )
    await wait_quiescent_and_seen(d.db_path, d.team, d.room_id)
    await wait_seen(d.db_path, boss, digest_room, case_room=d.room_id)

    # Counted when nothing is left to send.
    for subject in ("Open redirect in login", "Directory listing", "Stack trace on error page"):
        assert len(roots(alice, d.room_id, subject)) == 1, subject
    assert rows(d, "SELECT COUNT(*) FROM cases") == [(3,)]
    assert in_thread(alice, d.room_id, root_c, "acknowledged by") == 0
    assert len(d.smtp.messages) == 1, "no mail for the edit, the refusal or the redacted command"
    alerts = [m.body for m in boss.messages(digest_room)]
    assert sum(BROKEN in body for body in alerts) == 2
    assert sum(RESUMED in body for body in alerts) == 2
    for case in (case_a, case_b, case_c):
        assert all(case not in body for body in alerts), "no case content in the alerts"
    assert alice.undecryptable(d.room_id) == []


async def test_a_database_that_refuses_writes_loses_nothing_and_recovers_without_restart(
    make_deployment: MakeDeployment, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    d = await make_deployment()
    alice = d.team
    config = load_config(d.write_config(), {})
    bot = RunningBot(App(config, environ={}))
    try:
        await bot.ready()
        d.append_mail(report(subject="Session fixation in portal", body=ENGLISH_BODY))
        root = await wait_root(alice, d.room_id, "Session fixation in portal")
        await wait_quiescent_and_seen(d.db_path, d.team, d.room_id)
        position = rows(d, "SELECT uidvalidity, last_uid FROM imap_state")
        assert len(position) == 1

        bot.app._db.fail_writes = "database or disk is full"
        d.append_mail(report(subject="Weak TLS on mail host", body=ENGLISH_BODY))
        await alice.send(d.room_id, "!ack", thread_root=root.event_id)

        def logged(text: str) -> bool:
            return any(text in r.getMessage() for r in caplog.records)

        for text in ("mail not stored", "Matrix events not handled", "database or disk is full"):
            for _ in range(300):
                if logged(text):
                    break
                await asyncio.sleep(0.1)
            assert logged(text), text
        # Nothing half-done: no new case, the mailbox position where it was, no mail.
        assert rows(d, "SELECT COUNT(*) FROM cases") == [(1,)]
        assert rows(d, "SELECT uidvalidity, last_uid FROM imap_state") == position
        assert rows(d, "SELECT COUNT(*) FROM outbox WHERE channel = 'mail'") == [(0,)]

        bot.app._db.fail_writes = None  # space is back
        await wait_root(alice, d.room_id, "Weak TLS on mail host")
        await alice.wait_for_message(
            d.room_id, lambda m: m.thread_root == root.event_id and "acknowledged by" in m.body
        )
        await wait_quiescent_and_seen(d.db_path, d.team, d.room_id)
        assert rows(d, "SELECT COUNT(*) FROM cases") == [(2,)]
        assert len(roots(alice, d.room_id, "Weak TLS on mail host")) == 1
        assert in_thread(alice, d.room_id, root, "acknowledged by") == 1
        assert len(d.smtp.messages) == 1
        new_position = rows(d, "SELECT uidvalidity, last_uid FROM imap_state")
        assert int(str(new_position[0][1])) == int(str(position[0][1])) + 1
    finally:
        assert await bot.stop() == 0
