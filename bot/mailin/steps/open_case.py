"""Intake steps for a new report: whose report it is (the sender's own, or forwarded), the
case with its deadlines, what intake records beside it, and the posts that open its thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import aiosqlite

from bot.mailin.forwarded import ForwardedReport
from bot.mailin.intake_posts import (
    check_lines,
    forwarded_line,
    intake_check,
    mail_post,
    related_lines,
)
from bot.mailin.language import detect_language
from bot.mailin.report_check import (
    Evidence,
    check_report,
    is_no_reply,
    reachable_address,
)
from bot.mailin.steps.incoming import MAX_CASE_SUBJECT, IncomingMail, IntakeSetup
from bot.mailin.steps.key_trust import record_keys, signature_trust
from bot.mailin.steps.queue_attachments import queue_attachments
from bot.mailin.steps.store import store_mail, store_targets
from bot.matrix import render
from bot.matrix.posts import Post, post_case_root, post_to_case
from bot.policy.lifecycle import Case, CaseState
from bot.policy.promises import promise_days
from bot.policy.workdays import case_deadlines
from bot.text import shorten
from storage import case_events, case_intake, cases, mails
from storage.case_intake import RelatedCase

_MAX_NAME = 120
_MAX_NOTE_CHARS = 1500
# A note back only to the most recent related cases: with every open case notified, n reports
# about one host would post n²/2 notes and bury the threads.
_MAX_BACK_NOTES = 3


@dataclass(frozen=True)
class Report:
    """What was reported and by whom: for a forward, the original sender's report."""

    text: str
    subject: str
    reporter: str | None  # an address we may write to, or None (anonymous)
    reporter_name: str | None
    forwarded: ForwardedReport | None


@dataclass(frozen=True)
class OpenedCase:
    """A case just stored, with what its first posts need."""

    case: Case
    report: Report
    mail_id: int
    evidence: Evidence | None  # None: not checked (the report could not be decrypted)
    related: list[RelatedCase]
    key_lines: list[str]
    now: datetime


def whose_report(mail: IncomingMail) -> Report:
    """The report in this mail and its reporter, unwrapping a forward."""
    forwarded = mail.forwarded
    if forwarded is not None:
        return Report(
            text=forwarded.text,
            subject=forwarded.subject or mail.subject,
            reporter=reachable_address(forwarded.reporter_address),
            reporter_name=forwarded.reporter_name,
            forwarded=forwarded,
        )
    parsed = mail.parsed
    reporter = reachable_address(parsed.reply_to, parsed.from_address)
    # A no-reply sender's display name is the form's or the platform's, not a person's.
    sender_is_person = parsed.from_address is not None and not is_no_reply(parsed.from_address)
    return Report(
        text=mail.text,
        subject=mail.subject,
        reporter=reporter,
        reporter_name=parsed.from_name if reporter and sender_is_person else None,
        forwarded=None,
    )


async def open_case(
    conn: aiosqlite.Connection,
    setup: IntakeSetup,
    mail: IncomingMail,
    stored_mail_id: int | None = None,
) -> OpenedCase:
    """Store the mail as a new case's report, with everything intake learnt about it.
    `stored_mail_id`: the mail is stored already (an unsorted mail that `!open` opens)."""
    now = setup.clock.now()
    report = whose_report(mail)
    case, mail_id = await create_case(conn, setup, mail, report, now, stored_mail_id)
    evidence = await record_intake_check(conn, setup, mail, case.id, report)
    related = await record_targets(conn, setup, mail, case.id, report, mail_id)
    await record_opening(conn, mail, case.id, mail_id, evidence, related, now)
    await signature_trust(conn, mail)
    key_lines = await record_keys(conn, setup, case.id, mail_id, mail, now)
    return OpenedCase(case, report, mail_id, evidence, related, key_lines, now)


async def create_case(
    conn: aiosqlite.Connection,
    setup: IntakeSetup,
    mail: IncomingMail,
    report: Report,
    now: datetime,
    stored_mail_id: int | None = None,
) -> tuple[Case, int]:
    """A new case ID, the deadlines counted from receipt, the mail stored as its report."""
    policy = setup.config.policy
    # Never in the future: a mailbox clock ahead of ours must not push deadlines later.
    received = min(mail.received_at, now) if mail.received_at else now
    year = received.astimezone(setup.tz).year
    case_id, seq = await cases.allocate_case_id(conn, year)
    language = detect_language(report.text, default=policy.default_language)
    deadlines = case_deadlines(setup.calendar, received, promise_days(policy))
    if stored_mail_id is None:
        mail_id = await store_mail(conn, setup, mail, case_id=None, language=language)
    else:
        mail_id = stored_mail_id
    case = Case(
        id=case_id,
        state=CaseState.NEW,
        subject=shorten(report.subject, MAX_CASE_SUBJECT),
        reporter_address=report.reporter,
        reporter_name=shorten(report.reporter_name, _MAX_NAME) if report.reporter_name else None,
        language=language,
        received_at=received,
        **deadlines.case_fields(),
        report_mail_id=mail_id,
        imported_at=now if mail.imported else None,
    )
    await cases.insert_case(conn, case, year, seq, now.isoformat())
    await mails.set_case(conn, mail_id, case_id)
    return case, mail_id


