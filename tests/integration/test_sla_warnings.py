"""The policy's clock end to end: the bot runs in-process with an injected clock against the
real Synapse, Dovecot and SMTP; a team member and a manager use real E2EE clients; the
reports come in through the pipe path (`cvdbot ingest`'s code) with the injected clock.

Policy: acknowledge 2 working days, assess 5, fix 3 calendar days (short, so a paused fix
clock has something to stay quiet about). Case A, received Monday 2 November 2026 10:00 CET,
is left alone: its points pass, across a restart and a week of downtime, and each is posted
exactly once; its overdue promises reach the managers. Case B is acknowledged, assessed and
paused: it gets no warning at all, although its fix deadline passes on the clock.

A's points: acknowledge half Tue 13:30, one working day left Wed 09:00, overdue Wed 17:00;
fix half Wed 01:30 (at night: waits for 09:00), one day left Thu 09:00, overdue Thu 17:00;
assess half Thu 09:30, one day left Mon 9 Nov 09:00, overdue Mon 17:00.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from nio import MemoryDownloadResponse
from nio.crypto.attachments import decrypt_attachment

from bot.app import App, make_intake
from bot.config import load_config
from bot.failpoints import Failpoints
from storage.db import Database
from tests.conftest import MakePerson
from tests.harness.in_process import RunningBot, ShiftedClock, wait_until_sent
from tests.harness.person import Person, ReceivedMessage
from tests.harness.quiescence import wait_seen
from tests.integration.conftest import MakeDeployment
from tests.integration.sample_mails import ENGLISH_BODY, report

AMS = ZoneInfo("Europe/Amsterdam")
CASE_ID = re.compile(r"CVD-\d{4}-\d{4,}")


def ams(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=AMS).astimezone(UTC)


def thread_messages(person: Person, room: str, root: ReceivedMessage) -> list[ReceivedMessage]:
    return [m for m in person.messages(room) if m.thread_root == root.event_id]


async def wait_for(
    person: Person, room: str, predicate: Callable[[ReceivedMessage], bool], timeout: float = 60
) -> ReceivedMessage:
    return await person.wait_for_message(room, predicate, timeout=timeout)


def warnings_in(person: Person, room: str, root: ReceivedMessage) -> list[ReceivedMessage]:
    return [m for m in thread_messages(person, room, root) if "deadline warning" in m.body]


async def test_warnings_once_across_restart_and_downtime_paused_case_quiet(
    make_deployment: MakeDeployment, make_person: MakePerson
) -> None:
    d = await make_deployment()
    boss = await make_person("boss")
    managers_room = await boss.create_encrypted_room(invite=[d.bot_user], name="CVD managers")
    d.managers = [boss.user_id]
    d.config_overrides = {
        "matrix": {"digest_room": managers_room},
        "policy": {"fix_within_days": 3},
    }
    config = load_config(d.write_config(), {})
    clock = ShiftedClock(ams(2, 9, 58))
    team, room = d.team, d.room_id

    bot = RunningBot(App(config, clock=clock, environ={}))
    await bot.ready()
    # Through the pipe path (`cvdbot ingest`), in-process so the report gets the test's
    # clock as its receipt time.
    db = await Database.open(config.storage.path)
    intake = make_intake(db, config, clock, Failpoints({}))
    for subject in ("Case A left alone", "Case B waits for a supplier"):
        await intake.ingest(report(subject=subject, body=ENGLISH_BODY), source="pipe")
    await db.close()
    bot.app.worker.wake()
    root_a = await wait_for(team, room, lambda m: "New report" in m.body and "Case A" in m.body)
    root_b = await wait_for(team, room, lambda m: "New report" in m.body and "Case B" in m.body)
    case_a = CASE_ID.search(root_a.body).group(0)  # type: ignore[union-attr]
    for command, answer in (
        ("!ack", "acknowledged by"),
        ("!assess low", "assessed as low"),
        ("!pause waiting for the supplier's patch", "paused by"),
    ):
        await team.send(room, command, thread_root=root_b.event_id)
        await wait_for(
            team, room, lambda m, a=answer: m.thread_root == root_b.event_id and a in m.body
        )

    # Tuesday 13:35: acknowledge is half used.
    clock.set(ams(3, 13, 35))
    await bot.app.scheduler.tick_sla()
    first = await wait_for(team, room, lambda m: "deadline warning" in m.body)
    assert first.thread_root == root_a.event_id
    assert "Acknowledge: half the time is used" in first.body
    assert first.content["m.mentions"] == {"user_ids": [team.user_id]}
    assert team.user_id in first.body

    # A restart: the new process remembers what was posted.
    assert await bot.stop() == 0
    bot = RunningBot(App(config, clock=clock, environ={}))
    await bot.ready()
    await bot.app.scheduler.tick_sla()

    # Wednesday 09:05: one working day left, and the fix half-time that passed at night.
    clock.set(ams(4, 9, 5))
    await bot.app.scheduler.tick_sla()
    second = await wait_for(team, room, lambda m: "1 working day left" in m.body)
    assert "Fix: half the time is used" in second.body
    await bot.app.scheduler.tick_sla()

    # Wednesday 17:05: acknowledge is overdue; the managers hear of it.
    clock.set(ams(4, 17, 5))
    await bot.app.scheduler.tick_sla()
    await wait_for(team, room, lambda m: "Acknowledge: OVERDUE" in m.body)
    escalation = await wait_for(boss, managers_room, lambda m: m.body.startswith("🚨 Overdue:"))
    assert case_a in escalation.body and "acknowledge was due" in escalation.body
    assert escalation.content["m.mentions"] == {"user_ids": [boss.user_id]}
    assert "Case A left alone" in escalation.body  # the managers' room is encrypted

    # Down until Tuesday 10 November 10:00: the start catches up, one message for case A.
    assert await bot.stop() == 0
    clock.set(ams(10, 10))
    bot = RunningBot(App(config, clock=clock, environ={}))
    await bot.ready()
    catch_up = await wait_for(team, room, lambda m: "Assess: OVERDUE" in m.body)
    assert "Fix: OVERDUE" in catch_up.body
    assert "also passed, not announced at the time: 50%, 1 working day left" in catch_up.body
    second_escalation = await wait_for(
        boss,
        managers_room,
        lambda m: m.body.startswith("🚨 Overdue:") and "assess was due" in m.body,
    )
    assert "fix was due" in second_escalation.body
    assert await bot.app.scheduler.run_digest() is True
    assert await bot.app.scheduler.run_digest() is False, "one digest a day"
    digest = await wait_for(
        boss, managers_room, lambda m: m.body.startswith("CVD digest, Tue 10 Nov 2026")
    )
    assert "Overdue: 1" in digest.body and case_a in digest.body
    assert f"https://matrix.to/#/{room}/{root_a.event_id}" in digest.body
    chart = await wait_for(boss, managers_room, lambda m: m.content.get("msgtype") == "m.image")
    await bot.app.scheduler.tick_sla()
    # Everything queued is out and both rooms seen whole: a repeated point would be counted.
    await wait_until_sent(d.db_path)
    await wait_seen(d.db_path, team, room)
    await wait_seen(d.db_path, boss, managers_room, case_room=room)
    assert await bot.stop() == 0

    # Each point exactly once, in four messages; nothing at all for the paused case B.
    warnings = warnings_in(team, room, root_a)
    assert len(warnings) == 4, [w.body for w in warnings]
    text = "\n".join(w.body for w in warnings)
    for line in (
        "Acknowledge: half the time is used",
        "Acknowledge: 1 working day left",
        "Acknowledge: OVERDUE",
        "Fix: half the time is used",
        "Fix: OVERDUE",
        "Assess: OVERDUE",
    ):
        assert text.count(line) == 1, line
    assert all(w.content["m.mentions"] == {"user_ids": [team.user_id]} for w in warnings)
    assert warnings_in(team, room, root_b) == []
    escalations = [m for m in boss.messages(managers_room) if m.body.startswith("🚨 Overdue:")]
    assert len(escalations) == 2
    assert case_a in escalations[0].body and case_a in escalations[1].body

    # The chart is encrypted media: the server holds ciphertext, the key is in the event.
    file: dict[str, Any] = chart.content["file"]
    downloaded = await boss.client.download(mxc=file["url"])
    assert isinstance(downloaded, MemoryDownloadResponse)
    assert not downloaded.body.startswith(b"\x89PNG")
    png = decrypt_attachment(
        downloaded.body, file["key"]["k"], file["hashes"]["sha256"], file["iv"]
    )
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert chart.content["info"]["mimetype"] == "image/png"
