"""Issue 10, item 7: the first start on a folder full of mail, against the real Dovecot.

`imap.start_at: now` (the default) leaves the mail already there alone and takes only what
arrives later; `all` imports the backlog with each case marked imported, and no warning or
escalation for deadlines that had passed before the import. The IMAP source and the intake
run in this process (no Matrix needed: what would be posted is counted in the outbox)."""

from __future__ import annotations

import asyncio
import imaplib
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.app import make_calendar
from bot.config import Config, load_config
from bot.failpoints import Failpoints
from bot.mailin.imap import ImapSource
from bot.mailin.intake import MailIntake
from bot.pgp.gpg import MIN_S2K_COUNT, Pgp
from bot.policy.clock import SystemClock
from bot.watch.deadline_warnings import SlaWatch
from storage.db import Database
from tests.conftest import MakeMailbox
from tests.harness.dovecot import DovecotServer
from tests.integration.sample_mails import ENGLISH_BODY, report

ROOT = Path(__file__).resolve().parents[2]
PASS = "bot-passphrase"


def append(
    dovecot: DovecotServer,
    user: str,
    password: str,
    raw: bytes,
    folder: str,
    at: datetime | None = None,
) -> None:
    with imaplib.IMAP4(dovecot.host, dovecot.port, timeout=30) as imap:
        imap.login(user, password)
        imap.create(folder)  # fails harmlessly when it exists
        when = imaplib.Time2Internaldate(at.timestamp()) if at else None
        status, data = imap.append(folder, None, when, raw)
        assert status == "OK", data
        imap.logout()


def config_for(
    tmp: Path,
    dovecot: DovecotServer,
    user: str,
    password: str,
    folder: str,
    start_at: str,
    home: Path,
    fpr: str,
) -> Config:
    return load_config(
        ROOT / "config.sample.yaml",
        {
            "CVDBOT_IMAP__HOST": "127.0.0.1",
            "CVDBOT_IMAP__PORT": str(dovecot.port),
            "CVDBOT_IMAP__SECURITY": "none",
            "CVDBOT_IMAP__USERNAME": user,
            "CVDBOT_IMAP__PASSWORD": password,
            "CVDBOT_IMAP__FOLDER": folder,
            "CVDBOT_IMAP__START_AT": start_at,
            "CVDBOT_PGP__GNUPG_HOME": str(home),
            "CVDBOT_PGP__KEY_FINGERPRINT": fpr,
            "CVDBOT_PGP__PASSPHRASE": PASS,
            "CVDBOT_STORAGE__PATH": str(tmp / "db.sqlite3"),
        },
    )


def rows(path: Path, sql: str, *args: object) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(sql, args).fetchall()


async def read_until(config: Config, pgp: Pgp, last_uid: int) -> None:
    """Run the IMAP source until the folder's position reaches `last_uid` (quiescent)."""
    db = await Database.open(config.storage.path)
    intake = MailIntake(db, config, make_calendar(config), pgp, SystemClock(), Failpoints({}))
    task = asyncio.create_task(ImapSource(config.imap, db, intake).run())
    try:
        deadline = time.monotonic() + 30
        while True:
            found = rows(
                config.storage.path,
                "SELECT last_uid FROM imap_state WHERE folder = ?",
                config.imap.folder,
            )
            if found and found[0][0] == last_uid:
                break
            assert time.monotonic() < deadline, f"IMAP position stuck at {found}"
            await asyncio.sleep(0.1)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await db.close()


async def test_first_start_now_skips_the_backlog_and_all_imports_it_quietly(
    dovecot: DovecotServer, make_mailbox: MakeMailbox, tmp_path: Path
) -> None:
    user, password = make_mailbox("firststart")
    home = tmp_path / "gnupg"
    setup = Pgp(home, None, None, s2k_count=MIN_S2K_COUNT)
    fpr = setup.generate_key("CVD team", "security@haaksbergen.example", PASS)
    pgp = Pgp(home, fpr, PASS)
    try:
        month_ago = datetime.now(UTC) - timedelta(days=30)
        for n in range(3):
            append(
                dovecot,
                user,
                password,
                report(subject=f"Old report {n}", body=ENGLISH_BODY),
                "INBOX",
                month_ago,
            )
        now_config = config_for(tmp_path, dovecot, user, password, "INBOX", "now", home, fpr)
        await read_until(now_config, pgp, 3)
        assert rows(now_config.storage.path, "SELECT COUNT(*) FROM cases") == [(0,)]
        append(dovecot, user, password, report(subject="New report", body=ENGLISH_BODY), "INBOX")
        await read_until(now_config, pgp, 4)
        assert rows(now_config.storage.path, "SELECT subject, imported_at FROM cases") == [
            ("New report", None)
        ]

        # A folder read with start_at: all: the two old mails become imported cases.
        for n in range(2):
            append(
                dovecot,
                user,
                password,
                report(subject=f"Backlog {n}", body=ENGLISH_BODY),
                "Backlog",
                month_ago,
            )
        all_config = config_for(tmp_path, dovecot, user, password, "Backlog", "all", home, fpr)
        await read_until(all_config, pgp, 2)
        imported = rows(
            all_config.storage.path,
            "SELECT id, received_at < ?, imported_at IS NOT NULL FROM cases"
            " WHERE subject LIKE 'Backlog%' ORDER BY id",
            (datetime.now(UTC) - timedelta(days=29)).isoformat(),
        )
        assert [row[1:] for row in imported] == [(1, 1), (1, 1)]
        backlog_ids = [str(row[0]) for row in imported]
        for case_id in backlog_ids:
            root = rows(
                all_config.storage.path,
                "SELECT payload FROM outbox WHERE case_id = ? ORDER BY id LIMIT 1",
                case_id,
            )
            assert "Imported from the mailbox's backlog" in str(root[0][0])

        # Their acknowledge and assess deadlines passed weeks ago: no warning, no escalation.
        db = await Database.open(all_config.storage.path)
        try:
            watch = SlaWatch(db, all_config, make_calendar(all_config))
            result = await watch.tick(datetime.now(UTC))
        finally:
            await db.close()
        assert not set(result.warned) & set(backlog_ids)
        assert not set(result.escalated) & set(backlog_ids)
        # The fix deadline still lies ahead: those cases are still watched.
        checks = rows(
            all_config.storage.path,
            "SELECT next_sla_check_at IS NOT NULL FROM cases WHERE imported_at IS NOT NULL",
        )
        assert checks == [(1,), (1,)]
    finally:
        pgp.close()
        setup.close()
