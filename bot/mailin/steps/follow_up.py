"""Intake steps for mail about a known case: a follow-up from a person (posted without its
quoted history, and checked for what it adds), or an automatic mail (posted briefly)."""

from __future__ import annotations

from datetime import datetime

import aiosqlite

from bot.mailin.bounces import delivery_summary
from bot.mailin.intake_posts import (
    AUTOMATIC_MAIL,
    NOT_FROM_REPORTER,
    UNSORTED_MAIL,
    check_lines,
    intake_check,
    mail_post,
)
from bot.mailin.quoting import strip_quoted
from bot.mailin.report_check import Evidence, check_report
from bot.mailin.steps.incoming import MAX_CASE_SUBJECT, IncomingMail, IntakeSetup
from bot.mailin.steps.key_trust import record_keys, signature_trust
from bot.mailin.steps.queue_attachments import queue_attachments
from bot.mailin.steps.store import store_mail, store_targets
from bot.matrix.posts import post_to_case
from bot.outbox import payloads
from bot.policy.lifecycle import Case
from bot.text import shorten
from storage import case_events, case_intake, cases

# Automatic mail is shown briefly: it is noise that only sometimes matters.
_MAX_AUTOMATIC_CHARS = 1500


async def store_follow_up(
    conn: aiosqlite.Connection,
    setup: IntakeSetup,
    mail: IncomingMail,
    case_id: str,
    now: datetime,
) -> tuple[Case, int]:
    """Store the mail in its case and note it in the audit log; (the case, the mail id)."""
    case = await cases.get_case(conn, case_id)
    assert case is not None
    mail_id = await store_mail(conn, setup, mail, case_id)
    await case_events.record(
        conn,
        case_id,
        actor=mail.actor,
        kind="follow_up",
        at=now,
        data={"mail_id": mail_id, "automatic": mail.parsed.is_automatic},
    )
    return case, mail_id


async def follow_up(
    conn: aiosqlite.Connection, setup: IntakeSetup, mail: IncomingMail, case_id: str
) -> int:
    """Store a person's mail about a case and queue its posts; the mail id."""
    now = setup.clock.now()
    case, mail_id = await store_follow_up(conn, setup, mail, case_id, now)
    parsed = mail.parsed
    sender = parsed.from_address or "an unknown sender"
    warnings = list(mail.notes)
    # From only: a Reply-To naming the reporter is as easy to forge as any header.
    from_reporter = case.reporter_address == parsed.from_address
    if case.reporter_address and not from_reporter:
        warnings.append(f"{NOT_FROM_REPORTER} ({case.reporter_address}).")
    stripped = strip_quoted(mail.text)
    await signature_trust(conn, mail)
    post = mail_post(
        f"📨 Follow-up mail from {sender}: {shorten(mail.subject, MAX_CASE_SUBJECT)}",
        stripped.text,
        max_chars=setup.max_body_chars,
        info=mail.protection_lines(),
        warnings=warnings,
        quotes_hidden=stripped.removed,
    )
    await post_to_case(conn, case_id, post, idem_key=f"mail-in:{mail_id}", now=now)
    lines = await record_keys(conn, setup, case_id, mail_id, mail, now)
    if mail.encryption != "failed":
        lines += await recheck(conn, setup, case, mail_id, stripped.text, mail)
    if lines:
        await post_to_case(
            conn, case_id, intake_check(lines), idem_key=f"intake-check:{mail_id}", now=now
        )
    await queue_attachments(conn, setup, case_id, mail_id, mail, now)
    return mail_id


async def recheck(
    conn: aiosqlite.Connection,
    setup: IntakeSetup,
    case: Case,
    mail_id: int,
    text: str,
    mail: IncomingMail,
) -> list[str]:
    """What a follow-up adds: its hosts, and what it supplies of the missing details."""
    await store_targets(
        conn,
        setup,
        mail,
        case.id,
        mail_id,
        text=f"{mail.subject}\n{text}",
        reporter=case.reporter_address,
    )
    record = await case_intake.get_case_intake(conn, case.id)
    if record is None or record.has_contact is None:
        return []
    before = Evidence(
        bool(record.has_contact), bool(record.has_target), bool(record.has_description)
    )
    if not before.missing:
        return []
    now_known = before.merged(
        check_report(
            text,
            reporter_address=case.reporter_address,
            ignore_addresses=[setup.own_address],
        )
    )
    if now_known == before:
        return []
    await case_intake.update_evidence(
        conn,
        case.id,
        has_contact=now_known.contact,
        has_target=now_known.target,
        has_description=now_known.description,
    )
    if now_known.missing == before.missing:
        return []
    lines = check_lines(now_known, reachable=case.reporter_address is not None)
    return [f"With this follow-up: {line}" for line in lines]


async def automatic(
    conn: aiosqlite.Connection, setup: IntakeSetup, mail: IncomingMail, case_id: str
) -> int:
    """Store an auto-reply or bounce about a case and post it briefly; the mail id."""
    now = setup.clock.now()
    _, mail_id = await store_follow_up(conn, setup, mail, case_id, now)
    await queue_automatic_post(conn, setup, mail, case_id, mail_id, now)
    return mail_id


async def queue_automatic_post(
    conn: aiosqlite.Connection,
    setup: IntakeSetup,
    mail: IncomingMail,
    case_id: str,
    mail_id: int,
    now: datetime,
) -> None:
    parsed = mail.parsed
    sender = parsed.from_address or "an unknown sender"
    info = []
    summary = delivery_summary(mail.payloads)
    if summary:
        info.append(f"Delivery report: {summary}")
    post = mail_post(
        f"🤖 {AUTOMATIC_MAIL} ({parsed.automatic_reason}) from {sender}: "
        f"{shorten(mail.subject, MAX_CASE_SUBJECT)}",
        strip_quoted(mail.text).text,
        max_chars=min(_MAX_AUTOMATIC_CHARS, setup.max_body_chars),
        info=info,
    )
    await post_to_case(conn, case_id, post, idem_key=f"mail-in:{mail_id}", now=now)


async def unsorted(conn: aiosqlite.Connection, setup: IntakeSetup, mail: IncomingMail) -> int:
    """Store automatic or list mail that matched no case and show it in the unsorted thread,
    so a first report from a list, a platform or a web form is never silently dropped."""
    now = setup.clock.now()
    mail_id = await store_mail(conn, setup, mail, None)
    parsed = mail.parsed
    sender = parsed.from_address or "an unknown sender"
    post = mail_post(
        f"📥 {UNSORTED_MAIL} {mail_id} from {sender}: {shorten(mail.subject, MAX_CASE_SUBJECT)}",
        strip_quoted(mail.text).text,
        max_chars=min(_MAX_AUTOMATIC_CHARS, setup.max_body_chars),
        info=[
            f"It looked automatic: {parsed.automatic_reason}.",
            f"Send !open {mail_id} to open a case for it (its clock starts at its receipt).",
        ],
    )
    await payloads.enqueue(
        conn,
        payloads.UnsortedPost(post.body, post.html),
        idem_key=f"unsorted:{mail_id}",
        case_id=None,
        now=now,
    )
    return mail_id
