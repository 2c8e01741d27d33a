"""Issue 10 item 3 with the running bot: a mail that kills the intake twice is quarantined on
the third start, and after the hostile mails (200,000-character Subject, a 5 MB header line,
3,000 parts, 60 nested forwards, a compressed PGP message past the limit) the bot still
takes the next report. One deployment; counted once the outbox is empty."""

from __future__ import annotations

import sqlite3

from bot.mailin.intake_posts import QUARANTINED
from bot.pgp.gpg import Pgp
from tests.harness import hostile_mails
from tests.harness.bot import CvdDeployment
from tests.harness.quiescence import wait_quiescent_and_seen
from tests.harness.reporter_pgp import ReporterGpg
from tests.integration.conftest import MakeDeployment
from tests.integration.sample_mails import ENGLISH_BODY, report


def count(deployment: CvdDeployment, sql: str) -> int:
    with sqlite3.connect(deployment.db_path) as conn:
        return int(conn.execute(sql).fetchone()[0])


async def test_hostile_mail_never_stops_the_bot(make_deployment: MakeDeployment) -> None:
    d = await make_deployment()
    d.write_config()
    crashing = report(subject="Kills the intake", body=ENGLISH_BODY)
    d.append_mail(crashing)
    for _ in range(2):
        bot = d.start_bot(failpoints="intake.before_store", wait=False)
        assert bot.wait_exit(90) == -9, bot.log_tail()
    d.start_bot()  # the third start: the mail is put aside, not read again
    notice = await d.team.wait_for_message(d.room_id, lambda m: QUARANTINED in m.body, timeout=60)
    assert "stopped while reading it" in notice.body and "Kills the intake" in notice.body

    bot_home = d.workdir / "data" / "gnupg"
    reporter = ReporterGpg(d.workdir / "reporter-gnupg", "Rita", "rita@researcher.example")
    try:
        reporter.import_key(Pgp(bot_home, None, None).export_public_key(d.key_fingerprint))
        hostile = [
            hostile_mails.long_subject(200_000),
            hostile_mails.long_header(5_000_000),
            hostile_mails.many_parts(3000),
            hostile_mails.nested_messages(60),
            hostile_mails.compression_bomb(reporter, d.key_fingerprint, 300_000_000),
        ]
    finally:
        reporter.close()
    for raw in hostile:
        d.append_mail(raw)
    d.append_mail(report(subject="The report after the storm", body=ENGLISH_BODY))
    await d.team.wait_for_message(
        d.room_id,
        lambda m: m.thread_root is None and "The report after the storm" in m.body,
        timeout=120,
    )
    await wait_quiescent_and_seen(d.db_path, d.team, d.room_id, timeout=90)
    assert count(d, "SELECT COUNT(*) FROM cases") == 6
    assert count(d, "SELECT COUNT(*) FROM quarantine") == 1
    assert count(d, "SELECT COUNT(*) FROM intake_attempts") == 0
    assert count(d, "SELECT COUNT(*) FROM outbox WHERE state = 'failed'") == 0
    bodies = "\n".join(m.body for m in d.team.messages(d.room_id))
    assert "X-Long header field (5000008 bytes) was cut" in bodies
    assert "expands past the limit of" in bodies
    assert bodies.count(QUARANTINED) == 1
    assert d.bot is not None and d.bot.process is not None and d.bot.process.poll() is None
