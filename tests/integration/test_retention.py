"""Closing, the retention countdown, deletion, hold and export, end to end: the bot runs
in-process with an injected clock against the real Synapse and SMTP and the real gpg; the
reports come in through the pipe path with that clock; a team member uses a real E2EE client.

Case A (English, PGP-encrypted with the reporter's key and an attachment) is closed and,
after the countdown, deleted: no table holds its report text, address, key or attachment
name any more, the team member's client sees every bot event of its thread redacted, the
stub and the digest's figures stay. Case B (Dutch, plain) is held: it outlives the countdown,
and is deleted only after !unhold plus the period. Each closing mail goes out once, signed,
A's encrypted; every mail to either reporter is opened with the reporter's own gpg and its
signature checked against the bot's key (tests/harness/signed_mail.py). `cvdbot export`
writes both as JSON and Markdown with the audit log.

The clock starts 200 days in the past, so it only ever moves forward and commands the team
sends in real time are never "from before the bot came back".
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from bot.app import App, make_intake
from bot.config import load_config
from bot.failpoints import Failpoints
from bot.pgp.gpg import Pgp
from bot.policy.promises import PROMISES
from storage import case_overview
from storage.db import Database
from tests.harness.bot import CvdDeployment
from tests.harness.in_process import RunningBot, ShiftedClock, wait_until_sent
from tests.harness.person import Person, ReceivedMessage
from tests.harness.quiescence import wait_seen
from tests.harness.reporter_pgp import ReporterGpg
from tests.harness.signed_mail import assert_signed, bot_public_key, opened
from tests.integration.conftest import MakeDeployment
from tests.integration.sample_mails import report
from tests.integration.test_intake import PNG

CASE_ID = re.compile(r"CVD-\d{4}-\d{4,}")
RETENTION = timedelta(days=90)
AMS = ZoneInfo("Europe/Amsterdam")

SUBJECT_A = "Quokka overflow in the permit API"
BODY_A = """Hello,

The permit API at https://vergunning-quokka.haaksbergen.example/api/v2 accepts a negative
page size and returns every permit holder. Marker: zebra-7731-quokka.
Steps: request /api/v2/permits?size=-1 with any session.

Regards, Sam Finder, +31 6 1234 5678
"""
ATTACHMENT_A = "quokka-evidence.png"
SUBJECT_B = "Lek in het afvalpasjesportaal"
BODY_B = """Beste heer/mevrouw,

Op https://afval-walrus.haaksbergen.example/pasjes kan ik andermans pasje zien door het
nummer in de URL te veranderen. Kenmerk: walrus-4412-pasje.

