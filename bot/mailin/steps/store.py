"""Intake step "store": the mail itself, whole, the reporter keys it brought, and the hosts
and URLs it names.

Everything here runs inside the intake's one transaction, together with the posts the mail
causes, so a crash stores either all of it or nothing.
"""

from __future__ import annotations

import aiosqlite

from bot.mailin.report_check import Targets, extract_targets
from bot.mailin.steps.incoming import IncomingMail, IntakeSetup
from storage import case_intake, mails


async def store_targets(
    conn: aiosqlite.Connection,
    setup: IntakeSetup,
    mail: IncomingMail,
    case_id: str,
    mail_id: int,
    *,
    text: str,
    reporter: str | None,
) -> Targets:
    """Remember the hosts and URLs a mail names (not our own or the reporter's domains)."""
    targets = extract_targets(text, ignore_domains=setup.ignored_domains(mail.parsed, reporter))
    await case_intake.add_targets(
        conn, case_id, hosts=targets.hosts, urls=targets.urls, mail_id=mail_id
    )
    return targets


async def store_mail(
    conn: aiosqlite.Connection,
    setup: IntakeSetup,
    mail: IncomingMail,
    case_id: str | None,
    language: str | None = None,
) -> int:
    """Store the raw mail with what was read from it; its new id."""
    parsed = mail.parsed
    return await mails.insert_mail(
        conn,
        direction="in",
        message_id=parsed.message_id,
        case_id=case_id,
        source=mail.source,
        raw=mail.raw,
        subject=mail.subject,
        from_address=parsed.from_address,
        to_address=", ".join(parsed.to) or None,
        sent_date=parsed.date.isoformat() if parsed.date else None,
        stored_at=setup.clock.now().isoformat(),
        language=language,
        is_automatic=parsed.is_automatic,
        problems=mail.notes,
        thread_ids=mail.thread_ids,
        received_at=(mail.received_at or setup.clock.now()).isoformat(),
        automatic_reason=parsed.automatic_reason,
    )
