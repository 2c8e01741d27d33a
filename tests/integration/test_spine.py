"""The spine, end to end: a mailed report becomes an encrypted case thread, and !ack,
!assess and !fixed answer the reporter exactly once, on real Synapse, Dovecot and SMTP.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from email import message_from_bytes, policy

from tests.harness.bot import CvdDeployment
from tests.harness.person import Person, ReceivedMessage
from tests.harness.quiescence import wait_mail_read, wait_quiescent, wait_quiescent_and_seen
from tests.integration.conftest import MakeDeployment
from tests.integration.sample_mails import DUTCH_BODY, ENGLISH_BODY, report

CASE_ID = re.compile(r"CVD-\d{4}-\d{4,}")


async def wait_root(person: Person, room_id: str, subject: str) -> ReceivedMessage:
    return await person.wait_for_message(
        room_id,
        lambda m: m.thread_root is None and "New report" in m.body and subject in m.body,
        timeout=60,
    )


def in_thread(person: Person, room_id: str, root: ReceivedMessage) -> list[ReceivedMessage]:
    return [m for m in person.messages(room_id) if m.thread_root == root.event_id]


async def wait_in_thread(
    person: Person, room_id: str, root: ReceivedMessage, text: str, timeout: float = 60
) -> ReceivedMessage:
    return await person.wait_for_message(
        room_id, lambda m: m.thread_root == root.event_id and text in m.body, timeout=timeout
    )


def count_in_thread(person: Person, room_id: str, root: ReceivedMessage, text: str) -> int:
    return sum(text in m.body for m in in_thread(person, room_id, root))


def db_rows(deployment: CvdDeployment, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(deployment.db_path) as conn:
        return conn.execute(sql).fetchall()


async def wait_mail_attempts(deployment: CvdDeployment, attempts: int, timeout: float = 30) -> None:
    """Until the one queued mail has failed `attempts` times (it backs off 1, 2, 4 s)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        [(done,)] = db_rows(deployment, "SELECT attempts FROM outbox WHERE channel = 'mail'")
        if int(str(done)) >= attempts:
            return
        assert asyncio.get_running_loop().time() < deadline, f"{done} attempts, not {attempts}"
        await asyncio.sleep(0.1)


async def test_english_report_to_fixed(make_deployment: MakeDeployment) -> None:
    d = await make_deployment()
    d.start_bot()
    raw = report(
        subject="XSS in parking permit search",
        body=ENGLISH_BODY,
        sender="Sam Finder <sam@finder.example>",
    )
    d.append_mail(raw)
    root = await wait_root(d.team, d.room_id, "XSS in parking permit search")
    case_id = CASE_ID.search(root.body)
    assert case_id is not None
    case = case_id.group(0)
    assert "Sam Finder <sam@finder.example>" in root.body
    for promise in ("Acknowledge by", "Assess by", "Fix by"):
        assert promise in root.body
    assert root.content["m.mentions"] == {}
    report_text = await wait_in_thread(d.team, d.room_id, root, "reflected cross-site scripting")
    assert report_text.formatted_body is not None and "<script>" not in report_text.formatted_body

    await d.team.send(d.room_id, "!ack", thread_root=root.event_id)
    await wait_in_thread(d.team, d.room_id, root, "acknowledged by")
    [ack] = await d.smtp.wait_for_async(1, timeout=30)
    assert ack.rcpt_tos == ["sam@finder.example"]
    assert ack.message["Subject"].startswith(f"[{case}] ")
    original_id = message_from_bytes(raw, policy=policy.default)["Message-ID"].strip()
    # A long Message-ID may be folded onto its own line (RFC 5322 FWS); unfolded, it is
    # the reporter's ID.
    assert ack.message["In-Reply-To"].strip() == original_id
    assert original_id in ack.message["References"]
    assert ack.message["Auto-Submitted"] == "auto-replied"
    assert ack.message["Message-ID"].endswith("@haaksbergen.example>")
    assert "Receipt confirmation" in ack.message["Subject"]

    await d.team.send(d.room_id, "!assess high stored XSS, fix planned", thread_root=root.event_id)
    await wait_in_thread(d.team, d.room_id, root, "assessed as high")
    mails = await d.smtp.wait_for_async(2, timeout=30)
    assert f"[{case}]" in mails[1].message["Subject"]
    assert "Assessment" in mails[1].message["Subject"]

    await d.team.send(d.room_id, "!fixed output encoding added", thread_root=root.event_id)
    await wait_in_thread(d.team, d.room_id, root, "marked fixed")
    mails = await d.smtp.wait_for_async(3, timeout=30)
    assert f"[{case}]" in mails[2].message["Subject"]
    await wait_in_thread(d.team, d.room_id, root, "fix notice mail went to sam@finder.example")

    await d.team.send(d.room_id, "!status", thread_root=root.event_id)
    status = await wait_in_thread(d.team, d.room_id, root, f"{case}: fixed")
    assert "severity high" in status.body
    await wait_quiescent_and_seen(d.db_path, d.team, d.room_id)
    assert len(d.smtp.messages) == 3, "each command sends exactly one mail"
    assert len([m for m in d.team.messages(d.room_id) if "New report" in m.body]) == 1
    for answer in ("acknowledged by", "assessed as high", "marked fixed", f"{case}: fixed"):
        assert count_in_thread(d.team, d.room_id, root, answer) == 1, answer
    assert d.team.undecryptable(d.room_id) == []


