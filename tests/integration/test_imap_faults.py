"""Issue 10, item 3: the IMAP loop survives whatever one mail causes, against the real Dovecot.

The IMAP source and the intake run in this process with real gpg and a real SQLite file (no
Matrix needed: what would be posted is counted in the outbox). A fault is put in at one seam
per test: an intake that raises for one mail, a FETCH reply that cannot be read, a network
that goes silent in the middle of a FETCH. Each test reads until the folder's stored
position reaches the last UID, so "the next mail is still read" is what ends it.
"""

from __future__ import annotations

import asyncio
import imaplib
import logging
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

import bot.mailin.imap as imap_module
from bot.app import make_calendar
from bot.config import Config, load_config
from bot.failpoints import Failpoints
from bot.mailin.imap import ImapSource
from bot.mailin.intake import IntakeResult, MailIntake
from bot.mailin.intake_posts import QUARANTINED
from bot.pgp.gpg import MIN_S2K_COUNT, Pgp
from bot.policy.clock import SystemClock
from storage.db import Database
from tests.conftest import MakeMailbox
from tests.harness.dovecot import DovecotServer
from tests.harness.tcp_proxy import TcpProxy
from tests.integration.sample_mails import ENGLISH_BODY, report

ROOT = Path(__file__).resolve().parents[2]
PASS = "bot-passphrase"


@pytest.fixture(scope="module")
def bot_key(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    home = tmp_path_factory.mktemp("imap-faults-key")
    setup = Pgp(home, None, None, s2k_count=MIN_S2K_COUNT)
    fpr = setup.generate_key("CVD team", "security@haaksbergen.example", PASS)
    setup.close()
    yield home, fpr
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], check=False)


class Mailbox:
    """One Dovecot mailbox, the bot's config for it and its gpg home."""

    def __init__(
        self, dovecot: DovecotServer, make_mailbox: MakeMailbox, tmp: Path, key: tuple[Path, str]
    ) -> None:
        self.dovecot = dovecot
        self.user, self.password = make_mailbox("imapfaults")
        self.home = tmp / "gnupg"
        shutil.copytree(key[0], self.home, ignore=shutil.ignore_patterns("S.*", "*.lock"))
        self.fpr = key[1]
        self.database = tmp / "db.sqlite3"

    def append(self, raw: bytes) -> None:
        with imaplib.IMAP4(self.dovecot.host, self.dovecot.port, timeout=30) as imap:
            imap.login(self.user, self.password)
            status, data = imap.append("INBOX", None, None, raw)
            assert status == "OK", data
            imap.logout()

    def config(self, port: int | None = None, idle_renew_seconds: float = 240) -> Config:
        return load_config(
            ROOT / "config.sample.yaml",
            {
                "CVDBOT_IMAP__HOST": "127.0.0.1",
                "CVDBOT_IMAP__PORT": str(port or self.dovecot.port),
                "CVDBOT_IMAP__SECURITY": "none",
                "CVDBOT_IMAP__USERNAME": self.user,
                "CVDBOT_IMAP__PASSWORD": self.password,
                "CVDBOT_IMAP__START_AT": "all",
                "CVDBOT_IMAP__IDLE_RENEW_SECONDS": str(idle_renew_seconds),
                "CVDBOT_PGP__GNUPG_HOME": str(self.home),
                "CVDBOT_PGP__KEY_FINGERPRINT": self.fpr,
                "CVDBOT_PGP__PASSPHRASE": PASS,
                "CVDBOT_STORAGE__PATH": str(self.database),
            },
        )

    def rows(self, sql: str, *args: object) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.database) as conn:
            return conn.execute(sql, args).fetchall()

    def posts(self) -> str:
        return "\n".join(str(row[0]) for row in self.rows("SELECT payload FROM outbox"))

    def notices(self) -> int:
        """Quarantine notices queued for the case room."""
        payloads = self.rows("SELECT payload FROM outbox WHERE idem_key LIKE 'quarantine:%'")
        assert all(QUARANTINED in str(payload) for (payload,) in payloads)
        return len(payloads)


@pytest.fixture
def mailbox(
    dovecot: DovecotServer, make_mailbox: MakeMailbox, tmp_path: Path, bot_key: tuple[Path, str]
) -> Iterator[Mailbox]:
    box = Mailbox(dovecot, make_mailbox, tmp_path, bot_key)
    yield box
    subprocess.run(["gpgconf", "--homedir", str(box.home), "--kill", "gpg-agent"], check=False)


