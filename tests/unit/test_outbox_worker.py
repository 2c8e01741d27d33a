"""The outbox worker and its mail channel on a real database and the real gpg: a reporter
mail is queued unsealed (no gpg in the command's transaction), sealed once before its first
send, and every attempt sends the stored bytes; an unreadable payload is failed and logged."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

import bot.outbox.mail_channel as mail_channel
from bot.config import Config
from bot.failpoints import Failpoints
from bot.mailout.compose import ComposedMail
from bot.mailout.reporter import ReporterMailer, SmtpDeliveryError
from bot.mailout.sealing import Sealed, outer_subject
from bot.outbox.mail_channel import MailHandler
from bot.outbox.payloads import Mail, Payload, ThreadPost, decode, encode
from bot.outbox.worker import OutboxWorker
from bot.pgp.gpg import MIN_S2K_COUNT, Pgp, PgpError
from bot.policy.lifecycle import Case, CaseState
from storage import case_intake, cases, outbox
from storage.db import Database
from storage.outbox import OutboxItem
from tests.harness.reporter_pgp import ReporterGpg

BOT_ADDRESS = "security@haaksbergen.example"
BOT_PASS = "bot-passphrase"
WITH_KEY = "sam@finder.example"
WITHOUT_KEY = "nokey@finder.example"
NOW = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
ACK_LABEL = "receipt confirmation"


@dataclass
class Keys:
    home: Path
    fingerprint: str
    sam: ReporterGpg


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keys]:
    base = tmp_path_factory.mktemp("outbox-keys")
    pgp = Pgp(base / "bot", None, None, s2k_count=MIN_S2K_COUNT)
    fingerprint = pgp.generate_key("CVD team", BOT_ADDRESS, BOT_PASS)
    sam = ReporterGpg(base / "sam", "Sam Finder", WITH_KEY)
    pgp.import_keys(sam.public_key())
    sam.import_key(pgp.export_public_key(fingerprint))
    pgp.close()
    yield Keys(base / "bot", fingerprint, sam)
    sam.close()
    Pgp(base / "bot", None, None).close()  # the agent the bot's home started


def make_config(tmp_path: Path, keys: Keys) -> Config:
    data: dict[str, Any] = {
        "matrix": {
            "homeserver": "https://matrix.example.org",
            "user_id": "@cvdbot:example.org",
            "password": "x",
            "store_path": "store",
            "case_room": "!cases:example.org",
            "team": ["@alice:example.org"],
            "managers": ["@boss:example.org"],
        },
        "imap": {"host": "localhost", "port": 143, "security": "none", "username": "u"},
        "smtp": {"host": "localhost", "port": 25, "security": "none", "from_address": BOT_ADDRESS},
        "pgp": {
            "gnupg_home": str(keys.home),
            "key_fingerprint": keys.fingerprint,
            "passphrase": BOT_PASS,
        },
        "storage": {"path": "db.sqlite3"},
    }
    data["imap"]["password"] = "p"
    return Config.model_validate(data, context={"base_dir": tmp_path})


@dataclass
class MovableClock:
    moment: datetime = NOW

    def now(self) -> datetime:
        return self.moment


@dataclass
class FakeSmtp:
    """Records what would have gone out; fails while `failures` has entries."""

    sent: list[tuple[str, str, bytes]] = field(default_factory=list)
    attempts: list[bytes] = field(default_factory=list)
    failures: list[SmtpDeliveryError] = field(default_factory=list)

    async def deliver(self, sender: str, recipient: str, raw: bytes) -> None:
        self.attempts.append(raw)
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append((sender, recipient, raw))


@dataclass
class Env:
    db: Database
    pgp: Pgp
    config: Config
    clock: MovableClock
    smtp: FakeSmtp
    worker: OutboxWorker

    async def add_case(self, reporter: str | None) -> Case:
        async with self.db.transaction() as conn:
            case_id, seq = await cases.allocate_case_id(conn, 2026)
            case = Case(
                id=case_id,
                state=CaseState.ACKNOWLEDGED,
                subject="XSS in the parking permit search",
                reporter_address=reporter,
                reporter_name=None,
                language="en",
                received_at=NOW - timedelta(days=1),
                acknowledge_due=NOW + timedelta(days=1),
                assess_due=NOW + timedelta(days=5),
                fix_due=NOW + timedelta(days=90),
                thread_root_event_id="$root",
            )
            await cases.insert_case(conn, case, 2026, seq, NOW.isoformat())
        return case

    async def came_encrypted(self, case: Case) -> None:
        """Record, as intake does, that the case's report was PGP-encrypted."""
        async with self.db.transaction() as conn:
            await case_intake.record_case_intake(
                conn,
                case_intake.CaseIntake(
                    case.id, None, None, "decrypted", None, None, True, True, True
                ),
            )

    async def queue_ack(self, case: Case, event_id: str = "$ack") -> str:
        async with self.db.transaction() as conn:
            queued = await ReporterMailer(self.config).enqueue(
                conn, case, "ack", idem_key=f"mail:{event_id}", now=self.clock.now()
            )
        return queued.note

    async def items(self, channel: str) -> list[tuple[OutboxItem, str]]:
        """Every item of a channel, with its state, in queue order."""
        async with self.db.transaction() as conn:
            async with conn.execute(
                "SELECT id, state FROM outbox WHERE channel = ? ORDER BY id", (channel,)
            ) as cur:
                rows = list(await cur.fetchall())
            found = [(await outbox.get(conn, int(row[0])), str(row[1])) for row in rows]
        return [(item, state) for item, state in found if item is not None]

    async def mail(self) -> tuple[Mail, str]:
        ((item, state),) = await self.items("mail")
        payload = decode(item.payload)
        assert isinstance(payload, Mail)
        return payload, state

    async def thread(self) -> list[str]:
        bodies = []
        for item, _state in await self.items("matrix"):
            post = decode(item.payload)
            assert isinstance(post, ThreadPost)
            bodies.append(post.body)
        return bodies

    async def stored_mail(self, message_id: str) -> bytes:
        async with self.db.transaction() as conn:
            async with conn.execute(
                "SELECT raw FROM mails WHERE direction = 'out' AND message_id = ?", (message_id,)
            ) as cur:
                row = await cur.fetchone()
        assert row is not None
        return bytes(row[0])


