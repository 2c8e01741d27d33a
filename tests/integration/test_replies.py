"""!reply, !send, !update, !lang and the update warning point end to end: the bot runs
in-process with an injected clock against the real Synapse, SMTP and gpg; the team member
uses a real E2EE client; the reporters' mail is opened with their own gpg.

Case E (English): Sam mails an encrypted report with his key attached, so the bot holds
his key: the reply preview says "encrypted", and the reply that goes out is encrypted to
him and is word for word the preview. Superseded, resent and expired previews are refused.
!update with the team's own words sends Sam one English progress mail; after !lang nl,
!update sends him one Dutch progress mail with the standard text. Case D (Dutch): Eva has
no key: her reply preview says "signed only" and the mail is signed, not encrypted. Every
mail is opened with the reporter's own gpg and its signature checked against the bot's key
(tests/harness/signed_mail.py).
Thirty days after the last mails the update warning point fires once per case, also across
a restart, and `cvdbot digest --print` lists both cases.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from bot.app import App, make_intake
from bot.config import load_config
from bot.failpoints import Failpoints
from storage.db import Database
from tests.harness.bot import CvdDeployment
from tests.harness.in_process import RunningBot, ShiftedClock, wait_until_sent
from tests.harness.person import Person, ReceivedMessage
from tests.harness.quiescence import wait_seen
from tests.harness.reporter_pgp import ReporterGpg
from tests.harness.signed_mail import assert_signed, bot_public_key, opened
from tests.harness.smtp import ReceivedMail
from tests.integration.conftest import MakeDeployment
from tests.integration.sample_mails import DUTCH_BODY, ENGLISH_BODY, report

AMS = ZoneInfo("Europe/Amsterdam")
CASE_ID = re.compile(r"CVD-\d{4}-\d{4,}")
SEPARATOR = "────────────────────────────────"
START = datetime(2026, 11, 2, 10, 0, tzinfo=AMS).astimezone(UTC)  # Monday, business hours


def in_thread(person: Person, room: str, root: ReceivedMessage) -> list[ReceivedMessage]:
    return [m for m in person.messages(room) if m.thread_root == root.event_id]


async def command(
    d: CvdDeployment, root: ReceivedMessage, text: str, answer: str
) -> ReceivedMessage:
    """Send a command in the case thread; the bot's answer to exactly this message."""
    event_id = await d.team.send(d.room_id, text, thread_root=root.event_id)
    return await d.team.wait_for_message(
        d.room_id,
        lambda m: (
            m.thread_root == root.event_id
            and m.content.get("m.relates_to", {}).get("m.in_reply_to", {}).get("event_id")
            == event_id
            and answer in m.body
        ),
        timeout=60,
    )


def preview_of(message: ReceivedMessage) -> tuple[str, str]:
    """(subject, body) of the mail as the preview in the thread shows it."""
    head, body, _ = message.body.replace("\u2060", "").split(SEPARATOR)
    subject = next(line for line in head.splitlines() if line.startswith("Subject: "))
    return subject.removeprefix("Subject: "), body.strip("\n") + "\n"


def subject_of(received: ReceivedMail) -> str:
    # A long subject is folded onto a continuation line; parsed back it keeps a leading space.
    return str(received.message["Subject"]).strip()


def db_write(d: CvdDeployment, sql: str, *args: object) -> None:
    with sqlite3.connect(d.db_path, timeout=30) as conn:
        assert conn.execute(sql, args).rowcount == 1


def db_rows(d: CvdDeployment, sql: str, *args: object) -> list[tuple[object, ...]]:
    with sqlite3.connect(d.db_path, timeout=10) as conn:
        return conn.execute(sql, args).fetchall()


