"""The outbox under faults, on real Synapse, Dovecot and SMTP, counted once the bot is
quiescent: the bot killed between a successful send and marking it sent (a thread root: the
homeserver's txn_id de-duplication leaves one root, and a command the team sent in its
thread meanwhile finds its case; a reporter mail: SMTP has no such thing,
so it is delivered again, byte for byte), and SMTP down while two mails of one case wait
(they leave in the order queued once it is back)."""

from __future__ import annotations

import asyncio
import sqlite3

from tests.harness.bot import CvdDeployment
from tests.harness.person import ReceivedMessage
from tests.harness.quiescence import wait_quiescent, wait_quiescent_and_seen
from tests.integration.conftest import MakeDeployment
from tests.integration.sample_mails import ENGLISH_BODY, report
from tests.integration.test_spine import count_in_thread, wait_in_thread, wait_root

SUBJECT = "Open redirect on the login page"


def outbox_row(d: CvdDeployment, idem_prefix: str) -> list[tuple[str, int, str | None]]:
    with sqlite3.connect(d.db_path) as conn:
        rows = conn.execute(
            "SELECT state, attempts, result FROM outbox WHERE idem_key LIKE ? ORDER BY id",
            (f"{idem_prefix}%",),
        ).fetchall()
    return [(str(s), int(a), r) for s, a, r in rows]


def roots(d: CvdDeployment) -> list[ReceivedMessage]:
    return [
        m
        for m in d.team.messages(d.room_id)
        if m.thread_root is None and "New report" in m.body and SUBJECT in m.body
    ]


async def test_killed_after_send_root_once_mail_again_and_order_kept_through_smtp_outage(
    make_deployment: MakeDeployment,
) -> None:
    d = await make_deployment()

    # 1. Killed right after the homeserver accepted the thread root, before it was marked
    #    sent: the restarted bot sends it again with the same txn_id, and Synapse answers
    #    with the first event instead of making a second one.
    bot = d.start_bot(failpoints="outbox.after_send.matrix")
    d.append_mail(report(subject=SUBJECT, body=ENGLISH_BODY, sender="sam@finder.example"))
    assert bot.wait_exit(timeout=60) == -9, "killed right after sending the root"
    [(state, attempts, _)] = outbox_row(d, "root:")
    assert (state, attempts) == ("pending", 0), "the root left but was not marked sent"
    root = await wait_root(d.team, d.room_id, SUBJECT)  # the send before the kill
    # The team answers in the thread while the bot is down: the restarted bot reads the
    # command before it knows the thread is the case's (the root is not recorded yet). The
    # command waits for the root's resend and then finds its case, instead of "which case?".
    await d.team.send(d.room_id, "!ack", thread_root=root.event_id)
    d.start_bot()
    await wait_in_thread(d.team, d.room_id, root, "The report:")
    await wait_in_thread(d.team, d.room_id, root, "receipt confirmation mail went to")
    await wait_quiescent_and_seen(d.db_path, d.team, d.room_id)
    [(state, _, event_id)] = outbox_row(d, "root:")
    assert state == "sent" and event_id == root.event_id, "the resend got the first event"
    assert len(roots(d)) == 1
    assert count_in_thread(d.team, d.room_id, root, "The report:") == 1
    assert count_in_thread(d.team, d.room_id, root, "acknowledged by") == 1
    assert count_in_thread(d.team, d.room_id, root, "which case?") == 0
    assert len(d.smtp.messages) == 1
    d.smtp.clear()

    # 2. Killed right after SMTP accepted the assessment mail: SMTP cannot de-duplicate,
    #    so after the restart the reporter gets it a second time, the same bytes with the same
    #    Message-ID (mail clients show it once); the thread says once that it went out.
    bot.stop()
    d.start_bot(failpoints="outbox.after_send.mail")
    await d.team.send(d.room_id, "!assess low open redirect", thread_root=root.event_id)
    assert bot.wait_exit(timeout=60) == -9, "killed right after SMTP accepted the mail"
    assert len(d.smtp.messages) == 1
    d.start_bot()
    await wait_in_thread(d.team, d.room_id, root, "assessment mail went to")
    await wait_quiescent_and_seen(d.db_path, d.team, d.room_id)
    first, again = d.smtp.messages
    assert again.raw == first.raw and first.message["Message-ID"] == again.message["Message-ID"]
    assert count_in_thread(d.team, d.room_id, root, "assessed as low") == 1
    assert count_in_thread(d.team, d.room_id, root, "assessment mail went to") == 1
    d.smtp.clear()

    # 3. SMTP down, two mails of the case queued five seconds apart: the later one never
    #    overtakes the earlier one that is backing off; once SMTP is back, the reporter gets
    #    the assessment after the receipt confirmation. A second case, with a fresh
    #    !ack (the first case is acknowledged already).
    d.append_mail(report(subject=f"{SUBJECT} (2)", body=ENGLISH_BODY, sender="eva@r.example"))
    second = await wait_root(d.team, d.room_id, f"{SUBJECT} (2)")
    await wait_quiescent(d.db_path)
    d.smtp.stop()
    await d.team.send(d.room_id, "!ack", thread_root=second.event_id)
    await wait_in_thread(d.team, d.room_id, second, "could not be sent yet")
    await asyncio.sleep(5)
    await d.team.send(d.room_id, "!assess medium open redirect", thread_root=second.event_id)
    await wait_in_thread(d.team, d.room_id, second, "assessed as medium")
    await asyncio.sleep(3)  # long enough for the assessment's own first back-off to end
    assert [s for s, _, _ in outbox_row(d, "mail:")] == ["sent", "sent", "pending", "pending"]
    d.smtp.start()
    await wait_in_thread(d.team, d.room_id, second, "assessment mail went to", timeout=90)
    await wait_quiescent_and_seen(d.db_path, d.team, d.room_id)
    subjects = [str(m.message["Subject"]) for m in d.smtp.messages]
    assert len(subjects) == 2, subjects
    assert "Receipt confirmation" in subjects[0] and "Assessment" in subjects[1], subjects
    assert all(m.rcpt_tos == ["eva@r.example"] for m in d.smtp.messages)
    assert count_in_thread(d.team, d.room_id, second, "could not be sent yet") == 1
    assert d.team.undecryptable(d.room_id) == []