@pytest_asyncio.fixture
async def env(tmp_path: Path, keys: Keys) -> AsyncIterator[Env]:
    config = make_config(tmp_path, keys)
    db = await Database.open(tmp_path / "db.sqlite3")
    pgp = Pgp(keys.home, keys.fingerprint, BOT_PASS)
    clock = MovableClock()
    smtp = FakeSmtp()
    handler = MailHandler(smtp, db, pgp)  # type: ignore[arg-type]
    worker = OutboxWorker(db, clock, Failpoints({}), {"mail": handler})
    yield Env(db, pgp, config, clock, smtp, worker)
    await db.close()


def parse(raw: bytes) -> EmailMessage:
    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


async def test_mail_is_queued_unsealed_sealed_once_and_resent_unchanged(env: Env) -> None:
    case = await env.add_case(WITHOUT_KEY)
    note = await env.queue_ack(case)
    assert note == f"The {ACK_LABEL} mail to the reporter is queued."

    # Queued inside the command's transaction: composed, not yet signed.
    mail, state = await env.mail()
    assert state == "pending" and mail.sealed is None and mail.composed is not None
    composed = mail.composed.to_message()
    assert composed.get_content_type() == "text/plain"
    assert composed["Subject"].startswith(f"[{case.id}] ")
    assert await env.stored_mail(mail.message_id) == composed.as_bytes(policy=policy.SMTP)

    # The first attempt seals and stores before SMTP refuses it for now.
    env.smtp.failures.append(SmtpDeliveryError("SMTP 451: try later", retryable=True))
    assert await env.worker.drain("mail") == 0
    sealed_mail, state = await env.mail()
    assert state == "pending" and sealed_mail.composed is None and sealed_mail.sealed is not None
    sealed = sealed_mail.sealed
    assert sealed.protection == "signed; not encrypted, no PGP key known for this address"
    assert env.smtp.attempts == [sealed.raw]
    assert await env.stored_mail(mail.message_id) == sealed.raw
    signed = parse(sealed.raw)
    assert signed.get_content_type() == "multipart/signed"
    assert signed["Message-ID"] == mail.message_id
    # Folded after its first words, never right after "Subject:" (issue 10: some readers
    # showed a leading space), so it reads back exactly.
    assert signed["Subject"] == composed["Subject"]
    assert b"Subject:\r\n" not in sealed.raw
    assert env.pgp.decrypt_raw(sealed.raw).signature is not None

    # The retry sends exactly the stored bytes: same signature, same Message-ID.
    env.clock.moment += timedelta(minutes=5)
    assert await env.worker.drain("mail") == 1
    assert env.smtp.attempts == [sealed.raw, sealed.raw]
    assert env.smtp.sent == [(BOT_ADDRESS, WITHOUT_KEY, sealed.raw)]
    assert (await env.mail())[1] == "sent"
    thread = await env.thread()
    assert thread[0].startswith(f"⏳ The {ACK_LABEL} mail could not be sent yet (SMTP 451")
    assert thread[1] == (
        f"✉️ The {ACK_LABEL} mail went to {WITHOUT_KEY} "
        "(signed; not encrypted, no PGP key known for this address)."
    )
    env.clock.moment += timedelta(minutes=5)
    assert await env.worker.drain("mail") == 0, "sent exactly once"


