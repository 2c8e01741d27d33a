"""Issue 10 item 3 and 4: hostile mail through `cvdbot ingest` (the real process, real gpg,
a real SQLite file). Each is handled in under 5 s with a clear outcome, and what was wrong
reaches the team; a mail that stops the process twice is quarantined, never a crash loop.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.mailin.intake_posts import QUARANTINED, UNDECRYPTABLE
from bot.pgp.gpg import MIN_S2K_COUNT, Pgp
from tests.harness import hostile_mails
from tests.harness.reporter_pgp import ReporterGpg
from tests.integration.sample_mails import ENGLISH_BODY, report

ROOT = Path(__file__).resolve().parents[2]
BOT_ADDRESS = "security@haaksbergen.example"
BOT_PASS = "bot-passphrase"
# Each hostile mail is read in under 5 s; on a machine loaded by other work, in under 4
# times what a plain report costs right then (process start, gpg, SQLite: about 1 s when
# quiet). The costs these tests guard against were 18 times that and more (3,000 parts took
# 22 s; a 200,000-character subject did not finish in 30 s).
SECONDS = 5.0
LOADED_RATIO = 4.0


@dataclass(frozen=True)
class Keys:
    home: Path
    fingerprint: str
    reporter: ReporterGpg


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keys]:
    base = tmp_path_factory.mktemp("hostile-keys")
    bot = Pgp(base / "bot", None, None, s2k_count=MIN_S2K_COUNT)
    fingerprint = bot.generate_key("CVD team", BOT_ADDRESS, BOT_PASS)
    reporter = ReporterGpg(base / "reporter", "Rita", "rita@researcher.example")
    reporter.import_key(bot.export_public_key(fingerprint))
    bot.close()
    yield Keys(base / "bot", fingerprint, reporter)
    reporter.close()
    subprocess.run(["gpgconf", "--homedir", str(base / "bot"), "--kill", "gpg-agent"], check=False)


@dataclass
class Ingest:
    env: dict[str, str]
    database: Path
    home: Path

    def __call__(self, raw: bytes, **extra: str) -> tuple[subprocess.CompletedProcess[str], float]:
        start = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "bot", "ingest", "--config", "config.sample.yaml", "-"],
            cwd=ROOT,
            input=raw,
            capture_output=True,
            timeout=120,
            check=False,
            env={**self.env, **extra},
        )
        result = subprocess.CompletedProcess(
            done.args, done.returncode, done.stdout.decode(), done.stderr.decode()
        )
        return result, time.monotonic() - start

    def assert_quick(self, seconds: float) -> None:
        """Under SECONDS, or under LOADED_RATIO plain reports' time measured now (in a
        database of its own, so this test's counts stay as they are)."""
        if seconds < SECONDS:
            return
        plain, plain_seconds = self(
            report(subject="A plain report", body=ENGLISH_BODY),
            CVDBOT_STORAGE__PATH=str(self.database.with_name("baseline.sqlite3")),
        )
        assert plain.returncode == 0, plain.stderr
        assert seconds < LOADED_RATIO * plain_seconds, (
            f"{seconds:.1f} s: over {SECONDS} s and {seconds / plain_seconds:.1f} times a plain"
            f" report's {plain_seconds:.1f} s"
        )

    def rows(self, sql: str, *args: object) -> list[tuple[object, ...]]:
        with sqlite3.connect(self.database) as conn:
            return conn.execute(sql, args).fetchall()

    def posts(self) -> str:
        payloads = self.rows("SELECT payload FROM outbox WHERE channel = 'matrix' ORDER BY id")
        return "\n".join(str(json.loads(str(row[0])).get("body", "")) for row in payloads)

    def notes_of_last_mail(self) -> list[str]:
        row = self.rows("SELECT problems FROM mails ORDER BY id DESC LIMIT 1")[0]
        return list(json.loads(str(row[0])))


@pytest.fixture
def ingest(tmp_path: Path, keys: Keys) -> Iterator[Ingest]:
    home = tmp_path / "gnupg"
    shutil.copytree(keys.home, home, ignore=shutil.ignore_patterns("S.*", "*.lock"))
    database = tmp_path / "db.sqlite3"
    env = {
        **os.environ,
        "CVDBOT_PGP__GNUPG_HOME": str(home),
        "CVDBOT_PGP__KEY_FINGERPRINT": keys.fingerprint,
        "CVDBOT_PGP__PASSPHRASE": BOT_PASS,
        "CVDBOT_STORAGE__PATH": str(database),
        "CVDBOT_SMTP__FROM_ADDRESS": BOT_ADDRESS,
    }
    env.pop("CVDBOT_FAILPOINTS", None)
    yield Ingest(env, database, home)
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], check=False)


def test_a_200000_character_subject_opens_its_case_quickly(ingest: Ingest) -> None:
    """Item 4: before, 40,000 characters took 10 s and 200,000 did not finish in 30 s."""
    result, seconds = ingest(hostile_mails.long_subject(200_000))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("new_case CVD-"), result.stdout
    ingest.assert_quick(seconds)
    assert any(
        "Subject header field (200010 bytes) was cut" in n for n in ingest.notes_of_last_mail()
    )


def test_a_5_mb_header_line_is_cut_and_the_team_is_told(ingest: Ingest) -> None:
    result, seconds = ingest(hostile_mails.long_header(5_000_000))
    assert result.returncode == 0 and result.stdout.startswith("new_case"), result.stderr
    ingest.assert_quick(seconds)
    assert "X-Long header field (5000008 bytes) was cut to 65536 bytes" in ingest.posts()
    stored = ingest.rows("SELECT length(raw) FROM mails")[0][0]
    assert stored == len(hostile_mails.long_header(5_000_000)), "the raw mail is kept whole"