class PoisonedIntake(MailIntake):
    """The real intake, except that a mail with `marker` in it raises ValueError: a bug
    that one mail triggers. The exception's text quotes the mail, as a real one may."""

    marker = b"Poisoned report"
    raised = 0

    async def ingest(self, raw: bytes, **kwargs: Any) -> IntakeResult:
        if self.marker in raw:
            self.raised += 1
            raise ValueError("quoting the mail: Poisoned report")
        return await super().ingest(raw, **kwargs)


async def read_until(
    config: Config, last_uid: int, intake_class: type[MailIntake] = MailIntake, **hooks: Any
) -> MailIntake:
    """Run the IMAP source until the folder's stored position reaches `last_uid`."""
    db = await Database.open(config.storage.path)
    pgp = Pgp(config.pgp.gnupg_home, config.pgp.key_fingerprint, PASS)
    intake = intake_class(db, config, make_calendar(config), pgp, SystemClock(), Failpoints({}))
    for name, hook in hooks.items():
        setattr(intake, name, hook)
    task = asyncio.create_task(ImapSource(config.imap, db, intake).run())
    try:
        deadline = time.monotonic() + 20
        while True:
            with sqlite3.connect(config.storage.path) as conn:
                found = conn.execute("SELECT last_uid FROM imap_state").fetchall()
            if found and found[0][0] == last_uid:
                return intake
            assert not task.done(), task
            assert time.monotonic() < deadline, f"IMAP position stuck at {found}"
            await asyncio.sleep(0.1)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await db.close()
        pgp.close()