Met vriendelijke groet,
Eva Onderzoeker
"""
ADDRESS_B = "eva@researcher.example"


def scan(db_path: Path, needles: list[str]) -> list[tuple[str, str, str]]:
    """Every (table, column, needle) where a needle occurs in any stored value."""
    found = []
    with sqlite3.connect(db_path) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            columns = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
            for row in conn.execute(f"SELECT * FROM {table}"):  # noqa: S608 - test's own names
                for column, value in zip(columns, row, strict=True):
                    if isinstance(value, bytes):
                        text = value.decode("utf-8", "replace")
                    elif isinstance(value, str):
                        text = value
                    else:
                        continue
                    found.extend((table, column, n) for n in needles if n.lower() in text.lower())
    return found


def day(moment: datetime) -> str:
    """The date as the thread shows it ('Wed 2 Dec 2026')."""
    local = moment.astimezone(AMS)
    return f"{local:%a} {local.day} {local:%b %Y}"


def rows(d: CvdDeployment, sql: str, *args: object) -> list[tuple[object, ...]]:
    with sqlite3.connect(d.db_path) as conn:
        return conn.execute(sql, args).fetchall()


async def quiescent(d: CvdDeployment, timeout: float = 60) -> None:
    """Until nothing waits in the outbox and the team member has received every post sent
    to the case room: then counting posts and mails is exact. (`wait_quiescent` would also
    wait for SLA checks, whose times this test's shifted clock makes look overdue.)"""
    await wait_until_sent(d.db_path, timeout)
    await wait_seen(d.db_path, d.team, d.room_id, timeout=timeout)


async def ask(person: Person, room: str, root: ReceivedMessage, command: str, answer: str) -> str:
    sent = await person.send(room, command, thread_root=root.event_id)
    reply = await person.wait_for_message(
        room,
        lambda m: (
            m.thread_root == root.event_id
            and answer in m.body
            and (m.content.get("m.relates_to") or {}).get("m.in_reply_to", {}).get("event_id")
            == sent
        ),
        timeout=60,
    )
    return reply.body


async def figures(db: Database, until: datetime) -> list[tuple[int, int]]:
    """The digest's on-time figures per promise over the whole test, and the case count."""
    async with db.transaction() as conn:
        start = until - timedelta(days=400)
        result = []
        for promise in PROMISES:
            on_time = await case_overview.on_time(conn, promise.name, start, until)
            result.append((on_time.kept, on_time.decided))
        result.append((len(await case_overview.created_between(conn, start, until)), 0))
    return result


async def export(d: CvdDeployment, case: str, fmt: str) -> subprocess.CompletedProcess[str]:
    """`cvdbot export` in a thread: the bot runs in this event loop, and a blocked loop
    could hold the database's write lock past the export's busy timeout."""
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "bot", "export", "--config", str(d.config_path), case]
        + ["--format", fmt],
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_close_hold_delete_redact_and_export(
    make_deployment: MakeDeployment, tmp_path: Path
) -> None:
    d = await make_deployment()
    sam = ReporterGpg(tmp_path / "sam", "Sam Finder", "sam@finder.example")
    # Eva's key stays hers: the bot never learns it, she only checks the bot's signatures.
    eva = ReporterGpg(tmp_path / "eva", "Eva Onderzoeker", ADDRESS_B)
    bot: RunningBot | None = None
    try:
        for reporter in (sam, eva):
            reporter.import_key(bot_public_key(d))  # to check the bot's signatures
        config = load_config(d.write_config(), {})
        start = datetime.now(UTC) - timedelta(days=200)
        clock = ShiftedClock(start)
        team, room = d.team, d.room_id
        bot = RunningBot(App(config, clock=clock, environ={}))
        await bot.ready()
        db: Database = bot.app._db  # noqa: SLF001 - the running bot's one connection
        intake = make_intake(db, config, clock, Failpoints({}))
        inner = sam.inner_part(
            BODY_A,
            subject=SUBJECT_A,
            attachments=[
                (ATTACHMENT_A, "image/png", PNG),
                ("sam.asc", "application/pgp-keys", sam.public_key().encode()),
            ],
        )
        await intake.ingest(sam.pgp_mime_encrypted(inner, [d.key_fingerprint]), source="pipe")
        await intake.ingest(
            report(subject=SUBJECT_B, body=BODY_B, sender=f"Eva Onderzoeker <{ADDRESS_B}>"),
            source="pipe",
        )
        bot.app.worker.wake()
        root_a = await team.wait_for_message(room, lambda m: SUBJECT_A in m.body, timeout=60)
        root_b = await team.wait_for_message(room, lambda m: SUBJECT_B in m.body, timeout=60)
        case_a = CASE_ID.search(root_a.body).group(0)  # type: ignore[union-attr]
        case_b = CASE_ID.search(root_b.body).group(0)  # type: ignore[union-attr]
        await team.wait_for_message(
            room, lambda m: m.thread_root == root_a.event_id and "Imported" in m.body
        )
        await team.wait_for_message(
            room,
            lambda m: m.thread_root == root_a.event_id and m.content.get("msgtype") == "m.image",
        )
        await quiescent(d)

        # A refused !close changes nothing: state, audit log and outbox stay as they were.
        snapshot = (
            "SELECT (SELECT state FROM cases WHERE id = ?),"
            " (SELECT COUNT(*) FROM case_events WHERE case_id = ?),"
            " (SELECT COUNT(*) FROM outbox WHERE idem_key NOT LIKE 'reply:%')"
        )
        before = rows(d, snapshot, case_b, case_b)
        refusal = await ask(team, room, root_b, "!close", "before !close")
        assert "run !fixed" in refusal
        assert rows(d, snapshot, case_b, case_b) == before

        for root, steps in (
            (root_a, ["!ack", "!assess high", "!fixed page size validated"]),
            (root_b, ["!ack", "!assess medium", "!fixed"]),
        ):
            for command in steps:
                await ask(team, room, root, command, "by @")
        held = await ask(team, room, root_b, "!hold court case pending", "deletion held")
        assert "nothing is deleted until !unhold" in held
        closed_at = clock.now()
        closed_a = await ask(team, room, root_a, "!close", "closed (fixed)")
        delete_a = closed_at + RETENTION
        assert f"will be deleted on {day(delete_a)}" in closed_a
        assert "closing notice mail to the reporter is queued" in closed_a
        closed_b = await ask(team, room, root_b, "!close", "closed (fixed)")
        assert "on hold" in closed_b
        again = await ask(team, room, root_a, "!close", "run !reopen first")
        assert "closed" in again
        await quiescent(d)

        # Each closing mail exactly once: A's in English, encrypted to Sam's key and signed;
        # B's in Dutch, signed, saying the data is kept for now.
        mails = d.smtp.messages
        assert len(mails) == 8, [m.message["Subject"] for m in mails]
        # Four steps each (receipt, assessment, fix, closing): every mail signed by the bot,
        # Sam's encrypted to the key he attached, Eva's signed only.
        assert [m.rcpt_tos for m in mails].count([ADDRESS_B]) == 4
        for mail in mails:
            reader = sam if mail.rcpt_tos == ["sam@finder.example"] else eva
            assert_signed(opened(reader, mail), d, encrypted=reader is sam)
        # A's report came encrypted: its subject stays inside, the outer one is the phrase.
        closing = [m for m in mails if str(m.message["Subject"]) == f"[{case_a}] Closed"]
        gesloten = [m for m in mails if "Afgesloten:" in str(m.message["Subject"])]
        assert len(closing) == 1 and len(gesloten) == 1
        assert str(closing[0].message["Subject"]).startswith(f"[{case_a}] ")
        assert closing[0].rcpt_tos == ["sam@finder.example"]
        text_a = assert_signed(opened(sam, closing[0]), d, encrypted=True)
        assert "We will delete your personal data" in text_a
        assert f"{delete_a.day} " in text_a and str(delete_a.year) in text_a
        assert b"zebra-7731" not in closing[0].raw
        assert gesloten[0].message.get_content_type() == "multipart/signed"
        assert gesloten[0].rcpt_tos == [ADDRESS_B]
        signed_b = opened(eva, gesloten[0])
        signed_text = assert_signed(signed_b, d, encrypted=False)
        assert "We bewaren de gegevens van uw melding voorlopig" in signed_text
        assert "Content-Language: nl" in str(signed_b.message)

        # The records before deletion: JSON and Markdown with the audit log and the mails.
        as_json = await export(d, case_b, "json")
        assert as_json.returncode == 0, as_json.stderr
        record = json.loads(as_json.stdout)
        kinds = [entry["kind"] for entry in record["audit_log"]]
        assert kinds[0] == "opened" and "retention_held" in kinds and "closed" in kinds
        assert any("walrus-4412-pasje" in mail["text"] for mail in record["mails"])
        as_md = await export(d, case_b, "markdown")
        assert as_md.returncode == 0, as_md.stderr
        assert as_md.stdout.startswith(f"# {case_b}: {SUBJECT_B}")
        assert "## Audit log" in as_md.stdout and "| retention_held |" in as_md.stdout
        export_a = json.loads((await export(d, case_a, "json")).stdout)
        assert any(
            m["read_as"] == "decrypted" and "zebra-7731" in m["text"] for m in export_a["mails"]
        )
        unknown = await export(d, "CVD-1999-0001", "json")
        assert unknown.returncode == 2 and "no case CVD-1999-0001" in unknown.stderr

        needles_a = [
            "zebra-7731",
            SUBJECT_A,
            "sam@finder.example",
            "Sam Finder",
            "vergunning-quokka",
            ATTACHMENT_A,
            sam.fingerprint,
        ]
        needles_b = ["walrus-4412", SUBJECT_B, ADDRESS_B, "afval-walrus"]
        assert {n for _, _, n in scan(d.db_path, needles_a)} == set(needles_a)
        assert {n for _, _, n in scan(d.db_path, needles_b)} == set(needles_b)
        bot_events_a = {
            m.event_id
            for m in team.messages(room)
            if m.sender == d.bot_user and root_a.event_id in (m.event_id, m.thread_root)
        }
        assert len(bot_events_a) >= 8
        until = start + timedelta(days=400)
        figures_before = await figures(db, until)

        # The countdown runs out: A goes, held B stays.
        clock.set(delete_a + timedelta(minutes=1))
        result = await bot.app.scheduler.tick_retention()
        assert result.deleted == [case_a] and result.keys_removed == [sam.fingerprint]
        note = await team.wait_for_message(
            room, lambda m: m.thread_root == root_a.event_id and "data was deleted" in m.body
        )
        assert "• 1 mail(s) from and 4 to the reporter" in note.body
        redacted = await team.wait_for_redactions(room, bot_events_a)
        assert {redacted[e] for e in bot_events_a} == {d.bot_user}
        await quiescent(d)
        assert await bot.app.scheduler.tick_retention() == type(result)()
        assert scan(d.db_path, needles_a) == []
        assert {n for _, _, n in scan(d.db_path, needles_b)} == set(needles_b)
        gpg = Pgp(d.workdir / "data" / "gnupg", None, None)
        assert gpg.key_for_address("sam@finder.example") is None

        # The stub: ID, dates, severity, outcome, each promise's times, a SHA-256 per mail,
        # and the audit log of who ran which step.
        [stub] = rows(
            d,
            "SELECT subject, reporter_address, severity, outcome, acknowledged_at, assessed_at,"
            " fixed_at, closed_at, data_deleted_at FROM cases WHERE id = ?",
            case_a,
        )
        assert stub[:4] == ("(deleted)", None, "high", "fixed") and all(stub[4:])
        hashes = rows(d, "SELECT sha256, length(raw) FROM mails WHERE case_id = ?", case_a)
        assert len(hashes) == 5
        assert all(re.fullmatch("[0-9a-f]{64}", str(h)) and size == 0 for h, size in hashes)
        audit = rows(d, "SELECT actor, kind FROM case_events WHERE case_id = ? ORDER BY id", case_a)
        assert (team.user_id, "assessed") in audit and (team.user_id, "closed") in audit
        assert audit[-1] == ("cvdbot", "data_deleted")
        assert await figures(db, until) == figures_before
        redactions = rows(d, "SELECT COUNT(*) FROM outbox WHERE idem_key LIKE 'redact:%'")
        assert redactions == [(len(bot_events_a),)]

        # B: !unhold restarts the full period from now; only then is it deleted.
        unheld = await ask(team, room, root_b, "!unhold", "hold released")
        delete_b = clock.now() + RETENTION
        assert f"will be deleted on {day(delete_b)}" in unheld
        await quiescent(d)
        assert (await bot.app.scheduler.tick_retention()).deleted == []
        clock.set(delete_b + timedelta(minutes=1))
        assert (await bot.app.scheduler.tick_retention()).deleted == [case_b]
        await team.wait_for_message(
            room, lambda m: m.thread_root == root_b.event_id and "data was deleted" in m.body
        )
        await quiescent(d)
        assert scan(d.db_path, needles_a + needles_b) == []
        assert len(d.smtp.messages) == 8, "deletion sends no mail"
        assert team.undecryptable(room) == []
    finally:
        if bot is not None:
            assert await bot.stop() == 0
        sam.close()
        eva.close()
