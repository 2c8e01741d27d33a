"""The outbox's mail channel: seals a queued mail before its first send, stores the sealed
bytes once, and hands exactly those bytes to SMTP on every attempt.

Sealing (gpg) runs here, outside any database transaction, rather than in the command that
queued the mail: a slow gpg-agent then delays only this mail, not intake or the room. A
crash after sealing but before storing seals again (nothing was sent); a crash after storing
sends the stored bytes, so a reporter never receives two different messages.
"""

from __future__ import annotations

import logging
from datetime import datetime

import aiosqlite

from bot.mailout.reporter import SmtpDeliveryError, SmtpSender
from bot.mailout.sealing import recipient_key, seal
from bot.matrix.posts import Post, post_to_case
from bot.outbox.payloads import Mail, Payload, PayloadError, decode, encode
from bot.outbox.worker import DeliveryError
from bot.pgp.gpg import Pgp, PgpError
from storage import mails, outbox
from storage.db import Database
from storage.outbox import OutboxItem

log = logging.getLogger(__name__)


def _mail(payload: Payload) -> Mail:
    if not isinstance(payload, Mail):
        raise DeliveryError(f"a {type(payload).__name__} is not a mail", retryable=False)
    return payload


class MailHandler:
    def __init__(self, smtp: SmtpSender, db: Database, pgp: Pgp) -> None:
        self._smtp = smtp
        self._db = db
        self._pgp = pgp

    def ready(self) -> bool:
        return True

    async def prepare(self, item: OutboxItem, payload: Payload) -> Payload:
        """The mail as it is to be sent: sealed and stored now, if it was not before."""
        mail = _mail(payload)
        if mail.sealed is not None:
            return mail
        assert mail.composed is not None
        message = mail.composed.to_message()
        try:
            # A mail bound to a key (the IBD's) is encrypted to it or not sent at all.
            key = mail.encrypt_to or await recipient_key(self._pgp, self._db, mail.to_address)
            sealed = await seal(self._pgp, message, key, hidden_subject=mail.hidden_subject)
        except PgpError as exc:
            # Retried: a gpg-agent that was slow or restarting is the usual cause.
            raise DeliveryError(f"the mail could not be signed: {exc}", retryable=True) from exc
        done = mail.with_sealed(sealed)
        async with self._db.transaction() as conn:
            if await outbox.replace_payload(conn, item.id, old=item.payload, new=encode(done)):
                await mails.seal_outgoing(conn, done.message_id, sealed.raw)
                return done
            stored = await outbox.get(conn, item.id)
        # Sealed and stored by someone else in the meantime: those bytes are the ones to send.
        try:
            again = _mail(decode(stored.payload)) if stored is not None else None
        except PayloadError as exc:
            raise DeliveryError(
                f"the stored mail became unreadable: {exc}", retryable=False
            ) from exc
        if again is None or again.sealed is None:
            raise DeliveryError("the queued mail changed while it was sealed", retryable=True)
        return again

    async def send(self, item: OutboxItem, payload: Payload) -> str:
        mail = _mail(payload)
        if mail.sealed is None:
            raise DeliveryError("internal error: an unsealed mail reached SMTP", retryable=True)
        try:
            await self._smtp.deliver(mail.from_address, mail.to_address, mail.sealed.raw)
        except SmtpDeliveryError as exc:
            raise DeliveryError(str(exc), retryable=exc.retryable) from exc
        return mail.message_id

    async def after_sent(
        self,
        conn: aiosqlite.Connection,
        item: OutboxItem,
        payload: Payload,
        result: str,
        now: datetime,
    ) -> None:
        mail = _mail(payload)
        if item.case_id is None or mail.sealed is None:
            return
        text = f"✉️ The {mail.label} mail went to {mail.to_address} ({mail.sealed.protection})."
        await post_to_case(conn, item.case_id, Post.text(text), idem_key=f"sent:{item.id}", now=now)

    async def after_failure(
        self,
        conn: aiosqlite.Connection,
        item: OutboxItem,
        payload: Payload,
        error: DeliveryError,
        now: datetime,
    ) -> None:
        log.warning(
            "mail %s not delivered (attempt %d): %s",
            item.id,
            item.attempts + 1,
            type(error.__cause__).__name__ if error.__cause__ else "error",
        )
        if item.case_id is None or not isinstance(payload, Mail):
            return
        label = payload.label
        if not error.retryable:
            text = f"❌ The {label} mail could not be delivered and will not be retried: {error}"
            key = f"mail-failed:{item.id}"
        elif item.attempts == 0:
            text = (
                f"⏳ The {label} mail could not be sent yet ({error}). It stays queued, is "
                "retried, and goes out once, as soon as it can be sent."
            )
            key = f"mail-delayed:{item.id}"
        else:
            return
        await post_to_case(conn, item.case_id, Post.text(text), idem_key=key, now=now)