async def test_dutch_report_gets_dutch_mail_and_follow_up_joins_thread(
    make_deployment: MakeDeployment,
) -> None:
    d = await make_deployment()
    d.start_bot()
    raw = report(subject="Lek in parkeervergunning", body=DUTCH_BODY)
    d.append_mail(raw)
    root = await wait_root(d.team, d.room_id, "Lek in parkeervergunning")
    assert "language: nl" in root.body
    case = CASE_ID.search(root.body).group(0)  # type: ignore[union-attr]

    await d.team.send(d.room_id, f"!ack {case}")  # outside the thread, case ID first
    await wait_in_thread(d.team, d.room_id, root, "acknowledged by")
    [ack] = await d.smtp.wait_for_async(1, timeout=30)
    assert "Ontvangstbevestiging" in ack.message["Subject"]
    body = ack.message.get_body(("plain",))
    assert body is not None and "Geachte" in body.get_content() or "Beste" in str(ack.message)

    follow_up = report(
        subject=f"Re: [{case}] Ontvangstbevestiging",
        body="Nog een detail: ook /api/zoeken.",
    )
    d.append_mail(follow_up)
    await wait_in_thread(d.team, d.room_id, root, "ook /api/zoeken")
    again = d.append_mail(follow_up)  # the same Message-ID again
    await wait_mail_read(d.db_path, again)
    await wait_quiescent_and_seen(d.db_path, d.team, d.room_id)
    assert count_in_thread(d.team, d.room_id, root, "ook /api/zoeken") == 1
    roots = [m for m in d.team.messages(d.room_id) if "New report" in m.body]
    assert len(roots) == 1, "a follow-up never opens a second case"


async def test_outsider_is_refused_and_help_lists_commands(
    make_deployment: MakeDeployment, make_person: object
) -> None:
    d = await make_deployment()
    outsider: Person = await make_person("mallory", auto_join=True)  # type: ignore[operator]
    await d.team.invite(d.room_id, outsider.user_id)
    await outsider.wait_for_room(d.room_id)
    d.start_bot()
    d.append_mail(report(subject="Open directory listing", body=ENGLISH_BODY))
    root = await wait_root(d.team, d.room_id, "Open directory listing")
    await outsider.wait_for_message(d.room_id, lambda m: m.event_id == root.event_id)

    await outsider.send(d.room_id, "!fixed", thread_root=root.event_id)
    refusal = await wait_in_thread(d.team, d.room_id, root, "only the CVD team may run !fixed")
    assert "Nothing was changed" in refusal.body
    await d.team.send(d.room_id, "!status", thread_root=root.event_id)
    status = await wait_in_thread(d.team, d.room_id, root, ": new")
    assert "Acknowledge by" in status.body
    await wait_quiescent(d.db_path)
    assert d.smtp.messages == []

    await d.team.send(d.room_id, "!help", thread_root=root.event_id)
    help_text = await d.team.wait_for_message(
        d.room_id, lambda m: m.body.startswith("Commands"), timeout=30
    )
    for usage in (
        "!help [command]",
        "!ack [CVD-YYYY-NNNN]",
        "!assess [CVD-YYYY-NNNN] <none|low|medium|high|critical> [CVSS vector] [text]",
        "!fixed [CVD-YYYY-NNNN] [text]",
        "!status [CVD-YYYY-NNNN]",
    ):
        assert usage in help_text.body

    await d.team.send(d.room_id, "!assess urgent", thread_root=root.event_id)
    usage = await wait_in_thread(d.team, d.room_id, root, "Usage: !assess")
    assert "severity must be one of" in usage.body
    await d.team.send(d.room_id, "!fixed", thread_root=root.event_id)
    await wait_in_thread(d.team, d.room_id, root, "run !ack and !assess first")
    await wait_quiescent(d.db_path)
    assert d.smtp.messages == []


