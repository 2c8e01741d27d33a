"""Mail to reporters: rendered from the templates, stored and queued in the outbox when the
team's command is accepted; the SMTP sender delivers the queue.

Queuing runs inside the command's transaction, so it never calls gpg: the outbox worker signs
(and encrypts when it holds the reporter's key) before the first send, stores those bytes
once, and sends the same bytes with the same Message-ID on every retry
(bot/outbox/mail_channel.py).
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from email import policy
from typing import Literal

import aiosmtplib
import aiosqlite

from bot.config import Config
from bot.mailout.compose import (
    ComposedMail,
    MailKind,
    ReporterMailContext,
    build_reporter_mail,
    fixed_subject,
    new_message_id,
    render_reporter_mail,
)
from bot.mailout.sealing import outer_subject
from bot.outbox import payloads
from bot.policy.lifecycle import Case
from storage import case_intake, mails, next_checks

log = logging.getLogger(__name__)

KIND_LABELS: dict[str, str] = {
    "ack": "receipt confirmation",
    "assessment": "assessment",
    "fixed": "fix notice",
    "more_info": "request for more information",
    "rejected": "rejection",
    "duplicate": "duplicate notice",
    "withdrawn": "withdrawal confirmation",
    "closing": "closing notice",
    "reward": "reward approval",
    "publication": "publication proposal",
    "reply": "reply",
    "update": "progress update",
}


@dataclass(frozen=True)
class RenderedMail:
    """A reporter mail's words as the reporter will read them (what `!reply` previews)."""

    language: Literal["nl", "en"]
    subject: str
    body: str


@dataclass(frozen=True)
class QueuedMail:
    note: str  # what the thread is told
    queued: bool


class ReporterMailer:
    def __init__(self, config: Config) -> None:
        self._config = config

    def _context(
        self,
        case: Case,
        kind: MailKind,
        text: str | None,
        *,
        duplicate_of: str | None = None,
        publish_date: date | None = None,
    ) -> ReporterMailContext:
        return ReporterMailContext(
            case_id=case.id,
            report_subject=case.subject,
            reporter_name=case.reporter_name,
            received_at=case.received_at,
            assess_due=case.assess_due,
            fix_due=case.fix_due,
            timezone=self._config.policy.timezone,
            severity=case.severity,
            cvss_vector=case.cvss_vector,
            text=text,
            assess_within_working_days=self._config.policy.assess_within_working_days,
            fix_within_days=self._config.policy.fix_within_days,
            reject_reason=case.outcome_reason if kind == "rejected" else None,
            duplicate_of=duplicate_of,
            delete_after=case.delete_after,
            held=case.hold_reason is not None,
            publish_date=publish_date,
            is_fixed=case.fixed_at is not None,
        )

    def render(self, case: Case, kind: MailKind, *, text: str | None = None) -> RenderedMail:
        """The subject and body `enqueue` would send now, in the case's language."""
        language = language_of(case)
        subject, body = render_reporter_mail(kind, language, self._context(case, kind, text))
        return RenderedMail(language, subject, body)

    async def enqueue(
        self,
        conn: aiosqlite.Connection,
        case: Case,
        kind: MailKind,
        *,
        idem_key: str,
        now: datetime,
        text: str | None = None,
        rendered: RenderedMail | None = None,
        duplicate_of: str | None = None,
        publish_date: date | None = None,
    ) -> QueuedMail:
        """Build, store and queue one reporter mail, unsealed. `text`: the team's words for
        this mail (what `!ask` asks); default: the case's fix text or assessment text.
        `rendered`: send exactly these words (a `!reply` preview) instead of rendering.
        `duplicate_of`: the earlier case a duplicate mail may name (the same reporter's)."""
        label = KIND_LABELS[kind]
        if text is None and kind in ("assessment", "fixed"):
            text = case.fix_text if kind == "fixed" else case.assessment_text
        if case.reporter_address is None:
            return QueuedMail(
                f"No {label} mail: the reporter left no address (anonymous report).", False
            )
        in_reply_to = None
        references: list[str] = []
        if case.report_mail_id is not None:
            references = await mails.references_of(conn, case.report_mail_id)
            in_reply_to = references[-1] if references else None
        language = rendered.language if rendered is not None else language_of(case)
        context = self._context(
            case, kind, text, duplicate_of=duplicate_of, publish_date=publish_date
        )
        message_id = new_message_id(self._config.smtp.from_domain)
        message = build_reporter_mail(
            kind=kind,
            language=language,
            ctx=context,
            from_address=self._config.smtp.from_address,
            to_address=case.reporter_address,
            in_reply_to=in_reply_to,
            references=references,
            message_id=message_id,
            date=now,
            rendered=(rendered.subject, rendered.body) if rendered is not None else None,
        )
        # A report that came encrypted keeps its subject out of every relay's sight.
        intake = await case_intake.get_case_intake(conn, case.id)
        hidden = outer_subject(
            str(message["Subject"]),
            fixed_subject(kind, language, case.id),
            confidential=intake is not None and intake.encryption != "none",
        )
        raw = message.as_bytes(policy=policy.SMTP)
        await mails.insert_mail(
            conn,
            direction="out",
            message_id=message_id,
            case_id=case.id,
            source="outbox",
            raw=raw,
            subject=str(message["Subject"]),
            from_address=self._config.smtp.from_address,
            to_address=case.reporter_address,
            sent_date=now.isoformat(),
            stored_at=now.isoformat(),
            language=language,
            thread_ids=references,
        )
        mail = payloads.Mail(
            kind=kind,
            label=label,
            from_address=self._config.smtp.from_address,
            to_address=case.reporter_address,
            message_id=message_id,
            composed=ComposedMail.of(message),
            hidden_subject=hidden,
        )
        await payloads.enqueue(conn, mail, idem_key=idem_key, case_id=case.id, now=now)
        # A reporter mail begins a new quiet period (bot/policy/update_due.py): the SLA watch
        # looks at the case again and plans its update warning from this mail.
        await next_checks.check_soon(conn, case.id)
        return QueuedMail(f"The {label} mail to the reporter is queued.", True)


