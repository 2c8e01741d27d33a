"""The intake end to end without the servers: real gpg, a real SQLite file, and what it
queues in the outbox (the thread posts a Matrix client would receive)."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest
import pytest_asyncio

from bot.app import make_calendar
from bot.config import Config, load_config
from bot.failpoints import Failpoints
from bot.mailin.attachments import AttachmentSource, AttachmentUnavailable
from bot.mailin.intake import IntakeOutcome, MailIntake
from bot.mailin.intake_posts import AUTOMATIC_MAIL, FORWARDED_BY, QUOTED_HIDDEN, RELATED_TO
from bot.mailin.report_check import MISSING_LABELS
from bot.mailin.reporter_keys import KEY_IMPORTED, KEY_NOT_IMPORTED
from bot.matrix.posts import message_content
from bot.outbox.payloads import MediaPost, from_json
from bot.pgp.gpg import MIN_S2K_COUNT, Pgp
from commands.registry import split_command
from storage.db import Database
from tests.harness.reporter_pgp import ReporterGpg
from tests.integration.sample_mails import ENGLISH_BODY

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 2, 3, 9, 0, tzinfo=UTC)
BOT_ADDRESS = "security@haaksbergen.example"
BOT_PASS = "bot-passphrase"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


class FixedClock:
    def now(self) -> datetime:
        return NOW


@dataclass(frozen=True)
class Keys:
    bot_home: Path
    bot_fpr: str
    sam: ReporterGpg
    stranger: ReporterGpg


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keys]:
    base = tmp_path_factory.mktemp("intake-keys")
    bot = Pgp(base / "bot", None, None, s2k_count=MIN_S2K_COUNT)
    fpr = bot.generate_key("CVD team", BOT_ADDRESS, BOT_PASS)
    bot.close()
    sam = ReporterGpg(base / "sam", "Sam Finder", "sam@finder.example")
    stranger = ReporterGpg(base / "mallory", "Mallory", "mallory@elsewhere.example")
    bot_public = Pgp(base / "bot", None, None).export_public_key(fpr)
    sam.import_key(bot_public)
    sam.import_key(stranger.public_key())  # to encrypt to a key the bot does not hold
    stranger.import_key(bot_public)
    yield Keys(base / "bot", fpr, sam, stranger)
    for person in (sam, stranger):
        person.close()
    subprocess.run(["gpgconf", "--homedir", str(base / "bot"), "--kill", "gpg-agent"], check=False)


@dataclass
class Env:
    intake: MailIntake
    db: Database
    pgp: Pgp
    config: Config
    path: Path

    def rows(self, sql: str, *args: object) -> list[tuple[object, ...]]:
        with sqlite3.connect(self.path) as conn:
            return conn.execute(sql, args).fetchall()

    def posts(self, case_id: str) -> list[dict[str, object]]:
        rows = self.rows(
            "SELECT payload FROM outbox WHERE case_id = ? AND channel = 'matrix' ORDER BY id",
            case_id,
        )
        return [json.loads(str(row[0])) for row in rows]

    def thread_text(self, case_id: str) -> str:
        return "\n".join(str(post.get("body", "")) for post in self.posts(case_id))


@pytest_asyncio.fixture
async def env(tmp_path: Path, keys: Keys) -> AsyncIterator[Env]:
    home = tmp_path / "gnupg"
    shutil.copytree(keys.bot_home, home, ignore=shutil.ignore_patterns("S.*", "*.lock"))
    config = load_config(
        ROOT / "config.sample.yaml",
        {
            "CVDBOT_PGP__GNUPG_HOME": str(home),
            "CVDBOT_PGP__KEY_FINGERPRINT": keys.bot_fpr,
            "CVDBOT_PGP__PASSPHRASE": BOT_PASS,
            "CVDBOT_STORAGE__PATH": str(tmp_path / "db.sqlite3"),
            "CVDBOT_SMTP__FROM_ADDRESS": BOT_ADDRESS,
            "CVDBOT_LIMITS__MAX_ATTACHMENT_BYTES_IN_THREAD": "4096",
            "CVDBOT_LIMITS__MAX_BODY_CHARS_IN_THREAD": "5000",
        },
    )
    db = await Database.open(config.storage.path)
    pgp = Pgp(home, keys.bot_fpr, BOT_PASS)
    intake = MailIntake(db, config, make_calendar(config), pgp, FixedClock(), Failpoints({}))
    yield Env(intake, db, pgp, config, config.storage.path)
    await db.close()
    pgp.close()


def mail(
    subject: str,
    body: str,
    *,
    sender: str = "Sam Finder <sam@finder.example>",
    headers: dict[str, str] | None = None,
    attachments: list[tuple[str, str, bytes]] | None = None,
) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = BOT_ADDRESS
    message["Subject"] = subject
    message["Date"] = "Tue, 03 Feb 2026 09:00:00 +0100"
    message["Message-ID"] = f"<{abs(hash((subject, body, sender)))}@finder.example>"
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(body)
    for filename, content_type, data in attachments or []:
        maintype, subtype = content_type.split("/", 1)
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return bytes(message)


async def test_plain_report_opens_a_case_with_a_complete_check(env: Env) -> None:
    result = await env.intake.ingest(mail("XSS in parking search", ENGLISH_BODY), source="pipe")
    assert result.outcome is IntakeOutcome.NEW_CASE and result.case_id
    posts = env.posts(result.case_id)
    assert posts[0]["kind"] == "root"
    assert "Sam Finder <sam@finder.example>" in str(posts[0]["body"])
    text = env.thread_text(result.case_id)
    assert "Report check: complete" in text and "Missing:" not in text
    hosts = env.rows("SELECT value FROM case_targets WHERE kind = 'host'")
    assert hosts == [("parkeren.haaksbergen.example",)]


async def test_anonymous_report_without_target_says_what_is_missing(env: Env) -> None:
    raw = mail("Lek", "Jullie website lekt gegevens van inwoners, dat is heel ernstig.")
    raw = b"\n".join(line for line in raw.split(b"\n") if not line.startswith(b"From:"))
    result = await env.intake.ingest(raw, source="pipe")
    assert result.case_id is not None
    text = env.thread_text(result.case_id)
    assert "Reporter: anonymous" in text
    assert f"Missing: {MISSING_LABELS['contact']}; {MISSING_LABELS['reproduction']}." in text
    assert "cannot be asked" in text


async def test_same_host_links_open_cases_both_ways(env: Env) -> None:
    first = await env.intake.ingest(mail("XSS one", ENGLISH_BODY), source="pipe")
    other = mail("Different", ENGLISH_BODY.replace("Sam", "Kim"), sender="kim@else.example")
    second = await env.intake.ingest(other, source="pipe")
    assert first.case_id and second.case_id
    assert f"{RELATED_TO} {first.case_id}" in env.thread_text(second.case_id)
    assert f"A new report, {second.case_id}, is possibly related" in env.thread_text(first.case_id)
    unrelated = mail("Other site", "The page https://loket.haaksbergen.example/x " + "leaks " * 9)
    third = await env.intake.ingest(unrelated, source="pipe")
    assert third.case_id and RELATED_TO not in env.thread_text(third.case_id)


async def test_outlook_dutch_forward_opens_the_case_for_the_original_reporter(env: Env) -> None:
    body = (
        "Ter info, kwam binnen op het algemene adres.\n\n"
        "________________________________\n"
        "Van: Eva Onderzoeker <eva@researcher.example>\n"
        "Verzonden: maandag 2 februari 2026 10:12\n"
        "Aan: Info <info@haaksbergen.example>\n"
        "Onderwerp: Lek in parkeervergunning\n\n"
        "Beste mensen, het zoekveld op https://parkeren.haaksbergen.example/zoeken geeft de "
        "invoer ongefilterd terug, waardoor scripts uitgevoerd worden.\n"
    )
    raw = mail("Doorst: Lek in parkeervergunning", body, sender="jan@haaksbergen.example")
    result = await env.intake.ingest(raw, source="pipe")
    assert result.case_id is not None
    root = env.posts(result.case_id)[0]
    assert "Reporter: Eva Onderzoeker <eva@researcher.example>" in str(root["body"])
    assert f"{FORWARDED_BY} jan@haaksbergen.example" in str(root["body"])
    assert "New report" in str(root["body"]) and "Lek in parkeervergunning" in str(root["body"])
    assert env.rows("SELECT reporter_address, language FROM cases") == [
        ("eva@researcher.example", "nl")
    ]
    assert env.rows("SELECT forwarded_by, forward_style FROM case_intake") == [
        ("jan@haaksbergen.example", "Outlook")
    ]
    assert "Ter info" in env.thread_text(result.case_id)


async def test_follow_up_shows_only_the_new_text_and_can_complete_the_check(env: Env) -> None:
    first = await env.intake.ingest(
        mail("Admin panel", "Your admin panel is open to everyone, I could see all users."),
        source="pipe",
    )
    assert first.case_id is not None
    assert "Missing: how to reproduce" in env.thread_text(first.case_id)
    reply = mail(
        f"Re: [{first.case_id}] More information needed",
        "It is https://beheer.haaksbergen.example/admin\n\n"
        "On Tue, 3 Feb 2026 at 10:12, CVD team <security@haaksbergen.example> wrote:\n"
        "> Could you describe how we can reproduce the problem?\n",
    )
    result = await env.intake.ingest(reply, source="pipe")
    assert result.outcome is IntakeOutcome.FOLLOW_UP and result.case_id == first.case_id
    follow = env.posts(first.case_id)[
        -1 if "With this" not in env.thread_text(first.case_id) else -2
    ]
    assert "beheer.haaksbergen.example/admin" in str(follow["body"])
    assert "Could you describe" not in str(follow["body"])
    assert QUOTED_HIDDEN in str(follow["body"])
    assert "With this follow-up: ✅ Report check: complete" in env.thread_text(first.case_id)
    stored = env.rows("SELECT raw FROM mails WHERE id = ?", result.mail_id)[0][0]
    assert b"Could you describe" in bytes(stored)  # type: ignore[arg-type]


async def test_auto_reply_goes_quietly_into_the_thread_and_never_mails(env: Env) -> None:
    first = await env.intake.ingest(mail("XSS", ENGLISH_BODY), source="pipe")
    assert first.case_id is not None
    original = env.rows("SELECT message_id FROM mails WHERE id = ?", first.mail_id)[0][0]
    auto = mail(
        "Out of office: XSS",
        "I am away until Monday.",
        headers={"Auto-Submitted": "auto-replied", "In-Reply-To": str(original)},
    )
    result = await env.intake.ingest(auto, source="imap")
    assert result.outcome is IntakeOutcome.AUTOMATIC and result.case_id == first.case_id
    assert AUTOMATIC_MAIL in env.thread_text(first.case_id)
    lonely = mail("Automatic reply", "Away.", headers={"Auto-Submitted": "auto-replied"})
    unmatched = await env.intake.ingest(lonely, source="imap")
    assert unmatched.outcome is IntakeOutcome.UNMATCHED_AUTOMATIC and unmatched.case_id is None
    assert env.rows("SELECT COUNT(*) FROM outbox WHERE channel = 'mail'") == [(0,)]
    assert env.rows("SELECT COUNT(*) FROM cases") == [(1,)]


async def test_bounce_of_our_mail_finds_its_case(env: Env) -> None:
    first = await env.intake.ingest(mail("XSS", ENGLISH_BODY), source="pipe")
    assert first.case_id is not None
    with sqlite3.connect(env.path) as conn:
        conn.execute(
            "INSERT INTO mails (direction, message_id, case_id, source, raw, subject,"
            " stored_at) VALUES ('out', '<ack-1@haaksbergen.example>', ?, 'outbox', x'00',"
            " 'ack', ?)",
            (first.case_id, NOW.isoformat()),
        )
    dsn = (
        b"From: MAILER-DAEMON@mx.finder.example\r\nTo: security@haaksbergen.example\r\n"
        b"Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <bounce-1@mx>\r\n"
        b"Date: Tue, 03 Feb 2026 09:05:00 +0100\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        b"--B\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        b"--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        b"Reporting-MTA: dns; mx.finder.example\r\n\r\n"
        b"Final-Recipient: rfc822; sam@finder.example\r\nAction: failed\r\n"
        b"Status: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 user unknown\r\n\r\n"
        b"--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        b"From: security@haaksbergen.example\r\nMessage-ID: <ack-1@haaksbergen.example>\r\n"
        b"Subject: Receipt confirmation\r\n\r\n--B--\r\n"
    )
    result = await env.intake.ingest(dsn, source="imap")
    assert result.outcome is IntakeOutcome.AUTOMATIC and result.case_id == first.case_id
    text = env.thread_text(first.case_id)
    assert "delivery to sam@finder.example: failed (5.1.1, smtp; 550 5.1.1 user unknown)" in text


async def test_the_bots_own_mail_never_opens_a_case(env: Env) -> None:
    own = mail(
        "[CVD-2026-0099] Receipt confirmation",
        "Thank you",
        sender=BOT_ADDRESS,
        headers={"X-CVDBot": "ack"},
    )
    result = await env.intake.ingest(own, source="imap")
    assert result.outcome is IntakeOutcome.OWN_MAIL and result.case_id is None
    with sqlite3.connect(env.path) as conn:
        conn.execute(
            "INSERT INTO mails (direction, message_id, source, raw, subject, stored_at)"
            " VALUES ('out', '<mine@haaksbergen.example>', 'outbox', x'00', 's', ?)",
            (NOW.isoformat(),),
        )
    looped = mail("A report?", ENGLISH_BODY).replace(
        b"Message-ID: <", b"Message-ID: <mine@haaksbergen.example>\nX-Old-Id: <", 1
    )
    again = await env.intake.ingest(looped, source="imap")
    assert again.outcome is IntakeOutcome.OWN_MAIL
    assert env.rows("SELECT COUNT(*) FROM cases") == [(0,)]


async def test_hostile_text_cannot_mention_inject_or_command(env: Env) -> None:
    body = (
        "!fixed all done\n@room look here, and @alice:example.org too\n"
        '<a href="javascript:alert(1)">click</a> <img src=x onerror=alert(1)>\n' + "x" * 9000
    )
    attachment = [("!fixed @room.txt", "text/plain", b"x")]
    raw = mail("@room <b>bold</b>", body, attachments=attachment)
    result = await env.intake.ingest(raw, source="pipe")
    assert result.case_id is not None
    for post in env.posts(result.case_id):
        if post["kind"] == "media":
            assert split_command(str(post["filename"])) is None
            assert "@room" not in str(post["filename"])
            continue
        assert post.get("mentions") == []
        content = message_content(
            str(post["body"]),
            str(post["html"]),
            thread_root="$root",
            reply_to=None,
            last_in_thread=None,
            mentions=[],
        )
        assert content["m.mentions"] == {}
        assert split_command(str(post["body"])) is None
        assert "@room" not in str(post["body"]) and "@alice:example.org" not in str(post["body"])
        assert "<a href" not in str(post["html"]) and "<img" not in str(post["html"])
        assert "<b>bold" not in str(post["html"])
    excerpt = env.posts(result.case_id)[1]
    assert "&lt;a href=&quot;javascript:alert(1)&quot;&gt;" in str(excerpt["html"])
    assert "more characters; the full mail is stored" in str(excerpt["body"])


async def test_huge_body_of_markup_stays_within_one_matrix_event(env: Env) -> None:
    body = "<script>" * 4000 + "\n" + "ü" * 4000
    result = await env.intake.ingest(mail("Big", body), source="pipe")
    assert result.case_id is not None
    excerpt = env.posts(result.case_id)[1]
    size = len(json.dumps(excerpt["body"])) + len(json.dumps(excerpt["html"]))
    assert size < 40_000


async def test_attachments_are_listed_and_small_ones_queued_as_media(env: Env) -> None:
    big = bytes(5000)
    raw = mail(
        "Screenshot",
        ENGLISH_BODY,
        attachments=[("shot.png", "image/png", PNG), ("dump.bin", "application/octet-stream", big)],
    )
    result = await env.intake.ingest(raw, source="pipe")
    assert result.case_id is not None
    posts = env.posts(result.case_id)
    listing = next(p for p in posts if str(p.get("body", "")).startswith("📎 2 attachments"))
    assert "shot.png (image/png" in str(listing["body"]) and "posted below" in str(listing["body"])
    assert "larger than the thread's limit of 4096 bytes" in str(listing["body"])
    media = [p for p in posts if p["kind"] == "media"]
    assert len(media) == 1 and media[0]["filename"] == "shot.png"
    source = AttachmentSource(env.db, env.pgp)
    assert await source.load(as_media(media[0])) == PNG
    with pytest.raises(AttachmentUnavailable, match="checksum"):
        await source.load(as_media({**media[0], "sha256": "0" * 64}))
    with pytest.raises(AttachmentUnavailable, match="no attachment 9"):
        await source.load(as_media({**media[0], "index": 8}))


def as_media(stored: dict[str, object]) -> MediaPost:
    payload = from_json(stored)
    assert isinstance(payload, MediaPost)
    return payload


async def test_encrypted_signed_report_with_attachment_and_key(env: Env, keys: Keys) -> None:
    sam = keys.sam
    inner = sam.inner_part(
        ENGLISH_BODY,
        subject="Secret: SQL injection",
        attachments=[
            ("poc.png", "image/png", PNG),
            ("sam.asc", "application/pgp-keys", sam.public_key().encode()),
        ],
    )
    raw = sam.pgp_mime_encrypted(inner, [keys.bot_fpr], to=BOT_ADDRESS)
    result = await env.intake.ingest(raw, source="imap")
    assert result.case_id is not None
    text = env.thread_text(result.case_id)
    assert "New report" in text and "Secret: SQL injection" in text
    assert "decrypted with the bot's key" in text
    # The key arrived with the mail, so the signature is checked against it right away.
    assert (
        "good signature by a key that came with this mail (not yet trusted): "
        "Sam Finder <sam@finder.example>"
    ) in text
    assert f"{KEY_IMPORTED} for sam@finder.example" in text
    assert env.pgp.key_for_address("sam@finder.example") == sam.fingerprint
    assert env.rows("SELECT address, fingerprint FROM reporter_keys") == [
        ("sam@finder.example", sam.fingerprint)
    ]
    media = [p for p in env.posts(result.case_id) if p["kind"] == "media"]
    assert [m["filename"] for m in media] == ["poc.png"] and media[0]["layer"] == "decrypted"
    assert await AttachmentSource(env.db, env.pgp).load(as_media(media[0])) == PNG


async def test_a_key_for_another_address_is_not_imported(env: Env, keys: Keys) -> None:
    raw = mail(
        "My key",
        ENGLISH_BODY + "\n" + keys.stranger.public_key(),
        sender="Sam Finder <sam@finder.example>",
    )
    result = await env.intake.ingest(raw, source="pipe")
    assert result.case_id is not None
    text = env.thread_text(result.case_id)
    assert "mallory@elsewhere.example" in text and KEY_NOT_IMPORTED in text
    assert env.pgp.key_for_address("mallory@elsewhere.example") is None
    assert env.rows("SELECT COUNT(*) FROM reporter_keys") == [(0,)]


async def test_encrypted_to_a_wrong_key_still_opens_the_case(env: Env, keys: Keys) -> None:
    inner = keys.sam.inner_part(ENGLISH_BODY, subject="Hidden")
    raw = keys.sam.pgp_mime_encrypted(inner, [keys.stranger.fingerprint], to=BOT_ADDRESS)
    result = await env.intake.ingest(raw, source="imap")
    assert result.outcome is IntakeOutcome.NEW_CASE and result.case_id is not None
    text = env.thread_text(result.case_id)
    assert "could not be decrypted" in text and "raw message is stored" in text
    assert "Report check: not done" in text
    stored = env.rows("SELECT raw FROM mails WHERE id = ?", result.mail_id)[0][0]
    assert bytes(stored) == raw  # type: ignore[arg-type]


async def test_signed_only_and_inline_reports(env: Env, keys: Keys) -> None:
    sam = keys.sam
    env.pgp.import_keys(sam.public_key())
    signed = sam.pgp_mime_signed(sam.inner_part(ENGLISH_BODY, subject="Signed"), subject="Signed")
    result = await env.intake.ingest(signed, source="imap")
    assert result.case_id is not None
    assert "good signature" in env.thread_text(result.case_id)
    tampered = signed.replace(b"reflected", b"Reflected")
    tampered = tampered.replace(b"Message-ID: <", b"Message-ID: <t", 1)
    bad = await env.intake.ingest(tampered, source="imap")
    assert bad.case_id is not None and "bad signature" in env.thread_text(bad.case_id)
    inline = sam.inline(ENGLISH_BODY, subject="Inline", recipients=[keys.bot_fpr])
    result = await env.intake.ingest(inline, source="imap")
    assert result.case_id is not None
    text = env.thread_text(result.case_id)
    assert "inline PGP" in text and "reflected cross-site scripting" in text
    unknown = keys.stranger.inline("A clearsigned report about nothing.", subject="Clear")
    result = await env.intake.ingest(unknown, source="imap")
    assert result.case_id is not None and "unknown key" in env.thread_text(result.case_id)


async def test_a_clearsigned_block_in_the_text_and_a_log_txt_with_a_block(
    env: Env, keys: Keys
) -> None:
    """Issue 10 item 8: the signed block is shown in place with the text before and after
    it; a text/plain attachment log.txt holding an encrypted block stays an attachment,
    listed and posted as the reporter sent it, and its block is not opened into the report."""
    sam = keys.sam
    env.pgp.import_keys(sam.public_key())
    signed = sam.gpg("--clearsign", "--local-user", sam.fingerprint, data=b"Signed finding.\n")
    log_text = "Scan log:\n" + sam.gpg(
        "--armor", "--trust-model", "always", "--recipient", keys.bot_fpr, "--encrypt",
        data=b"Attached secret log.\n",
    ).decode("ascii")  # fmt: skip
    text = (
        "Before the signature: https://portal.haaksbergen.example/login is injectable.\n"
        + signed.decode("utf-8")
        + "After the signature.\n"
    )
    raw = mail("Inline signed", text, attachments=[("log.txt", "text/plain", log_text.encode())])
    result = await env.intake.ingest(raw, source="pipe")
    assert result.case_id is not None
    thread = env.thread_text(result.case_id)
    assert (
        "Before the signature: https://portal.haaksbergen.example/login is injectable.\n"
        "Signed finding.\nAfter the signature."
    ) in thread
    assert "good signature by a key" in thread and "-----BEGIN PGP SIGNATURE" not in thread
    assert "Attached secret log." not in thread
    posts = env.posts(result.case_id)
    listing = next(p for p in posts if str(p.get("body", "")).startswith("📎 1 attachment"))
    assert "log.txt (text/plain" in str(listing["body"])
    [media] = [p for p in posts if p["kind"] == "media"]
    assert media["filename"] == "log.txt"
    loaded = await AttachmentSource(env.db, env.pgp).load(as_media(media))
    assert loaded.replace(b"\r\n", b"\n") == log_text.encode()


async def test_protected_subject_matches_the_case(env: Env, keys: Keys) -> None:
    first = await env.intake.ingest(mail("XSS", ENGLISH_BODY), source="pipe")
    assert first.case_id is not None
    sam = keys.sam
    inner = sam.inner_part(
        "More details: it also works on /api.", subject=f"Re: [{first.case_id}] XSS"
    )
    raw = sam.pgp_mime_encrypted(inner, [keys.bot_fpr], to=BOT_ADDRESS, outer_subject="...")
    result = await env.intake.ingest(raw, source="imap")
    assert result.outcome is IntakeOutcome.FOLLOW_UP and result.case_id == first.case_id
    assert "it also works on /api" in env.thread_text(first.case_id)


async def test_report_that_is_replayed_is_stored_once(env: Env) -> None:
    raw = mail("Once", ENGLISH_BODY)
    first = await env.intake.ingest(raw, source="imap")
    again = await env.intake.ingest(raw, source="pipe")
    assert again.outcome is IntakeOutcome.DUPLICATE and again.case_id == first.case_id
    assert env.rows("SELECT COUNT(*) FROM mails") == [(1,)]


def test_related_lines_show_the_most_recent_and_count_the_rest() -> None:
    from bot.mailin.intake_posts import MAX_RELATED_LINES, related_lines
    from storage.case_intake import RelatedCase

    related = [RelatedCase(f"CVD-2026-{n:04d}", ("portal.example.nl",)) for n in range(1, 26)]
    lines = related_lines(related)
    assert len(lines) == MAX_RELATED_LINES + 1
    assert "CVD-2026-0025" in lines[-2] and "CVD-2026-0015" not in "".join(lines)
    assert lines[-1] == "🔗 … and 15 older open cases name the same hosts."