async def test_crash_after_intake_and_after_command_restart_once(
    make_deployment: MakeDeployment,
) -> None:
    d = await make_deployment()
    bot = d.start_bot(failpoints="intake.after_commit")
    device_before = (d.store_path / "session.json").read_text()
    d.append_mail(report(subject="SQL injection in the form", body=ENGLISH_BODY))
    assert bot.wait_exit(timeout=60) == -9, "killed right after storing the report"
    assert db_rows(d, "SELECT COUNT(*) FROM cases") == [(1,)]
    assert db_rows(d, "SELECT COUNT(*) FROM outbox WHERE state = 'sent'") == [(0,)]

    d.start_bot(failpoints="command.after_commit")
    root = await wait_root(d.team, d.room_id, "SQL injection in the form")
    await d.team.send(d.room_id, "!ack", thread_root=root.event_id)
    assert bot.wait_exit(timeout=60) == -9, "killed right after accepting the command"
    assert d.smtp.messages == []

    d.start_bot()
    await wait_in_thread(d.team, d.room_id, root, "acknowledged by")
    await d.smtp.wait_for_async(1, timeout=30)
    await wait_quiescent_and_seen(d.db_path, d.team, d.room_id)
    assert len(d.smtp.messages) == 1
    roots = [m for m in d.team.messages(d.room_id) if "New report" in m.body]
    assert len(roots) == 1
    assert count_in_thread(d.team, d.room_id, root, "acknowledged by") == 1
    assert count_in_thread(d.team, d.room_id, root, "The report:") == 1
    assert (d.store_path / "session.json").read_text() == device_before
    devices = d.bot_devices()
    assert len(devices) == 1, f"restarts reuse the one device: {devices}"


async def test_smtp_down_mail_goes_out_once_when_back(make_deployment: MakeDeployment) -> None:
    d = await make_deployment()
    d.start_bot()
    d.append_mail(report(subject="Weak TLS on the mail gateway", body=ENGLISH_BODY))
    root = await wait_root(d.team, d.room_id, "Weak TLS on the mail gateway")
    d.smtp.stop()
    await d.team.send(d.room_id, "!ack", thread_root=root.event_id)
    await wait_in_thread(d.team, d.room_id, root, "could not be sent yet")
    await wait_mail_attempts(d, 2)  # its first retry failed too
    d.smtp.start()
    await d.smtp.wait_for_async(1, timeout=90)
    went = "receipt confirmation mail went to eva@researcher.example"
    await wait_in_thread(d.team, d.room_id, root, went)
    await wait_quiescent_and_seen(d.db_path, d.team, d.room_id)
    assert len(d.smtp.messages) == 1
    assert count_in_thread(d.team, d.room_id, root, "could not be sent yet") == 1
    assert count_in_thread(d.team, d.room_id, root, went) == 1
    assert count_in_thread(d.team, d.room_id, root, "acknowledged by") == 1


async def test_refuses_an_unencrypted_case_room(make_deployment: MakeDeployment) -> None:
    d = await make_deployment(encrypted=False)
    bot = d.start_bot(wait=False)
    assert bot.wait_exit(timeout=60) == 78
    assert "is not end-to-end encrypted" in bot.log_since_start()


async def test_graceful_stop_keeps_the_device(make_deployment: MakeDeployment) -> None:
    d = await make_deployment()
    bot = d.start_bot()
    assert bot.stop() == 0
    d.start_bot()
    assert len(d.bot_devices()) == 1


async def test_anonymous_report_gets_no_mail_and_the_thread_says_so(
    make_deployment: MakeDeployment,
) -> None:
    d = await make_deployment()
    d.start_bot()
    raw = report(subject="Anonymous tip: open admin panel", body=ENGLISH_BODY)
    message = message_from_bytes(raw, policy=policy.default)
    del message["From"]
    d.append_mail(message.as_bytes())
    root = await wait_root(d.team, d.room_id, "Anonymous tip: open admin panel")
    assert "Reporter: anonymous" in root.body
    await d.team.send(d.room_id, "!ack", thread_root=root.event_id)
    reply = await wait_in_thread(d.team, d.room_id, root, "acknowledged by")
    assert "No receipt confirmation mail: the reporter left no address" in reply.body
    await wait_quiescent_and_seen(d.db_path, d.team, d.room_id)
    assert d.smtp.messages == []
    assert db_rows(d, "SELECT COUNT(*) FROM outbox WHERE channel = 'mail'") == [(0,)]
    assert count_in_thread(d.team, d.room_id, root, "acknowledged by") == 1