def test_3000_parts_are_read_quickly_and_only_some_posted(ingest: Ingest) -> None:
    result, seconds = ingest(hostile_mails.many_parts(3000))
    assert result.returncode == 0 and result.stdout.startswith("new_case"), result.stderr
    ingest.assert_quick(seconds)
    media = ingest.rows("SELECT count(*) FROM outbox WHERE idem_key LIKE 'media:%'")[0][0]
    assert media == 20, "limits.max_attachments_in_thread"
    posts = ingest.posts()
    assert "2999 attachments" in posts and "… and 2949 more, kept in the store" in posts


def test_60_nested_forwarded_mails_are_read_quickly(ingest: Ingest) -> None:
    result, seconds = ingest(hostile_mails.nested_messages(60))
    assert result.returncode == 0 and result.stdout.startswith("new_case"), result.stderr
    ingest.assert_quick(seconds)


def test_a_compressed_pgp_message_is_stopped_past_the_limit(ingest: Ingest, keys: Keys) -> None:
    """Item 3: 300 MB of zeros in about 300 KB; gpg is stopped at 100 times the input."""
    bomb = hostile_mails.compression_bomb(keys.reporter, keys.fingerprint, 300_000_000)
    result, seconds = ingest(bomb)
    assert result.returncode == 0 and result.stdout.startswith("new_case"), result.stderr
    ingest.assert_quick(seconds)
    posts = ingest.posts()
    assert UNDECRYPTABLE in posts and "expands past the limit of" in posts, posts
    assert "limits.max_decrypted_bytes" in posts


def test_a_mail_that_kills_the_intake_twice_is_quarantined(ingest: Ingest) -> None:
    """Item 3: no crash loop. The failpoint kills the process before anything is stored."""
    mail = hostile_mails.long_subject(100)
    for _ in range(2):
        result, _ = ingest(mail, CVDBOT_FAILPOINTS="intake.before_store")
        assert result.returncode == -9, result.stderr
    result, seconds = ingest(mail, CVDBOT_FAILPOINTS="intake.before_store")
    assert result.returncode == 0 and result.stdout.startswith("quarantined -"), result.stderr
    ingest.assert_quick(seconds)
    assert ingest.rows("SELECT count(*) FROM cases")[0][0] == 0
    quarantined = ingest.rows("SELECT raw, reason FROM quarantine")
    assert quarantined == [
        (mail, "the intake stopped while reading it (the process was killed or crashed)")
    ]
    notices = [line for line in ingest.posts().splitlines() if QUARANTINED in line]
    assert len(notices) == 1, notices
    # Delivered once more (an MTA retry): recognised, no second notice.
    result, _ = ingest(mail)
    assert result.stdout.startswith("quarantined"), result.stdout
    assert ingest.posts().count(QUARANTINED) == 1
    # The next mail is taken as usual.
    result, _ = ingest(hostile_mails.long_subject(50))
    assert result.stdout.startswith("new_case CVD-"), result.stderr


def test_a_mail_over_max_mail_bytes_is_quarantined_unread(ingest: Ingest) -> None:
    result, _ = ingest(hostile_mails.body_of(200_000), CVDBOT_LIMITS__MAX_MAIL_BYTES="100000")
    assert result.returncode == 0 and result.stdout.startswith("quarantined"), result.stderr
    assert "more than limits.max_mail_bytes (100000)" in ingest.posts()
    assert "From: x@hostile.example" in ingest.posts()


def test_parts_beyond_max_mime_parts_are_not_read_and_the_team_is_told(ingest: Ingest) -> None:
    """The 3,000-part mail with the cap at 100: the root and the body are parts 1 and 2, so
    98 attachments are read and the other 2,901 parts are not."""
    result, seconds = ingest(hostile_mails.many_parts(3000), CVDBOT_LIMITS__MAX_MIME_PARTS="100")
    assert result.returncode == 0 and result.stdout.startswith("new_case"), result.stderr
    ingest.assert_quick(seconds)
    told = "more than 100 MIME parts; only the first 100 were read (limits.max_mime_parts)"
    assert told in ingest.notes_of_last_mail()
    posts = ingest.posts()
    assert told in posts
    assert "98 attachments" in posts and "2999 attachments" not in posts, posts
    assert "… and 48 more, kept in the store" in posts  # 50 listed by name, 48 counted


def test_header_fields_beyond_max_header_bytes_are_left_out_and_the_team_is_told(
    ingest: Ingest,
) -> None:
    """20,000 fields of 62 bytes (1.2 MB of header) and then `Auto-Submitted`: beyond the
    default 1 MiB, so it is left out and the mail opens a case. Within the cap, the same
    field makes the mail automatic (unsorted), which shows it is really left out."""
    automatic = "Auto-Submitted: auto-generated\r\n"
    result, _ = ingest(hostile_mails.many_header_fields(10, automatic))
    assert result.stdout.startswith("unmatched_automatic"), result.stdout
    mail = hostile_mails.many_header_fields(20_000, automatic)
    result, seconds = ingest(mail)
    assert result.returncode == 0 and result.stdout.startswith("new_case"), result.stderr
    ingest.assert_quick(seconds)
    left_out = [n for n in ingest.notes_of_last_mail() if "(limits.max_header_bytes)" in n]
    assert left_out == [
        "3092 header fields beyond 1048576 bytes of header were left out (limits.max_header_bytes)"
    ]
    assert left_out[0] in ingest.posts()
    stored = ingest.rows("SELECT raw FROM mails ORDER BY id DESC LIMIT 1")[0][0]
    assert stored == mail, "the raw mail is kept whole"
