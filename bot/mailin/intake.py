"""Mail intake: one path for every mail, from IMAP or the `cvdbot ingest` pipe.

`MailIntake.ingest` runs the named steps of `bot.mailin.steps` in order: parse -> decrypt and
verify -> classify and match a case -> store -> queue the thread posts. Storing and queueing
happen in one transaction: a crash at any point either stores the mail with everything it
causes or stores nothing, and the same Message-ID seen again is recognised and skipped.
Importing a reporter's key into the gpg home happens just before that transaction; doing it
again after a crash changes nothing.

No mail ever makes the intake send mail: reporter mail only goes out on a team command, so
auto-replies, bounces and list mail cannot start a loop. Mail the bot sent itself (its own
From address or one of its Message-IDs coming back) never opens a case.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import aiosqlite

from bot.config import Config
from bot.failpoints import Failpoints
from bot.mailin.intake_posts import quarantine_notice
from bot.mailin.parse import NotAMailError, parse_mail, peek_sender_and_subject
from bot.mailin.steps.classify import Route, classify, is_own_sender
from bot.mailin.steps.follow_up import automatic, follow_up, unsorted
from bot.mailin.steps.incoming import IncomingMail, IntakeSetup
from bot.mailin.steps.open_case import open_case, queue_new_case_posts
from bot.mailin.steps.store import store_mail
from bot.mailin.steps.unwrap import unwrap
from bot.matrix.posts import post_to_room
from bot.pgp.gpg import Pgp
from bot.policy.clock import Clock
from bot.policy.workdays import WorkingCalendar
from storage import mails, quarantine
from storage.db import Database

log = logging.getLogger(__name__)

# A mail whose intake failed this many times is quarantined rather than read again.
ATTEMPTS = 2


class IntakeOutcome(StrEnum):
    NEW_CASE = "new_case"
    FOLLOW_UP = "follow_up"
    AUTOMATIC = "automatic"  # an auto-reply or bounce posted quietly into its case
    DUPLICATE = "duplicate"
    UNMATCHED_AUTOMATIC = "unmatched_automatic"  # no case: posted in the unsorted thread
    OWN_MAIL = "own_mail"  # the bot's own mail come back: stored, never a case
    QUARANTINED = "quarantined"  # could not be handled: stored raw, the room told why


class IntakeFailed(Exception):
    """One attempt at a mail failed (not for the first time, it is quarantined instead).

    Carries only the exception's type name: its message may quote the mail."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class IntakeResult:
    """What one `ingest` did: the outcome, the case and the stored mail (if any)."""

    outcome: IntakeOutcome
    case_id: str | None
    mail_id: int | None
    detail: str | None = None


