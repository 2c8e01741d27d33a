"""Mail intake: one path for every mail, from IMAP or the `cvdbot ingest` pipe.

parse -> decrypt/verify -> match a case -> store -> queue the thread posts, all in one
transaction: a crash at any point either stores the mail with everything it causes or
stores nothing, and the same Message-ID seen again is recognised and skipped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

import aiosqlite

from bot import render
from bot.clock import Clock
from bot.config import Config
from bot.failpoints import Failpoints
from bot.language import detect_language
from bot.lifecycle import Case, CaseState
from bot.mail_parse import ParsedMail, find_case_ids, parse_mail, parse_message
from bot.pgp import DecryptResult, Pgp
from bot.posts import post_case_root, post_to_case
from bot.sla import WorkingCalendar, case_deadlines
from storage import case_events, cases, mails
from storage.db import Database

log = logging.getLogger(__name__)


class IntakeOutcome(StrEnum):
    NEW_CASE = "new_case"
    FOLLOW_UP = "follow_up"
    DUPLICATE = "duplicate"
    UNMATCHED_AUTOMATIC = "unmatched_automatic"


@dataclass(frozen=True)
class IntakeResult:
    outcome: IntakeOutcome
    case_id: str | None
    mail_id: int | None


@dataclass(frozen=True)
class _Reading:
    """A mail as the team should read it: decrypted where it could be, with notes."""

    parsed: ParsedMail
    text: str
    subject: str
    notes: list[str]


class MailIntake:
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
        self._config = config
        self._calendar = calendar
        self._pgp = pgp
        self._clock = clock
        self._failpoints = failpoints
        self._tz = ZoneInfo(config.policy.timezone)
        self.on_stored: Callable[[], None] = lambda: None

    async def ingest(
        self, raw: bytes, *, source: str, received_at: datetime | None = None
    ) -> IntakeResult:
        """Store one mail and everything it causes. Raises NotAMailError for non-mail input.

        `received_at` is when the mailbox got the mail (IMAP INTERNALDATE): the policy's
        clock starts then, even when the bot reads it later. Default: now.
        """
        parsed = parse_mail(raw)
        reading = await self._read(raw, parsed)
        async with self._db.transaction() as conn:
            existing = await mails.find_incoming(conn, parsed.message_id)
            if existing is not None:
                return IntakeResult(IntakeOutcome.DUPLICATE, existing.case_id, existing.id)
            case_id = await self._match_case(conn, reading)
            if case_id is not None:
                result = await self._follow_up(conn, case_id, raw, reading, source)
            elif parsed.is_automatic:
                mail_id = await self._store(conn, None, raw, reading, source)
                log.info("automatic mail %s matched no case; stored only", mail_id)
                result = IntakeResult(IntakeOutcome.UNMATCHED_AUTOMATIC, None, mail_id)
            else:
                result = await self._open_case(conn, raw, reading, source, received_at)
        log.info("intake via %s: %s %s", source, result.outcome.value, result.case_id or "")
        self._failpoints.hit("intake.after_commit")
        self.on_stored()
        return result

    async def _read(self, raw: bytes, parsed: ParsedMail) -> _Reading:
        notes = list(parsed.problems)
        text, subject = parsed.text, parsed.subject
        result: DecryptResult = await asyncio.to_thread(self._pgp.decrypt_raw, raw)
        if result.encrypted and not result.decrypted:
            notes.append(
                f"This mail is PGP-encrypted and could not be decrypted: {result.error}. "
                "The raw message is stored."
            )
        if result.message is not None:
            inner = parse_message(result.message, len(raw))
            text = inner.text
            # An encrypted part rarely repeats From, Date or Message-ID; only what is wrong
            # with its body is news to the team.
            notes.extend(problem for problem in inner.problems if "header" not in problem)
            if result.encrypted:
                notes.append("Decrypted from PGP.")
        if result.protected_subject:
            subject = result.protected_subject
        if result.signature is not None:
            notes.append("Signature: " + result.signature.describe())
        return _Reading(parsed, text, subject, notes)

    async def _match_case(self, conn: aiosqlite.Connection, reading: _Reading) -> str | None:
        for candidate in find_case_ids(reading.subject):
            if await cases.get_case(conn, candidate) is not None:
                return candidate
        ids = reading.parsed.references + reading.parsed.in_reply_to
        return await mails.case_for_message_ids(conn, ids)

    async def _store(
        self,
        conn: aiosqlite.Connection,
        case_id: str | None,
        raw: bytes,
        reading: _Reading,
        source: str,
        language: str | None = None,
    ) -> int:
        parsed = reading.parsed
        return await mails.insert_mail(
            conn,
            direction="in",
            message_id=parsed.message_id,
            case_id=case_id,
            source=source,
            raw=raw,
            subject=reading.subject,
            from_address=parsed.from_address,
            to_address=", ".join(parsed.to) or None,
            sent_date=parsed.date.isoformat() if parsed.date else None,
            stored_at=self._clock.now().isoformat(),
            language=language,
            is_automatic=parsed.is_automatic,
            problems=reading.notes,
            thread_ids=_dedupe(parsed.references + parsed.in_reply_to),
        )

    async def _open_case(
        self,
        conn: aiosqlite.Connection,
        raw: bytes,
        reading: _Reading,
        source: str,
        received_at: datetime | None,
    ) -> IntakeResult:
        now = self._clock.now()
        policy = self._config.policy
        # Never in the future: a mailbox clock ahead of ours must not push deadlines later.
        received = min(received_at, now) if received_at else now
        case_id, seq = await cases.allocate_case_id(conn, received.astimezone(self._tz).year)
        language = detect_language(reading.text, default=policy.default_language)
        deadlines = case_deadlines(
            self._calendar,
            received,
            acknowledge_days=policy.acknowledge_within_working_days,
            assess_days=policy.assess_within_working_days,
            fix_days=policy.fix_within_days,
        )
        mail_id = await self._store(
            conn, case_id=None, raw=raw, reading=reading, source=source, language=language
        )
        case = Case(
            id=case_id,
            state=CaseState.NEW,
            subject=reading.subject,
            reporter_address=reading.parsed.reply_to or reading.parsed.from_address,
            reporter_name=reading.parsed.from_name,
            language=language,
            received_at=received,
            acknowledge_due=deadlines.acknowledge.due,
            assess_due=deadlines.assess.due,
            fix_due=deadlines.fix.due,
            report_mail_id=mail_id,
        )
        await cases.insert_case(
            conn, case, received.astimezone(self._tz).year, seq, now.isoformat()
        )
        await conn.execute("UPDATE mails SET case_id = ? WHERE id = ?", (case_id, mail_id))
        await case_events.record(
            conn,
            case_id,
            actor=_mail_actor(reading),
            kind="opened",
            at=now,
            data={"mail_id": mail_id, "source": source},
        )
        await post_case_root(
            conn, case_id, render.case_root(case, self._tz, reading.notes), now=now
        )
        excerpt = render.mail_excerpt(
            "📨 The report:",
            reading.text,
            max_chars=self._config.limits.max_body_chars_in_thread,
        )
        await post_to_case(conn, case_id, excerpt, idem_key=f"mail-in:{mail_id}", now=now)
        return IntakeResult(IntakeOutcome.NEW_CASE, case_id, mail_id)

    async def _follow_up(
        self, conn: aiosqlite.Connection, case_id: str, raw: bytes, reading: _Reading, source: str
    ) -> IntakeResult:
        now = self._clock.now()
        case = await cases.get_case(conn, case_id)
        assert case is not None
        mail_id = await self._store(conn, case_id, raw, reading, source)
        await case_events.record(
            conn,
            case_id,
            actor=_mail_actor(reading),
            kind="follow_up",
            at=now,
            data={"mail_id": mail_id, "automatic": reading.parsed.is_automatic},
        )
        sender = reading.parsed.from_address or "an unknown sender"
        heading = f"📨 Follow-up mail from {sender}: {reading.subject}"
        if reading.parsed.is_automatic:
            heading = f"🤖 Automatic mail ({reading.parsed.automatic_reason}) from {sender}"
        notes = list(reading.notes)
        if case.reporter_address and reading.parsed.from_address != case.reporter_address:
            notes.append(f"Not from the case's reporter ({case.reporter_address}).")
        excerpt = render.mail_excerpt(
            heading,
            reading.text,
            max_chars=self._config.limits.max_body_chars_in_thread,
            notes=notes,
        )
        await post_to_case(conn, case_id, excerpt, idem_key=f"mail-in:{mail_id}", now=now)
        return IntakeResult(IntakeOutcome.FOLLOW_UP, case_id, mail_id)


def _mail_actor(reading: _Reading) -> str:
    return f"mail:{reading.parsed.from_address or 'unknown'}"


def _dedupe(ids: list[str]) -> list[str]:
    return list(dict.fromkeys(ids))