async def test_reply_send_update_lang_and_the_update_warning(
    make_deployment: MakeDeployment, tmp_path: Path
) -> None:
    d = await make_deployment()
    sam = ReporterGpg(tmp_path / "sam", "Sam Finder", "sam@finder.example")
    # Eva's key stays hers: the bot never learns it, she only checks the bot's signatures.
    eva = ReporterGpg(tmp_path / "eva", "Eva Onderzoeker", "eva@researcher.example")
    bot: RunningBot | None = None
    try:
        config = load_config(d.write_config(), {})
        clock = ShiftedClock(START)
        bot = RunningBot(App(config, clock=clock, environ={}))
        await bot.ready()

        # Both reports through the pipe path, in-process, so they get the test's clock.
        for reporter in (sam, eva):
            reporter.import_key(bot_public_key(d))  # to check the bot's signatures
        inner = sam.inner_part(
            ENGLISH_BODY,
            subject="SQL injection in the permit form",
            attachments=[("sam.asc", "application/pgp-keys", sam.public_key().encode())],
        )
        db = await Database.open(config.storage.path)
        intake = make_intake(db, config, clock, Failpoints({}))
        await intake.ingest(sam.pgp_mime_encrypted(inner, [d.key_fingerprint]), source="pipe")
        await intake.ingest(
            report(subject="Lek in parkeervergunning", body=DUTCH_BODY), source="pipe"
        )
        await db.close()
        bot.app.worker.wake()
        root_e = await d.team.wait_for_message(
            d.room_id, lambda m: "New report" in m.body and "SQL injection" in m.body, timeout=60
        )
        root_d = await d.team.wait_for_message(
            d.room_id, lambda m: "New report" in m.body and "Lek in" in m.body, timeout=60
        )
        case_e = CASE_ID.search(root_e.body).group(0)  # type: ignore[union-attr]
        case_d = CASE_ID.search(root_d.body).group(0)  # type: ignore[union-attr]
        await d.team.wait_for_message(
            d.room_id, lambda m: "Imported the reporter's public key" in m.body, timeout=60
        )
        for root in (root_e, root_d):
            await command(d, root, "!ack", "acknowledged by")
            await command(d, root, "!assess medium", "assessed as medium")
        await wait_until_sent(d.db_path)
        assert len(d.smtp.messages) == 4
        # Receipt and assessment, each once per case: Sam's encrypted, Eva's signed only.
        for mail in d.smtp.messages:
            if mail.rcpt_tos == ["sam@finder.example"]:
                assert_signed(opened(sam, mail), d, encrypted=True)
            else:
                assert mail.rcpt_tos == ["eva@researcher.example"]
                assert_signed(opened(eva, mail), d, encrypted=False)

        # Case E: two previews; the first is superseded, the second is sent, once.
        first = await command(d, root_e, "!reply We reproduced it; thank you.", "Preview #1")
        assert "Protection: PGP-encrypted and signed" in first.body
        assert "Language: English (en)" in first.body and "To: sam@finder.example" in first.body
        second = await command(
            d,
            root_e,
            "!reply We reproduced it.\nThe fix is planned for next week; we keep you informed.",
            "Preview #2",
        )
        superseded = await command(d, root_e, "!send 1", "superseded by #2")
        assert "Nothing was sent" in superseded.body
        await command(d, root_e, "!send", "sent reply preview #2")
        await wait_until_sent(d.db_path)
        assert len(d.smtp.messages) == 5
        reply = d.smtp.messages[4]
        assert reply.rcpt_tos == ["sam@finder.example"]
        assert b"fix is planned" not in reply.raw, "encrypted on the wire"
        subject, body = preview_of(second)
        # The report came encrypted, so its subject travels only inside the encryption: the
        # reporter's client shows the previewed subject, relays see a fixed phrase.
        assert subject_of(reply) == f"[{case_e}] About your report"
        result = opened(sam, reply)
        assert assert_signed(result, d, encrypted=True) == body
        assert result.message is not None and str(result.message["Subject"]).strip() == subject
        assert "Dear Sam Finder,\n\nWe reproduced it.\nThe fix is planned" in body
        await d.team.wait_for_message(
            d.room_id,
            lambda m: "reply mail went to sam@finder.example (PGP-encrypted and signed)" in m.body,
        )
        await command(d, root_e, "!send", "preview #2 was already sent")

        # A preview older than an hour (its stored time moved back) is refused.
        await command(d, root_e, "!reply One more thing.", "Preview #3")
        # In a thread: the in-process bot shares this event loop and may hold the write lock.
        await asyncio.to_thread(
            db_write,
            d,
            "UPDATE reply_previews SET created_at = ? WHERE case_id = ? AND number = 3",
            (clock.now() - timedelta(minutes=61)).isoformat(),
            case_e,
        )
        await command(d, root_e, "!send", "preview #3 is older than an hour")

        # A progress update in the team's words, in the case's language: one English mail,
        # encrypted to Sam and signed.
        await command(d, root_e, "!update The patch is in review.", "a progress update")
        await wait_until_sent(d.db_path)
        assert len(d.smtp.messages) == 6
        news = d.smtp.messages[5]
        assert news.rcpt_tos == ["sam@finder.example"]
        assert subject_of(news) == f"[{case_e}] Progress on your report"
        assert b"patch is in review" not in news.raw, "encrypted on the wire"
        english = assert_signed(opened(sam, news), d, encrypted=True)
        assert english.startswith("Dear Sam Finder,\n\nAs promised, we are keeping you informed")
        assert "\nThe patch is in review.\n" in english
        assert "We are still working on fixing the problem." not in english

        # !lang nl on the English case, then the standard progress update: Dutch, encrypted.
        await command(d, root_e, "!lang nl", "from English (en) to Dutch (nl)")
        await command(d, root_e, "!update", "a progress update")
        await wait_until_sent(d.db_path)
        assert len(d.smtp.messages) == 7
        update = d.smtp.messages[6]
        assert subject_of(update).startswith(f"[{case_e}] Voortgang van uw melding")
        dutch = assert_signed(opened(sam, update), d, encrypted=True)
        assert dutch.startswith("Beste Sam Finder,")
        assert "We werken nog aan de oplossing" in dutch
        assert "uiterlijk zondag 31 januari 2027 opgelost" in dutch

        # Case D: Eva has no key; the preview says so and the mail is signed only, in Dutch.
        preview_d = await command(d, root_d, "!reply Wij hebben het kunnen nagaan.", "Preview #1")
        assert (
            "Protection: signed; not encrypted, no PGP key known for this address" in preview_d.body
        )
        assert "Language: Dutch (nl)" in preview_d.body
        await command(d, root_d, "!send 1", "sent reply preview #1")
        await wait_until_sent(d.db_path)
        assert len(d.smtp.messages) == 8
        signed = d.smtp.messages[7]
        assert signed.rcpt_tos == ["eva@researcher.example"]
        subject, body = preview_of(preview_d)
        assert subject_of(signed) == subject
        assert assert_signed(opened(eva, signed), d, encrypted=False) == body
        assert body.startswith("Beste Eva Onderzoeker,")

        history = db_rows(d, "SELECT kind FROM case_events WHERE case_id = ? ORDER BY id", case_e)
        # The refused !send commands left nothing in the audit log.
        assert [row[0] for row in history][-7:] == [
            "reply_previewed",
            "reply_previewed",
            "reply_sent",
            "reply_previewed",
            "update_sent",
            "language_changed",
            "update_sent",
        ]

        # Thirty days later (Wednesday 2 December, 10:30): each reporter has waited long
        # enough; each thread is warned once, also when the tick runs again and after a
        # restart.
        clock.set(START + timedelta(days=30, minutes=30))
        await bot.app.scheduler.tick_sla()
        await bot.app.scheduler.tick_sla()
        await wait_until_sent(d.db_path)
        assert await bot.stop() == 0
        bot = RunningBot(App(config, clock=clock, environ={}))
        await bot.ready()
        await bot.app.scheduler.tick_sla()
        clock.set(START + timedelta(days=31))
        await bot.app.scheduler.tick_sla()
        await wait_until_sent(d.db_path)
        for root in (root_e, root_d):
            await d.team.wait_for_message(
                d.room_id,
                lambda m, r=root: m.thread_root == r.event_id and "no update for" in m.body,
            )
        await wait_seen(d.db_path, d.team, d.room_id)
        for root, case in ((root_e, case_e), (root_d, case_d)):
            warnings = [m for m in in_thread(d.team, d.room_id, root) if "no update" in m.body]
            assert len(warnings) == 1, [w.body for w in warnings]
            assert f"📭 {case}: no update for the reporter — for {d.team.user_id}" in (
                warnings[0].body
            )
            assert warnings[0].content["m.mentions"] == {"user_ids": [d.team.user_id]}
        assert db_rows(d, "SELECT COUNT(*) FROM update_warnings") == [(2,)]
        assert len(d.smtp.messages) == 8, "a warning mails nobody"

        # `cvdbot digest --print`, as its own process (not blocking the bot's event loop).
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "digest",
            "--config",
            str(d.config_path),
            "--print",
            "--at",
            (START + timedelta(days=31)).isoformat(),
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0
        printed = out.decode()
        section = printed.split("Reporters without an update for too long")[1].split("\n\n")[0]
        assert "(30 days or more without mail from us): 2" in section
        assert f"{case_e} · assessed · medium" in section and f"{case_d} · assessed" in section
        assert d.team.undecryptable(d.room_id) == []
    finally:
        if bot is not None:
            await asyncio.wait_for(bot.stop(), 60)
        sam.close()
        eva.close()