class MailIntake:
    """The one entry for incoming mail (IMAP source and `cvdbot ingest`): runs the steps."""

    def __init__(
        self,
        db: Database,
        config: Config,
        calendar: WorkingCalendar,
        pgp: Pgp,
        clock: Clock,
        failpoints: Failpoints,
    ) -> None:
        self._db = db
        self._setup = IntakeSetup(config, calendar, pgp, clock)
        self._pgp = pgp
        self._failpoints = failpoints
        self.on_stored: Callable[[], None] = lambda: None

    async def receive(
        self,
        raw: bytes,
        *,
        source: str,
        received_at: datetime | None = None,
        imap_uid: int | None = None,
        imported: bool = False,
    ) -> IntakeResult:
        """`ingest` under the limits: a mail over `limits.max_mail_bytes`, or one whose
        intake failed (raised, or stopped the process) twice, is quarantined instead.

        Raises NotAMailError for non-mail input, IntakeFailed after a first failure (the
        caller tries again later), and OSError/sqlite3.Error as they come (not counted:
        the disk or database, not the mail, is the problem).
        """
        digest = hashlib.sha256(raw).hexdigest()
        where = f"IMAP UID {imap_uid}" if imap_uid is not None else f"{source} mail"
        limit = self._setup.config.limits.max_mail_bytes
        if len(raw) > limit:
            reason = f"the mail has {len(raw)} bytes, more than limits.max_mail_bytes ({limit})"
            return await self._quarantine(raw, digest, reason, source, received_at, imap_uid)
        async with self._db.transaction() as conn:
            if await quarantine.find(conn, digest) is not None:
                return IntakeResult(IntakeOutcome.QUARANTINED, None, None, "already")
            before = await quarantine.begin_attempt(conn, digest, self._setup.clock.now())
        if before.failed >= ATTEMPTS:
            reason = before.last_error or quarantine.DID_NOT_FINISH
            log.error("%s failed %d times before; quarantined", where, before.failed)
            return await self._quarantine(raw, digest, reason, source, received_at, imap_uid)
        try:
            result = await self.ingest(
                raw, source=source, received_at=received_at, imported=imported
            )
        except (NotAMailError, OSError, sqlite3.Error):
            async with self._db.transaction() as conn:
                await quarantine.finish_attempt(conn, digest)
            raise
        except Exception as exc:
            # Only the type: the exception's text may quote the mail.
            reason = f"reading it raised {type(exc).__name__}"
            async with self._db.transaction() as conn:
                failed = await quarantine.record_failure(
                    conn, digest, reason, self._setup.clock.now()
                )
            log.error("%s: intake failed with %s (attempt %d)", where, type(exc).__name__, failed)
            if failed >= ATTEMPTS:
                return await self._quarantine(raw, digest, reason, source, received_at, imap_uid)
            raise IntakeFailed(type(exc).__name__) from None
        async with self._db.transaction() as conn:
            await quarantine.finish_attempt(conn, digest)
        return result

    async def quarantine(
        self,
        raw: bytes,
        reason: str,
        *,
        source: str,
        received_at: datetime | None = None,
        imap_uid: int | None = None,
    ) -> IntakeResult:
        """Put aside a mail that failed outside the intake (the IMAP source reading it), by
        the same rule as one that failed inside: stored raw, the room told once."""
        digest = hashlib.sha256(raw).hexdigest()
        return await self._quarantine(raw, digest, reason, source, received_at, imap_uid)

    async def unread(self, *, imap_uid: int, uidvalidity: int, reason: str) -> IntakeResult:
        """Record a mail the mail server would not hand out: nothing of it can be stored, so
        the quarantine keeps its place (keyed by UID, not by content) and the room is told
        once where it still is."""
        digest = hashlib.sha256(f"unread IMAP UID {uidvalidity}/{imap_uid}".encode()).hexdigest()
        return await self._quarantine(b"", digest, reason, "imap", None, imap_uid, stored=False)

    async def _quarantine(
        self,
        raw: bytes,
        digest: str,
        reason: str,
        source: str,
        received_at: datetime | None,
        imap_uid: int | None,
        *,
        stored: bool = True,
    ) -> IntakeResult:
        """Store the mail raw, and tell the case room once what was wrong with it."""
        now = self._setup.clock.now()
        sender, subject = peek_sender_and_subject(raw, self._setup.bounds)
        async with self._db.transaction() as conn:
            number, new = await quarantine.put_aside(
                conn,
                digest=digest,
                raw=raw,
                source=source,
                imap_uid=imap_uid,
                reason=reason,
                received_at=received_at,
                now=now,
            )
            if new:
                text = quarantine_notice(
                    number, reason, len(raw), sender, subject, imap_uid, stored=stored
                )
                await post_to_room(
                    conn,
                    self._setup.config.matrix.case_room,
                    text,
                    idem_key=f"quarantine:{number}",
                    now=now,
                )
        log.warning("mail quarantined as #%d (%d bytes): %s", number, len(raw), reason)
        self.on_stored()
        return IntakeResult(IntakeOutcome.QUARANTINED, None, None, reason)

    async def ingest(
        self,
        raw: bytes,
        *,
        source: str,
        received_at: datetime | None = None,
        imported: bool = False,
    ) -> IntakeResult:
        """Store one mail and everything it causes. Raises NotAMailError for non-mail input.

        `received_at` is when the mailbox got the mail (IMAP INTERNALDATE): the policy's
        clock starts then, even when the bot reads it later. Default: now. `imported`: the
        mail is part of the folder's backlog read on a first start (imap.start_at: all).
        """
        parsed = parse_mail(raw, self._setup.bounds)
        # Checked before the gpg work too: IMAP re-reads after a restart are common.
        async with self._db.transaction() as conn:
            duplicate = await _duplicate(conn, parsed.message_id)
        if duplicate is not None:
            return duplicate
        mail = IncomingMail.parsed_from(raw, parsed, source=source, received_at=received_at)
        mail.imported = imported
        own_sender = is_own_sender(parsed, self._setup.own_address)
        examine = not (parsed.is_automatic or own_sender)
        await unwrap(self._pgp, mail, examine=examine, bounds=self._setup.bounds)
        self._failpoints.hit("intake.before_store")
        async with self._db.transaction() as conn:
            duplicate = await _duplicate(conn, parsed.message_id)
            if duplicate is not None:
                return duplicate
            route, case_id = await classify(conn, mail, own_sender=own_sender)
            result = await self._store_and_queue(conn, route, case_id, mail)
        log.info("intake via %s: %s %s", source, result.outcome.value, result.case_id or "")
        self._failpoints.hit("intake.after_commit")
        self.on_stored()
        return result

    async def _store_and_queue(
        self, conn: aiosqlite.Connection, route: Route, case_id: str | None, mail: IncomingMail
    ) -> IntakeResult:
        """Run the store and queue steps of the mail's route; what came of it."""
        setup, reason = self._setup, mail.parsed.automatic_reason
        if route is Route.NEW_CASE:
            opened = await open_case(conn, setup, mail)
            await queue_new_case_posts(conn, setup, mail, opened)
            return IntakeResult(IntakeOutcome.NEW_CASE, opened.case.id, opened.mail_id)
        if route is Route.UNMATCHED_AUTOMATIC:
            mail_id = await unsorted(conn, setup, mail)
            # The subject and sender are report content: the room may show them, logs not.
            log.info("automatic mail %s matched no case; posted as unsorted", mail_id)
            return IntakeResult(IntakeOutcome.UNMATCHED_AUTOMATIC, None, mail_id, reason)
        if route is Route.OWN_MAIL:
            mail_id = await store_mail(conn, setup, mail, case_id)
            log.info("mail %s is the bot's own mail come back; stored, not posted", mail_id)
            return IntakeResult(IntakeOutcome.OWN_MAIL, case_id, mail_id, "the bot's own mail")
        assert case_id is not None  # classify gives follow-ups and automatic mail their case
        if route is Route.FOLLOW_UP:
            mail_id = await follow_up(conn, setup, mail, case_id)
            return IntakeResult(IntakeOutcome.FOLLOW_UP, case_id, mail_id)
        mail_id = await automatic(conn, setup, mail, case_id)
        return IntakeResult(IntakeOutcome.AUTOMATIC, case_id, mail_id, reason)


async def _duplicate(conn: aiosqlite.Connection, message_id: str) -> IntakeResult | None:
    existing = await mails.find_incoming(conn, message_id)
    if existing is None:
        return None
    return IntakeResult(IntakeOutcome.DUPLICATE, existing.case_id, existing.id)
