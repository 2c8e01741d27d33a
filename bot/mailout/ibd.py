"""The mail that shares a case with the IBD (Informatiebeveiligingsdienst voor gemeenten), as
the policy promises for every report: Dutch, with the TLP label in subject and body.

The outer Subject is a fixed phrase with the case tag and the label, never the report's
subject; the mail is encrypted to the IBD's configured key (`Mail.encrypt_to`) and signed,
by the outbox, exactly once. The reporter's name and address are in it only with their
consent (`!consent share-contact yes`).
"""

from __future__ import annotations

import email.policy
import email.utils
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage

import aiosqlite
import jinja2

from bot.advisory.cvss_metrics import cvss3_score
from bot.config import Config
from bot.mailout.compose import (
    DEFAULT_ORGANISATION,
    ComposedMail,
    clean_text,
    format_datetime,
    new_message_id,
)
from bot.outbox import payloads
from bot.policy.decisions import Decisions
from bot.policy.lifecycle import Case
from storage import case_intake, mails

SUBJECT_SHARE = "Melding kwetsbaarheid voor de IBD"
SUBJECT_UPDATE = "Update melding kwetsbaarheid voor de IBD"

# FIRST TLP 2.0, in the words of the Dutch translation.
TLP_MEANING = {
    "TLP:RED": "alleen voor de ontvangers persoonlijk, niet verder delen.",
    "TLP:AMBER+STRICT": "alleen binnen de eigen organisatie delen, met wie het nodig heeft.",
    "TLP:AMBER": "binnen de eigen organisatie en met haar klanten delen, met wie het nodig heeft.",
    "TLP:GREEN": "binnen de eigen gemeenschap delen, niet openbaar.",
    "TLP:CLEAR": "mag openbaar worden gedeeld.",
}


@dataclass(frozen=True)
class IbdMail:
    message: EmailMessage
    subject: str


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("bot.mailout", "templates"),
        autoescape=False,  # noqa: S701 - plain-text mail, never HTML
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=lambda value: clean_text(value) if isinstance(value, str) else value,
    )


def render_ibd_body(
    case: Case,
    d: Decisions,
    *,
    tlp: str,
    hosts: list[str],
    urls: list[str],
    timezone: str,
    update: bool,
) -> str:
    def when(moment: datetime | None) -> str | None:
        return format_datetime(moment, "nl", timezone) if moment else None

    score = cvss3_score(case.cvss_vector)
    cvss = None
    if score is not None:
        cvss = f"{score.base_score} ({score.severity}), {score.vector}"
    elif case.cvss_vector:
        cvss = case.cvss_vector
    reporter = None
    if d.share_contact and case.reporter_address:
        reporter = case.reporter_display
    outcome = None
    if case.outcome:
        outcome = case.outcome + (f" ({case.outcome_reason})" if case.outcome_reason else "")
    body = (
        _environment()
        .get_template("ibd.txt")
        .render(
            tlp=tlp,
            tlp_meaning=TLP_MEANING[tlp],
            update=update,
            shared_at=when(d.ibd_shared_at),
            case_id=case.id,
            organisation=DEFAULT_ORGANISATION["nl"],
            state=case.state_text,
            received_at=when(case.received_at),
            acknowledged_at=when(case.acknowledged_at),
            assessed_at=when(case.assessed_at),
            fixed_at=when(case.fixed_at),
            severity=case.severity,
            cvss=cvss,
            outcome=outcome,
            hosts=hosts,
            urls=urls,
            description=case.assessment_text,
            fix=case.fix_text,
            reporter=reporter,
        )
    )
    return "\n".join(line.rstrip() for line in body.strip("\n").split("\n")) + "\n"


def build_ibd_mail(
    case: Case,
    d: Decisions,
    *,
    tlp: str,
    hosts: list[str],
    urls: list[str],
    timezone: str,
    update: bool,
    from_address: str,
    to_address: str,
    message_id: str,
    date: datetime,
) -> IbdMail:
    phrase = SUBJECT_UPDATE if update else SUBJECT_SHARE
    subject = f"[{case.id}] {phrase} {tlp}"
    body = render_ibd_body(
        case, d, tlp=tlp, hosts=hosts, urls=urls, timezone=timezone, update=update
    )
    message = EmailMessage(policy=email.policy.default)
    message["From"] = from_address
    message["To"] = to_address
    message["Subject"] = subject
    message["Date"] = email.utils.format_datetime(date)
    message["Message-ID"] = message_id
    message.set_content(body, subtype="plain", charset="utf-8", cte="quoted-printable")
    message["Content-Language"] = "nl"
    return IbdMail(message, subject)


async def queue_ibd_mail(
    conn: aiosqlite.Connection,
    config: Config,
    case: Case,
    d: Decisions,
    *,
    tlp: str,
    update: bool,
    idem_key: str,
    now: datetime,
) -> str:
    """Store and queue the IBD mail in the caller's transaction; the thread note."""
    if config.ibd is None:
        raise ValueError("the ibd section is not configured")
    hosts, urls = await case_intake.targets_of(conn, case.id)
    message_id = new_message_id(config.smtp.from_domain)
    mail = build_ibd_mail(
        case,
        d,
        tlp=tlp,
        hosts=hosts,
        urls=urls,
        timezone=config.policy.timezone,
        update=update,
        from_address=config.smtp.from_address,
        to_address=config.ibd.email,
        message_id=message_id,
        date=now,
    )
    await mails.insert_mail(
        conn,
        direction="out",
        message_id=message_id,
        case_id=case.id,
        source="outbox",
        raw=mail.message.as_bytes(policy=email.policy.SMTP),
        subject=mail.subject,
        from_address=config.smtp.from_address,
        to_address=config.ibd.email,
        sent_date=now.isoformat(),
        stored_at=now.isoformat(),
        language="nl",
        thread_ids=[],
    )
    label = "IBD update" if update else "IBD share"
    payload = payloads.Mail(
        kind="ibd",
        label=label,
        from_address=config.smtp.from_address,
        to_address=config.ibd.email,
        message_id=message_id,
        composed=ComposedMail.of(mail.message),
        encrypt_to=config.ibd.key_fingerprint,
    )
    await payloads.enqueue(conn, payload, idem_key=idem_key, case_id=case.id, now=now)
    return f"The {label} mail ({tlp}, PGP-encrypted to the IBD's key) is queued."