async def test_mail_to_a_reporter_whose_key_is_known_is_encrypted(env: Env, keys: Keys) -> None:
    case = await env.add_case(WITH_KEY)
    await env.queue_ack(case)
    assert await env.worker.drain("mail") == 1
    mail, state = await env.mail()
    assert state == "sent" and mail.sealed is not None
    assert mail.sealed.protection == "PGP-encrypted and signed"
    ((_sender, recipient, raw),) = env.smtp.sent
    assert recipient == WITH_KEY and raw == mail.sealed.raw
    encrypted = parse(raw)
    assert encrypted.get_content_type() == "multipart/encrypted"
    ciphertext = encrypted.get_payload()[1].get_payload(decode=True)  # type: ignore[index]
    assert b"Content-Type: text/plain" in keys.sam.decrypt(ciphertext)
    assert await env.thread() == [
        f"✉️ The {ACK_LABEL} mail went to {WITH_KEY} (PGP-encrypted and signed)."
    ]


async def test_an_anonymous_report_gets_no_mail(env: Env) -> None:
    case = await env.add_case(None)
    note = await env.queue_ack(case)
    assert note == f"No {ACK_LABEL} mail: the reporter left no address (anonymous report)."
    assert await env.items("mail") == []


async def test_the_first_stored_seal_wins_and_is_never_redone(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[bytes] = []

    async def fake_seal(pgp: Pgp, message: EmailMessage, key: str | None, **_: object) -> Sealed:
        made.append(f"sealed-{len(made) + 1}".encode())
        return Sealed(made[-1], "signed")

    monkeypatch.setattr(mail_channel, "seal", fake_seal)
    case = await env.add_case(WITHOUT_KEY)
    await env.queue_ack(case)
    ((stale, _state),) = await env.items("mail")
    handler = MailHandler(env.smtp, env.db, env.pgp)  # type: ignore[arg-type]

    # Two sealers start from the same unsealed row (or one that crashed before storing and
    # one after): only the first stored bytes count, and both send those.
    first = await handler.prepare(stale, decode(stale.payload))
    second = await handler.prepare(stale, decode(stale.payload))
    assert made == [b"sealed-1", b"sealed-2"]
    for prepared in (first, second):
        assert isinstance(prepared, Mail) and prepared.sealed == Sealed(b"sealed-1", "signed")
    mail, _state = await env.mail()
    assert mail.sealed == Sealed(b"sealed-1", "signed")
    assert await env.stored_mail(mail.message_id) == b"sealed-1"

    # After a crash that followed the store, the row as read again is not sealed again.
    ((fresh, _state),) = await env.items("mail")
    again = await handler.prepare(fresh, decode(fresh.payload))
    assert made == [b"sealed-1", b"sealed-2"]
    assert isinstance(again, Mail) and again.sealed == Sealed(b"sealed-1", "signed")
    assert await env.worker.drain("mail") == 1
    assert env.smtp.sent == [(BOT_ADDRESS, WITHOUT_KEY, b"sealed-1")]


async def test_a_gpg_failure_keeps_the_mail_queued_unsealed(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken_seal(pgp: Pgp, message: EmailMessage, key: str | None, **_: object) -> Sealed:
        raise PgpError("signing failed (agent not responding)")

    monkeypatch.setattr(mail_channel, "seal", broken_seal)
    case = await env.add_case(WITHOUT_KEY)
    await env.queue_ack(case)
    assert await env.worker.drain("mail") == 0
    mail, state = await env.mail()
    assert state == "pending" and mail.sealed is None
    assert env.smtp.attempts == []
    assert (await env.thread())[0].startswith(
        f"⏳ The {ACK_LABEL} mail could not be sent yet (the mail could not be signed"
    )
    assert (await env.thread())[0].endswith("goes out once, as soon as it can be sent.")


@dataclass
class RecordingHandler:
    """A Matrix channel stand-in that sends everything it is given."""

    sent: list[Payload] = field(default_factory=list)

    def ready(self) -> bool:
        return True

    async def prepare(self, item: OutboxItem, payload: Payload) -> Payload:
        return payload

    async def send(self, item: OutboxItem, payload: Payload) -> str:
        self.sent.append(payload)
        return f"$event-{item.id}"

    async def after_sent(self, *args: object) -> None:
        pass

    async def after_failure(self, *args: object) -> None:
        pass


async def test_an_unreadable_payload_is_failed_logged_and_kept(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    handler = RecordingHandler()
    worker = OutboxWorker(env.db, env.clock, Failpoints({}), {"matrix": handler})
    mail = Mail("ack", "l", "f@x", "t@y", "<m@x>", composed=ComposedMail((), "m"))
    rows = [
        ("fax", '{"kind": "fax", "body": "b"}'),
        ("garbage", "{not json"),
        ("missing-field", '{"kind": "thread", "html": "h"}'),
        ("good", '{"kind": "thread", "body": "b", "html": "h"}'),
    ]
    async with env.db.transaction() as conn:
        for key, text in rows:
            await outbox.enqueue(
                conn, idem_key=key, channel="matrix", case_id=None, payload=text, now=NOW
            )
        # A mail that somehow sits on the Matrix channel is refused too, not sent as a post.
        await outbox.enqueue(
            conn,
            idem_key="mail-on-matrix",
            channel="matrix",
            case_id=None,
            payload=encode(mail),
            now=NOW,
        )
    with caplog.at_level(logging.ERROR, logger="bot.outbox.worker"):
        assert await worker.drain("matrix") == 1
    assert handler.sent == [ThreadPost("b", "h")]
    async with env.db.transaction() as conn:
        async with conn.execute(
            "SELECT idem_key, state, last_error FROM outbox ORDER BY id"
        ) as cur:
            stored = {str(r[0]): (str(r[1]), str(r[2])) for r in await cur.fetchall()}
    assert stored["good"][0] == "sent"
    for key, reason in [
        ("fax", "unknown payload kind 'fax'"),
        ("garbage", "not JSON"),
        ("missing-field", "field 'body'"),
        ("mail-on-matrix", "a Mail is not sent by matrix"),
    ]:
        state, last_error = stored[key]
        assert state == "failed", key
        assert last_error.startswith("unreadable payload: ") and reason in last_error, key
    errors = [r for r in caplog.records if r.levelno == logging.ERROR and r.name.startswith("bot.")]
    assert len(errors) == 4
    assert all("left failed for a human" in r.getMessage() for r in errors)
    # Failed rows are left for a human, not retried and not deleted.
    env.clock.moment += timedelta(days=1)
    assert await worker.drain("matrix") == 0


# ---- issue 10, item 1: an encrypted report's subject never travels in clear

SECRET_SUBJECT = "SQLi in https://permits.example/login"


async def encrypted_case(env: Env, reporter: str) -> Case:
    case = replace(await env.add_case(reporter), subject=SECRET_SUBJECT)
    async with env.db.transaction() as conn:
        await cases.save_case(conn, case, NOW.isoformat())
    await env.came_encrypted(case)
    return case


async def test_encrypted_report_subject_only_inside_the_encryption(env: Env, keys: Keys) -> None:
    case = await encrypted_case(env, WITH_KEY)
    await env.queue_ack(case)
    assert await env.worker.drain("mail") == 1
    [(_, _, raw)] = env.smtp.sent
    sent = parse(raw)
    assert sent.get_content_type() == "multipart/encrypted"
    # What every relay and the reporter's message list see: the tag and a fixed phrase.
    assert sent["Subject"] == f"[{case.id}] Receipt confirmation"
    assert b"SQLi in" not in raw and b"permits.example" not in raw
    assert sent["From"].addresses[0].display_name == (
        "Information security team, Municipality of Haaksbergen"
    )
    # The reporter's client, after decrypting: their own subject, in the protected headers.
    ciphertext = list(sent.iter_parts())[1].get_payload(decode=True)
    assert isinstance(ciphertext, bytes)
    inner = parse(keys.sam.decrypt(ciphertext))
    assert inner["Subject"] == f"[{case.id}] Receipt confirmation: {SECRET_SUBJECT}"


async def test_encrypted_report_without_a_key_gets_the_fixed_phrase_only(env: Env) -> None:
    case = await encrypted_case(env, WITHOUT_KEY)
    await env.queue_ack(case)
    assert await env.worker.drain("mail") == 1
    [(_, _, raw)] = env.smtp.sent
    sent = parse(raw)
    assert sent.get_content_type() == "multipart/signed"
    assert sent["Subject"] == f"[{case.id}] Receipt confirmation"
    # Not in the envelope, not in the signed part's protected headers, nowhere.
    assert b"SQLi in" not in raw and b"permits.example" not in raw
    assert env.pgp.decrypt_raw(raw).signature is not None


async def test_a_report_that_came_in_clear_keeps_its_subject(env: Env) -> None:
    case = await env.add_case(WITHOUT_KEY)
    await env.queue_ack(case)
    assert await env.worker.drain("mail") == 1
    [(_, _, raw)] = env.smtp.sent
    assert parse(raw)["Subject"] == f"[{case.id}] Receipt confirmation: {case.subject}"


def test_one_rule_decides_the_outer_subject() -> None:
    assert outer_subject("[C] Fixed: x", "[C] Fixed", confidential=False) is None
    assert outer_subject("[C] Fixed: x", "[C] Fixed", confidential=True) == "[C] Fixed"