async def test_a_mail_whose_intake_raises_twice_is_quarantined_and_the_next_read(
    mailbox: Mailbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    poisoned = report(subject="Poisoned report", body=ENGLISH_BODY)
    mailbox.append(poisoned)
    mailbox.append(report(subject="The next report", body=ENGLISH_BODY))

    intake = await read_until(mailbox.config(), 2, PoisonedIntake)

    assert isinstance(intake, PoisonedIntake) and intake.raised == 2
    quarantined = mailbox.rows("SELECT raw, imap_uid, reason FROM quarantine")
    assert [(raw.replace(b"\r\n", b"\n"), uid, why) for raw, uid, why in quarantined] == [
        (poisoned, 1, "reading it raised ValueError")
    ]
    assert mailbox.notices() == 1 and "IMAP UID 1" in mailbox.posts()
    assert mailbox.rows("SELECT subject FROM cases") == [("The next report",)]
    logged = caplog.text
    assert "IMAP UID 1: intake failed with ValueError (attempt 1)" in logged
    assert "quoting the mail" not in logged, "the exception's text may quote the mail"


async def test_a_fetch_reply_that_cannot_be_read_is_passed_after_two_tries(
    mailbox: Mailbox, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: logged without the UID, and the same UID read again after every reconnect."""
    caplog.set_level(logging.INFO)
    unreadable = report(subject="Unreadable reply", body=ENGLISH_BODY)
    mailbox.append(unreadable)
    mailbox.append(report(subject="The next report", body=ENGLISH_BODY))
    parse = imap_module._fetched_message
    raised = []

    def fetched_message(lines: list[Any]) -> tuple[bytes | None, datetime | None]:
        if any(isinstance(line, bytearray) and b"Unreadable reply" in line for line in lines):
            raised.append(1)
            raise ValueError("quoting the reply: Unreadable reply")
        return parse(lines)

    monkeypatch.setattr(imap_module, "_fetched_message", fetched_message)

    await read_until(mailbox.config(), 2)

    assert len(raised) == 2, "read twice (once more after a reconnect), then passed"
    logged = caplog.text
    for attempt in (1, 2):
        assert f"IMAP UID 1: reading it raised ValueError (attempt {attempt})" in logged
    assert "quoting the reply" not in logged
    quarantined = mailbox.rows("SELECT raw, imap_uid, reason FROM quarantine")
    assert [(raw.replace(b"\r\n", b"\n"), uid, why) for raw, uid, why in quarantined] == [
        (unreadable, 1, "reading it raised ValueError")
    ]
    assert mailbox.notices() == 1 and "IMAP UID 1" in mailbox.posts()
    assert mailbox.rows("SELECT subject FROM cases") == [("The next report",)]


async def test_a_fetch_without_answer_times_out_and_the_loop_reconnects(
    mailbox: Mailbox, caplog: pytest.LogCaptureFixture
) -> None:
    """aioimaplib raises CommandTimeout for a FETCH that gets no answer within the reply
    timeout (here 2 s: idle_renew_seconds 2). The network goes silent right after the first
    mail is stored, so the FETCH of the second hears nothing."""
    caplog.set_level(logging.INFO)
    proxy = TcpProxy(mailbox.dovecot.host, mailbox.dovecot.port)
    proxy.start()
    try:
        mailbox.append(report(subject="Before the silence", body=ENGLISH_BODY))
        mailbox.append(report(subject="Fetched into the silence", body=ENGLISH_BODY))
        config = mailbox.config(port=proxy.port, idle_renew_seconds=2)
        frozen: list[float] = []

        def freeze_once() -> None:
            if not frozen:
                frozen.append(time.monotonic())
                proxy.set_mode("freeze")

        async def network_back_after_the_timeout() -> None:
            while "no answer to FETCH in time" not in caplog.text:
                await asyncio.sleep(0.05)
            proxy.set_mode("forward")

        back = asyncio.create_task(network_back_after_the_timeout())
        try:
            await read_until(config, 2, on_stored=freeze_once)
        finally:
            back.cancel()
        assert frozen, "the network went silent after the first mail"
        assert (
            "IMAP connection lost (no answer to FETCH in time); reconnecting in 1 s" in caplog.text
        )
        subjects = mailbox.rows("SELECT subject FROM cases ORDER BY id")
        assert subjects == [("Before the silence",), ("Fetched into the silence",)]
    finally:
        proxy.close()


def message_file(mailbox: Mailbox, marker: bytes) -> Path:
    """The maildir file holding `marker` now (Dovecot moves it from new/ to cur/)."""
    folder = mailbox.dovecot.mail_root / mailbox.user
    [path] = [p for p in folder.glob("*/*") if p.is_file() and marker in p.read_bytes()]
    return path


def unreadable_on_the_server(mailbox: Mailbox, marker: bytes) -> None:
    """Make the message file holding `marker` unreadable for Dovecot's mail user, as a
    damaged mail store would be: Dovecot answers its FETCH with BYE and hangs up."""
    message_file(mailbox, marker).chmod(0)


async def test_a_mail_the_server_cannot_hand_out_is_asked_again_then_passed_with_a_notice(
    mailbox: Mailbox, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: the FETCH waited 30 s for an answer on a connection Dovecot had closed, then
    counted as a connection fault, and the folder stalled on that UID for ever. Now the
    hang-up is noticed at once, the mail asked for again at every reconnect, and passed with
    a notice once it failed FETCH_PASS_AFTER_TRIES times over FETCH_PASS_AFTER_SECONDS
    (600 s; here 2.5 s: the back-off sleeps 1 s and 2 s before the third try, so that try
    is the one that passes it)."""
    caplog.set_level(logging.INFO)
    mailbox.append(report(subject="Damaged in the store", body=ENGLISH_BODY))
    mailbox.append(report(subject="The next report", body=ENGLISH_BODY))
    unreadable_on_the_server(mailbox, b"Damaged in the store")
    monkeypatch.setattr(imap_module, "FETCH_PASS_AFTER_SECONDS", 2.5)

    began = time.monotonic()
    await read_until(mailbox.config(), 2)

    took = time.monotonic() - began
    assert 2.5 <= took < 15, f"asked again until the limit, not passed at once: {took:.1f} s"
    hang_up = "the server closed the connection at UID 1 (BYE FETCH failed: Internal error"
    assert caplog.text.count(hang_up) >= 3, caplog.text
    [(raw, size, uid, reason)] = mailbox.rows("SELECT raw, size, imap_uid, reason FROM quarantine")
    assert (raw, size, uid) == (b"", 0, 1)
    assert reason.startswith("the mail server would not hand it out (3 tries in 1 min;"), reason
    assert hang_up in reason
    assert mailbox.notices() == 1
    assert "still in the mailbox (IMAP UID 1)" in mailbox.posts()
    assert mailbox.rows("SELECT subject FROM cases") == [("The next report",)]


async def test_a_mail_the_server_hands_out_again_is_read_as_any_other(
    mailbox: Mailbox, caplog: pytest.LogCaptureFixture
) -> None:
    """A failing FETCH can be passing: once the server hands the mail out, it becomes a
    case as any other, and nothing is quarantined."""
    caplog.set_level(logging.INFO)
    mailbox.append(report(subject="Briefly locked in the store", body=ENGLISH_BODY))
    marker = b"Briefly locked in the store"
    unreadable_on_the_server(mailbox, marker)

    async def served_again() -> None:
        while "the server closed the connection at UID 1" not in caplog.text:
            await asyncio.sleep(0.05)
        # Root reads it whatever its mode; Dovecot's mail user then can again.
        message_file(mailbox, marker).chmod(0o600)

    back = asyncio.create_task(served_again())
    try:
        await read_until(mailbox.config(), 1)
    finally:
        back.cancel()
    assert "the server closed the connection at UID 1" in caplog.text
    assert mailbox.rows("SELECT subject FROM cases") == [("Briefly locked in the store",)]
    assert mailbox.rows("SELECT COUNT(*) FROM quarantine") == [(0,)]