async def record_intake_check(
    conn: aiosqlite.Connection,
    setup: IntakeSetup,
    mail: IncomingMail,
    case_id: str,
    report: Report,
) -> Evidence | None:
    """How the report came in and what the policy's requirements check found in it."""
    evidence = None
    if mail.encryption != "failed":
        evidence = check_report(
            f"{report.subject}\n{report.text}",
            reporter_address=report.reporter,
            ignore_addresses=[setup.own_address],
        )
    forwarded, signature = report.forwarded, mail.signature
    await case_intake.record_case_intake(
        conn,
        case_intake.CaseIntake(
            case_id=case_id,
            forwarded_by=mail.sender if forwarded else None,
            forward_style=forwarded.style if forwarded else None,
            encryption=mail.encryption,
            signature_status=signature.status if signature else None,
            signature_fingerprint=signature.fingerprint if signature else None,
            has_contact=evidence.contact if evidence else None,
            has_target=evidence.target if evidence else None,
            has_description=evidence.description if evidence else None,
        ),
    )
    return evidence


async def record_targets(
    conn: aiosqlite.Connection,
    setup: IntakeSetup,
    mail: IncomingMail,
    case_id: str,
    report: Report,
    mail_id: int,
) -> list[RelatedCase]:
    """Remember the hosts and URLs the report names; the open cases that name them too."""
    targets = await store_targets(
        conn,
        setup,
        mail,
        case_id,
        mail_id,
        text=f"{report.subject}\n{report.text}",
        reporter=report.reporter,
    )
    return await case_intake.related_open_cases(conn, case_id, targets.hosts)


async def record_opening(
    conn: aiosqlite.Connection,
    mail: IncomingMail,
    case_id: str,
    mail_id: int,
    evidence: Evidence | None,
    related: list[RelatedCase],
    now: datetime,
) -> None:
    """The audit log's first entries: opened, and forwarded when it was."""
    forwarded = mail.forwarded
    await case_events.record(
        conn,
        case_id,
        actor=mail.actor,
        kind="opened",
        at=now,
        data={
            "mail_id": mail_id,
            "source": mail.source,
            "forwarded_by": mail.sender if forwarded else None,
            "encryption": mail.encryption,
            "signature": mail.signature.status if mail.signature else None,
            "missing": evidence.missing if evidence else None,
            "related": [item.case_id for item in related],
        },
    )
    if forwarded is not None:
        await case_events.record(
            conn,
            case_id,
            actor=mail.actor,
            kind="forwarded",
            at=now,
            data={"forwarded_by": mail.sender, "style": forwarded.style},
        )


async def queue_new_case_posts(
    conn: aiosqlite.Connection, setup: IntakeSetup, mail: IncomingMail, opened: OpenedCase
) -> None:
    """The thread's root, the report, the intake check, notes in related cases, attachments."""
    case_id, mail_id, now = opened.case.id, opened.mail_id, opened.now
    report, forwarded = opened.report, opened.report.forwarded
    sender = mail.sender
    details: list[str] = []
    if forwarded is not None:
        details.append(forwarded_line(sender, forwarded.style, bool(forwarded.note)))
        if report.reporter is None:
            who = forwarded.reporter_name or "the original sender"
            details.append(f"The forwarded mail gives no address for {who}.")
    details += mail.protection_lines()
    if mail.imported:
        details.append(
            "📥 Imported from the mailbox's backlog on the first start: deadlines that had "
            "passed by then get no warnings."
        )
    if mail.mentioned_cases:
        named = ", ".join(mail.mentioned_cases[:5])
        details.append(f"Mentions {named}: a new case, not a follow-up (no [CVD-…] tag, no reply).")
    await post_case_root(
        conn, case_id, render.case_root(opened.case, setup.tz, mail.notes, details), now=now
    )
    shown = report.text
    if forwarded is not None and forwarded.note:
        note = shorten(forwarded.note, _MAX_NOTE_CHARS)
        shown = f"{report.text}\n\n[Note from {sender or 'the forwarder'}: {note}]"
    excerpt = mail_post("📨 The report:", shown, max_chars=setup.max_body_chars)
    await post_to_case(conn, case_id, excerpt, idem_key=f"mail-in:{mail_id}", now=now)

    lines = check_lines(opened.evidence, reachable=report.reporter is not None)
    lines += related_lines(opened.related)
    lines += opened.key_lines
    await post_to_case(
        conn, case_id, intake_check(lines), idem_key=f"intake-check:{mail_id}", now=now
    )
    for item in opened.related[-_MAX_BACK_NOTES:]:
        await post_to_case(
            conn,
            item.case_id,
            Post.text(
                f"🔗 A new report, {case_id}, is possibly related to this case "
                f"(both name {', '.join(item.shared[:5])})."
            ),
            idem_key=f"related:{case_id}:{item.case_id}",
            now=now,
        )
    await queue_attachments(conn, setup, case_id, mail_id, mail, now)
