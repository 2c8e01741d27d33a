"""The managers' digest against a seeded database: every number, the room post and chart in
the outbox, the mails at a real SMTP server (encrypted to the manager whose key is known,
signed and without report subjects to the other), and `cvdbot digest --print`.

The digest is for Thursday 5 November 2026 08:30 CET; the previous one would have been
Wednesday 4 November 08:30. Seven cases (received → what happened):

  A  Wed 4 Nov 10:00  new; acknowledge due Fri 6 Nov (soon)
  B  Mon 2 Nov 10:00  new; acknowledge due Wed 4 Nov 17:00 (overdue), assess Mon 9 Nov (soon)
  C  Mon 26 Oct 10:00 acknowledged and assessed in time; fix clock paused since Sun 1 Nov
  D  Tue 1 Sep 10:00  acknowledged late (Fri 4 Sep), assessed in time, fixed Wed 4 Nov 14:00
  E  Wed 1 Jul 10:00  all in time, fixed 1 Aug: older than 90 days, in no rate
  F  Mon 19 Oct 10:00 acknowledged in time; assess due Mon 26 Oct 17:00 missed (overdue)
  G  Mon 3 Aug 10:00  acknowledged and assessed in time (before the 90 days); fix clock
                      paused 1 Oct, before its deadline of Sun 1 Nov; fixed Mon 2 Nov during
                      the pause: in time
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from bot.config import Config, load_config
from bot.failpoints import Failpoints
from bot.mailout.reporter import SmtpSender
from bot.outbox.mail_channel import MailHandler
from bot.outbox.payloads import ImagePost, Mail, RoomPost, decode
from bot.outbox.worker import OutboxWorker
from bot.pgp.gpg import MIN_S2K_COUNT, Pgp
from bot.policy.clock import SystemClock
from bot.policy.fix_clock import FixClock
from bot.policy.lifecycle import Case, CaseState
from bot.policy.workdays import WorkingCalendar, case_deadlines
from bot.services import calendar_rules
from bot.watch.digest import DigestService
from bot.watch.digest_contents import build_digest
from bot.watch.digest_render import render_text
from storage import cases, fix_clocks, outbox
from storage.db import Database
from tests.harness.bot import make_bot_key
from tests.harness.smtp import SmtpServer

ROOT = Path(__file__).resolve().parents[2]
AMS = ZoneInfo("Europe/Amsterdam")
AT = datetime(2026, 11, 5, 8, 30, tzinfo=AMS).astimezone(UTC)
CASE_ROOM = "!cases:example.org"
BOSS_MAIL = "boss@haaksbergen.example"
CHIEF_MAIL = "chief@haaksbergen.example"


def t(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=AMS).astimezone(UTC)


def write_config(tmp_path: Path, smtp: SmtpServer, fingerprint: str) -> Path:
    data: dict[str, Any] = {
        "matrix": {
            "homeserver": "http://127.0.0.1:1",
            "user_id": "@cvdbot:example.org",
            "password": "unused",
            "store_path": "store",
            "case_room": CASE_ROOM,
            "digest_room": "!managers:example.org",
            "team": ["@alice:example.org"],
            "managers": ["@boss:example.org"],
        },
        "imap": {
            "host": "127.0.0.1",
            "port": 1,
            "security": "none",
            "username": "u",
            "password": "p",
        },
        "smtp": {
            "host": "127.0.0.1",
            "port": smtp.port,
            "security": "none",
            "from_address": "security@haaksbergen.example",
        },
        "pgp": {
            "gnupg_home": "gnupg",
            "key_fingerprint": fingerprint,
            "passphrase": "bot-passphrase",
        },
        "storage": {"path": "cvdbot.sqlite3"},
        "digest": {"email_to": [BOSS_MAIL, CHIEF_MAIL]},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


async def seed(db: Database, calendar: WorkingCalendar) -> dict[str, str]:
    """The seven cases of the module docstring; their IDs by letter."""
    plans: list[tuple[str, datetime, dict[str, Any]]] = [
        ("E", t(7, 1, 10), {"ack": t(7, 2, 10), "assess": t(7, 3, 10), "fixed": t(8, 1, 10)}),
        (
            "D",
            t(9, 1, 10),
            {"ack": t(9, 4, 10), "assess": t(9, 7, 10), "fixed": t(11, 4, 14), "root": True},
        ),
        (
            "G",
            t(8, 3, 10),
            {
                "ack": t(8, 4, 10),
                "assess": t(8, 6, 10),
                "paused": t(10, 1, 9),
                "fixed": t(11, 2, 12),
            },
        ),
        ("F", t(10, 19, 10), {"ack": t(10, 20, 9), "assignee": "@bob:example.org"}),
        (
            "C",
            t(10, 26, 10),
            {"ack": t(10, 27, 11), "assess": t(10, 30, 15), "paused": t(11, 1, 12), "root": True},
        ),
        ("B", t(11, 2, 10), {"root": True}),
        ("A", t(11, 4, 10), {}),
    ]
    ids: dict[str, str] = {}
    async with db.transaction() as conn:
        for letter, received, plan in plans:
            deadlines = case_deadlines(calendar, received)
            case_id, seq = await cases.allocate_case_id(conn, 2026)
            state = CaseState.NEW
            if "ack" in plan:
                state = CaseState.ACKNOWLEDGED
            if "assess" in plan:
                state = CaseState.ASSESSED
            if "fixed" in plan:
                state = CaseState.FIXED
            case = Case(
                id=case_id,
                state=state,
                subject=f"Report {letter}: weakness in system {letter}",
                reporter_address=f"{letter.lower()}@finder.example",
                reporter_name=None,
                language="en",
                received_at=received,
                acknowledge_due=deadlines.acknowledge.due,
                assess_due=deadlines.assess.due,
                fix_due=deadlines.fix.due,
                acknowledged_at=plan.get("ack"),
                assessed_at=plan.get("assess"),
                fixed_at=plan.get("fixed"),
                severity="medium" if "assess" in plan else None,
                assignee=plan.get("assignee"),
                thread_root_event_id=f"$root-{letter}" if plan.get("root") else None,
            )
            await cases.insert_case(conn, case, 2026, seq, received.isoformat())
            if "paused" in plan:
                await fix_clocks.save(
                    conn,
                    case_id,
                    FixClock(paused_at=plan["paused"], pause_reason="waiting for vendor"),
                )
            ids[letter] = case_id
    return ids


async def test_digest_numbers_mail_and_print(tmp_path: Path, smtp: SmtpServer) -> None:
    fingerprint = make_bot_key(tmp_path / "gnupg")
    boss = Pgp(tmp_path / "boss-gnupg", None, None, s2k_count=MIN_S2K_COUNT)
    boss_key = boss.generate_key("Boss", BOSS_MAIL, "boss-passphrase")
    bot_pgp = Pgp(tmp_path / "gnupg", fingerprint, "bot-passphrase")
    bot_pgp.import_keys(boss.export_public_key(boss_key))
    config: Config = load_config(write_config(tmp_path, smtp, fingerprint), {})
    calendar = WorkingCalendar(calendar_rules(config.policy))
    db = await Database.open(config.storage.path)
    try:
        ids = await seed(db, calendar)
        async with db.transaction() as conn:
            digest = await build_digest(conn, config, calendar, AT)

        # ---- every number
        assert digest.since == t(11, 4, 8, 30)
        assert digest.due_until == t(11, 9, 17)
        assert digest.open_by_state == {"new": 2, "acknowledged": 1, "assessed": 1}
        assert digest.open_total == 4 and digest.paused == 1
        assert [c.id for c in digest.new] == [ids["A"]]
        assert [c.id for c in digest.closed] == [ids["D"]]
        assert [(e.case.id, [p.promise for p in e.promises]) for e in digest.due_soon] == [
            (ids["A"], ["acknowledge"]),
            (ids["B"], ["assess"]),
        ]
        assert [(e.case.id, [p.promise for p in e.promises]) for e in digest.overdue] == [
            (ids["F"], ["assess"]),
            (ids["B"], ["acknowledge"]),
        ]
        rates = {
            promise: {days: (r.kept, r.decided) for days, r in windows.items()}
            for promise, windows in digest.on_time.items()
        }
        assert rates == {
            "acknowledge": {30: (2, 3), 90: (2, 4)},
            "assess": {30: (1, 2), 90: (2, 3)},
            "fix": {30: (2, 2), 90: (2, 2)},
        }
        days = dict(digest.chart.open_per_day)
        assert len(days) == 90
        assert days[AT.astimezone(AMS).date()] == 4
        assert days[AT.astimezone(AMS).date() - timedelta(days=1)] == 4  # A in, D out
        assert days[AT.astimezone(AMS).date() - timedelta(days=4)] == 4  # Sun: C, D, F, G
        assert len(digest.chart.rate_per_week) == 13

        text = render_text(digest, calendar.tz, CASE_ROOM)
        for line in (
            "CVD digest, Thu 5 Nov 2026 08:30 CET",
            "Open cases: 4 (new 2 · acknowledged 1 · assessed 1); fix clock paused in 1.",
            "New since Wed 4 Nov 2026 08:30 CET: 1",
            "Due within 3 working days (by Mon 9 Nov 2026 17:00 CET): 2",
            "Overdue: 2",
            "Closed since Wed 4 Nov 2026 08:30 CET: 1",
            "  acknowledge: 30 days 2 of 3 (67%) · 90 days 2 of 4 (50%)",
            "  assess: 30 days 1 of 2 (50%) · 90 days 2 of 3 (67%)",
            "  fix: 30 days 2 of 2 (100%) · 90 days 2 of 2 (100%)",
            f"  {ids['B']} · new · unassigned · acknowledge by Wed 4 Nov 2026 17:00 CET "
            "(overdue by 15h 30m) · Report B: weakness in system B · "
            f"https://matrix.to/#/{CASE_ROOM}/$root-B",
            f"  {ids['A']} · new · unassigned · Report A: weakness in system A · "
            "(thread not posted yet)",
            f"  {ids['D']} · fixed Wed 4 Nov 2026 14:00 CET · Report D: weakness in system D · "
            f"https://matrix.to/#/{CASE_ROOM}/$root-D",
        ):
            assert line in text.splitlines(), f"{line!r} not in:\n{text}"

        # ---- queued once: room post (with a variant without subjects), chart, two mails
        service = DigestService(db, config, calendar, bot_pgp)
        assert await service.enqueue(digest) is True
        assert await service.enqueue(digest) is False, "one digest per moment"
        async with db.transaction() as conn:
            matrix_items = await outbox.due(conn, "matrix", AT)
            mail_items = await outbox.due(conn, "mail", AT)
        post, chart = (decode(item.payload) for item in matrix_items)
        assert isinstance(post, RoomPost) and post.unencrypted is not None
        assert post.room_id == "!managers:example.org"
        assert post.body == text
        assert "<a href=" in post.html
        assert "Report B" not in post.unencrypted.body
        assert ids["B"] in post.unencrypted.body
        assert isinstance(chart, ImagePost) and chart.data.startswith(b"\x89PNG\r\n\x1a\n")
        # Sealed when built: whether the text may name reports depends on the key it uses.
        digest_mails = [decode(item.payload) for item in mail_items]
        assert len(digest_mails) == 2
        assert all(isinstance(m, Mail) and m.sealed is not None for m in digest_mails)

        worker = OutboxWorker(
            db,
            SystemClock(),
            Failpoints({}),
            {"mail": MailHandler(SmtpSender(config), db, bot_pgp)},
        )
        assert await worker.drain("mail") == 2
        mails = {m.rcpt_tos[0]: m for m in await smtp.wait_for_async(2, timeout=30)}
        encrypted = mails[BOSS_MAIL].message
        assert encrypted.get_content_type() == "multipart/encrypted"
        # Issue 10, item 1: the same subject rule as reporter mail; the counts only inside.
        assert encrypted["Subject"] == "CVD digest 2026-11-05"
        boss_reader = Pgp(tmp_path / "boss-gnupg", boss_key, "boss-passphrase")
        opened = boss_reader.decrypt_raw(mails[BOSS_MAIL].raw)
        assert opened.decrypted and opened.message is not None
        assert opened.protected_subject == "CVD digest 2026-11-05: 4 open, 2 overdue"
        assert mails[CHIEF_MAIL].message["Subject"] == "CVD digest 2026-11-05"
        body = opened.message.get_body(("plain",))
        assert body is not None and body.get_content().replace("\r\n", "\n").strip() == text
        signed = mails[CHIEF_MAIL].message
        assert signed.get_content_type() == "multipart/signed"
        plain = message_from_bytes(mails[CHIEF_MAIL].raw, policy=policy.default)
        signed_text = str(plain.get_body(("plain",)).get_content())  # type: ignore[union-attr]
        assert "Report B" not in signed_text and ids["B"] in signed_text
        assert "Overdue: 2" in signed_text
    finally:
        await db.close()

    # ---- the command line prints the same digest
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bot",
            "digest",
            "--config",
            str(tmp_path / "config.yaml"),
            "--print",
            "--at",
            "2026-11-05T08:30:00+01:00",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == text + "\n"