def language_of(case: Case) -> Literal["nl", "en"]:
    return "nl" if case.language == "nl" else "en"


class SmtpDeliveryError(Exception):
    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


def retry_delay(attempts: int) -> timedelta:
    """Back off 1, 2, 4 … seconds, at most a minute, so a short outage costs little."""
    return timedelta(seconds=min(2 ** max(attempts, 0), 60))


class SmtpSender:
    def __init__(self, config: Config) -> None:
        self._config = config.smtp

    async def probe(self) -> str:
        """Connect, EHLO, STARTTLS and log in as configured, then QUIT without sending; what
        `cvdbot doctor` checks. Raises SmtpDeliveryError with the reason."""
        smtp = self._config
        client = aiosmtplib.SMTP(
            hostname=smtp.host,
            port=smtp.port,
            use_tls=smtp.security == "tls",
            start_tls=False,
            tls_context=ssl.create_default_context(),
            timeout=15,
        )
        try:
            await client.connect()
            if smtp.security == "starttls":
                await client.starttls()
            await client.ehlo()
            done = [f"EHLO answered by {smtp.host}:{smtp.port}"]
            if smtp.security != "none":
                done.append("TLS")
            if smtp.username and smtp.password:
                await client.login(smtp.username, smtp.password.get_secret_value())
                done.append(f"logged in as {smtp.username}")
            await client.quit()
            return ", ".join(done)
        except aiosmtplib.SMTPException as exc:
            raise SmtpDeliveryError(f"{type(exc).__name__}: {exc}", retryable=True) from exc
        except (OSError, TimeoutError) as exc:
            raise SmtpDeliveryError(f"{type(exc).__name__}: {exc}", retryable=True) from exc
        finally:
            client.close()

    async def deliver(self, sender: str, recipient: str, raw: bytes) -> None:
        smtp = self._config
        tls_context = ssl.create_default_context()
        try:
            await aiosmtplib.send(
                raw,
                sender=sender,
                recipients=[recipient],
                hostname=smtp.host,
                port=smtp.port,
                username=smtp.username,
                password=smtp.password.get_secret_value() if smtp.password else None,
                use_tls=smtp.security == "tls",
                start_tls=True if smtp.security == "starttls" else False,
                tls_context=tls_context,
                timeout=30,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            permanent = all(500 <= error.code < 600 for error in exc.recipients)
            raise SmtpDeliveryError(f"recipient refused: {exc}", retryable=not permanent) from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise SmtpDeliveryError(
                f"SMTP {exc.code}: {exc.message}", retryable=not 500 <= exc.code < 600
            ) from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise SmtpDeliveryError(f"{type(exc).__name__}: {exc}", retryable=True) from exc
