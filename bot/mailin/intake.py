"""Mail intake: one path for every mail, from IMAP or the `cvdbot ingest` pipe.

parse -> decrypt/verify -> read (forwarded report? keys? attachments?) -> match a case ->
store -> queue the thread posts. Storing and queueing happen in one transaction: a crash at
any point either stores the mail with everything it causes or stores nothing, and the same
Message-ID seen again is recognised and skipped. Importing a reporter's key into the gpg home
happens just before that transaction; doing it again after a crash changes nothing.

No mail ever makes the intake send mail: reporter mail only goes out on a team command, so
auto-replies, bounces and list mail cannot start a loop. Mail the bot sent itself (its own
From address or one of its Message-IDs coming back) never opens a case.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from email import policy
from email.message import Message
from email.parser import BytesHeaderParser
from enum import StrEnum
from zoneinfo import ZoneInfo

import aiosqlite

from bot.config import Config
from bot.failpoints import Failpoints
from bot.mailin.attachments import (
    Layer,
    display_name,
    is_pgp_mime_encrypted,
    layer_payloads,
    listable,
    postable,
    readable_layer,
)
from bot.mailin.bounces import delivery_summary, returned_mail
from bot.mailin.forwarded import ForwardedReport, detect_forward
from bot.mailin.intake_posts import (
    AUTOMATIC_MAIL,
    NOT_FROM_REPORTER,
    UNDECRYPTABLE,
    ListedAttachment,
    attachment_list,
    check_lines,
    encryption_line,
    forwarded_line,
    intake_check,
    mail_post,
    related_lines,
    signature_line,
)
from bot.mailin.language import detect_language
from bot.mailin.parse import AttachmentInfo, ParsedMail, find_case_ids, parse_mail, parse_message
from bot.mailin.quoting import strip_quoted
from bot.mailin.report_check import (
    Evidence,
    check_report,
    extract_targets,
    is_no_reply,
    reachable_address,
)
from bot.mailin.reporter_keys import KeyOutcome, find_key_material, import_reporter_keys
from bot.matrix import render
from bot.matrix.posts import Post, post_case_root, post_to_case
from bot.outbox import payloads
from bot.pgp.gpg import DecryptResult, Pgp, SignatureInfo
from bot.policy.clock import Clock
from bot.policy.lifecycle import Case, CaseState
from bot.policy.workdays import WorkingCalendar, case_deadlines
from bot.text import shorten
from storage import case_events, case_intake, cases, mails
from storage.db import Database

log = logging.getLogger(__name__)

# A case's subject is a title; the whole subject stays with the stored mail.
_MAX_CASE_SUBJECT = 300
_MAX_NAME = 120
# Automatic mail is shown briefly: it is noise that only sometimes matters.
_MAX_AUTOMATIC_CHARS = 1500
_MAX_NOTE_CHARS = 1500
_MAX_BACK_NOTES = 3
_ARMORED_MESSAGE = re.compile(
    r"-----BEGIN PGP MESSAGE-----.*?(?:-----END PGP MESSAGE-----|\Z)", re.S
)


class IntakeOutcome(StrEnum):
    NEW_CASE = "new_case"
    FOLLOW_UP = "follow_up"
    AUTOMATIC = "automatic"  # an auto-reply or bounce posted quietly into its case
    DUPLICATE = "duplicate"
    UNMATCHED_AUTOMATIC = "unmatched_automatic"  # stored and logged, no case
    OWN_MAIL = "own_mail"  # the bot's own mail come back: stored, never a case


@dataclass(frozen=True)
class IntakeResult:
    outcome: IntakeOutcome
    case_id: str | None
    mail_id: int | None
    detail: str | None = None


@dataclass
class _Reading:
    """A mail as the team should read it: decrypted where it could be, with notes."""

    parsed: ParsedMail
    text: str
    subject: str
    notes: list[str]
    encryption: str = "none"  # none | decrypted | failed
    encryption_style: str | None = None
    decrypt_error: str | None = None
    signature: SignatureInfo | None = None
    layer: Layer = "outer"
    payloads: list[tuple[AttachmentInfo, bytes]] = field(default_factory=list)
    forwarded: ForwardedReport | None = None
    keys: list[KeyOutcome] = field(default_factory=list)
    signing_key_came_with_mail: bool = False

    @property
    def sender(self) -> str | None:
        return self.parsed.from_address

    def protection_lines(self) -> list[str]:
        lines = []
        line = encryption_line(self.encryption, self.encryption_style, self.decrypt_error)
        if line:
            lines.append(line)
        if self.signature is not None:
            line = signature_line(self.signature, self.sender)
            if self.signing_key_came_with_mail:
                # Checked against the key that came with it: consistent, not yet trusted.
                line += " (the key came with this mail)"
            lines.append(line)
        return lines


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
        self._own_address = config.smtp.from_address.lower()
        self.on_stored: Callable[[], None] = lambda: None

    async def ingest(
        self, raw: bytes, *, source: str, received_at: datetime | None = None
    ) -> IntakeResult:
        """Store one mail and everything it causes. Raises NotAMailError for non-mail input.

        `received_at` is when the mailbox got the mail (IMAP INTERNALDATE): the policy's
        clock starts then, even when the bot reads it later. Default: now.
        """
        parsed = parse_mail(raw)
        async with self._db.transaction() as conn:
            existing = await mails.find_incoming(conn, parsed.message_id)
        if existing is not None:
            # Checked before the gpg work too: IMAP re-reads after a restart are common.
            return IntakeResult(IntakeOutcome.DUPLICATE, existing.case_id, existing.id)
        own = self._is_own_sender(parsed)
        reading = await self._read(raw, parsed, examine=not (parsed.is_automatic or own))
        async with self._db.transaction() as conn:
            existing = await mails.find_incoming(conn, parsed.message_id)
            if existing is not None:
                return IntakeResult(IntakeOutcome.DUPLICATE, existing.case_id, existing.id)
            own = own or await self._is_own_message_id(conn, parsed.message_id)
            case_id = await self._match_case(conn, reading)
            if own:
                result = await self._own_mail(conn, case_id, raw, reading, source)
            elif case_id is not None:
                result = await self._follow_up(conn, case_id, raw, reading, source)
            elif parsed.is_automatic:
                mail_id = await self._store(conn, None, raw, reading, source)
                log.info(
                    "automatic mail %s (%s) matched no case; stored only",
                    mail_id,
                    parsed.automatic_reason,
                )
                result = IntakeResult(
                    IntakeOutcome.UNMATCHED_AUTOMATIC, None, mail_id, parsed.automatic_reason
                )
            else:
                result = await self._open_case(conn, raw, reading, source, received_at)
        log.info("intake via %s: %s %s", source, result.outcome.value, result.case_id or "")
        self._failpoints.hit("intake.after_commit")
        self.on_stored()
        return result

    # -- reading ----------------------------------------------------------------------------

    async def _read(self, raw: bytes, parsed: ParsedMail, *, examine: bool) -> _Reading:
        """Decrypt and verify; for mail from people, also look for a forward and keys."""
        reading = _Reading(parsed, parsed.text, parsed.subject, list(parsed.problems))
        result = await self._decrypt(raw, reading)
        reading.layer, layer_bytes = readable_layer(raw, parsed, result)
        if reading.layer == "decrypted" or parsed.attachments:
            reading.payloads = await asyncio.to_thread(layer_payloads, layer_bytes)
        if parsed.is_automatic:
            return reading
        if reading.encryption != "failed":
            reading.forwarded = detect_forward(reading.subject, reading.text, reading.payloads)
        if examine:
            try:
                await self._import_keys(raw, reading)
            except Exception as exc:  # a hostile key must not stop the report being stored
                log.warning("reporter key handling failed (%s)", type(exc).__name__)
                reading.notes.append("the public key in this mail could not be processed")
        return reading

    async def _decrypt(self, raw: bytes, reading: _Reading) -> DecryptResult | None:
        parsed = reading.parsed
        try:
            result = await asyncio.to_thread(self._pgp.decrypt_raw, raw)
        except Exception as exc:  # hostile input can upset gpg or python-gnupg in odd ways
            log.warning("PGP processing failed (%s); the mail is read as it is", type(exc).__name__)
            reading.notes.append("the PGP processing of this mail failed; read as it is")
            return None
        reading.signature = result.signature
        if result.encrypted:
            reading.encryption_style = "PGP/MIME" if is_pgp_mime_encrypted(parsed) else "inline PGP"
            # The outer layer of an encrypted mail has no text of its own; that is no problem.
            reading.notes = [note for note in reading.notes if note != "no readable text body"]
        if result.encrypted and not result.decrypted:
            reading.encryption = "failed"
            reading.decrypt_error = result.error
            placeholder = f"[PGP-encrypted content: it {UNDECRYPTABLE}]"
            text = _ARMORED_MESSAGE.sub(placeholder, parsed.text)
            reading.text = text if text.strip() else placeholder
            return result
        if result.message is not None:
            inner = parse_message(result.message, len(raw))
            reading.text = inner.text
            # An encrypted part rarely repeats From, Date or Message-ID; only what is wrong
            # with its body is news to the team.
            reading.notes.extend(p for p in inner.problems if "header" not in p)
            if result.encrypted:
                reading.encryption = "decrypted"
        if result.protected_subject:
            reading.subject = " ".join(result.protected_subject.split())
        return result

    async def _import_keys(self, raw: bytes, reading: _Reading) -> None:
        headers = _header_section(raw)
        material = find_key_material(reading.text, reading.payloads, headers, reading.sender)
        if not material:
            return
        reading.keys = await asyncio.to_thread(
            import_reporter_keys, self._pgp, reading.sender, material
        )
        imported = any(outcome.imported_fingerprint for outcome in reading.keys)
        if imported and reading.signature is not None and reading.signature.status == "unknown_key":
            # The key that signed the mail came with it: check the signature again.
            again = await asyncio.to_thread(self._pgp.decrypt_raw, raw)
            if again.signature is not None:
                reading.signature = again.signature
                reading.signing_key_came_with_mail = True

    # -- matching ---------------------------------------------------------------------------

    def _is_own_sender(self, parsed: ParsedMail) -> bool:
        return parsed.from_address is not None and parsed.from_address == self._own_address

    async def _is_own_message_id(self, conn: aiosqlite.Connection, message_id: str) -> bool:
        async with conn.execute(
            "SELECT 1 FROM mails WHERE direction = 'out' AND message_id = ? LIMIT 1",
            (message_id,),
        ) as cur:
            return await cur.fetchone() is not None

    async def _match_case(self, conn: aiosqlite.Connection, reading: _Reading) -> str | None:
        candidates = find_case_ids(reading.subject)
        if reading.subject != reading.parsed.subject:
            candidates += find_case_ids(reading.parsed.subject)
        for candidate in candidates:
            if await cases.get_case(conn, candidate) is not None:
                return candidate
        ids = reading.parsed.references + reading.parsed.in_reply_to
        found = await mails.case_for_message_ids(conn, ids)
        if found is not None or not reading.parsed.is_automatic:
            return found
        # A bounce names the mail it returns only in its parts or quoted headers.
        returned = returned_mail(reading.text, reading.payloads)
        found = await mails.case_for_message_ids(conn, returned.message_ids)
        if found is not None:
            return found
        for candidate in returned.case_ids:
            if await cases.get_case(conn, candidate) is not None:
                return candidate
        return None

    # -- storing ----------------------------------------------------------------------------

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

    async def _own_mail(
        self,
        conn: aiosqlite.Connection,
        case_id: str | None,
        raw: bytes,
        reading: _Reading,
        source: str,
    ) -> IntakeResult:
        mail_id = await self._store(conn, case_id, raw, reading, source)
        log.info("mail %s is the bot's own mail come back; stored, not posted", mail_id)
        return IntakeResult(IntakeOutcome.OWN_MAIL, case_id, mail_id, "the bot's own mail")

    async def _open_case(
        self,
        conn: aiosqlite.Connection,
        raw: bytes,
        reading: _Reading,
        source: str,
        received_at: datetime | None,
    ) -> IntakeResult:
        now = self._clock.now()
        policy_config = self._config.policy
        parsed = reading.parsed
        forwarded = reading.forwarded
        # Never in the future: a mailbox clock ahead of ours must not push deadlines later.
        received = min(received_at, now) if received_at else now
        case_id, seq = await cases.allocate_case_id(conn, received.astimezone(self._tz).year)
        if forwarded is not None:
            report_text = forwarded.text
            subject = forwarded.subject or reading.subject
            reporter = reachable_address(forwarded.reporter_address)
            reporter_name = forwarded.reporter_name
        else:
            report_text = reading.text
            subject = reading.subject
            reporter = reachable_address(parsed.reply_to, parsed.from_address)
            # A no-reply sender's display name is the form's or the platform's, not a person's.
            sender_is_person = parsed.from_address is not None and not is_no_reply(
                parsed.from_address
            )
            reporter_name = parsed.from_name if reporter and sender_is_person else None
        language = detect_language(report_text, default=policy_config.default_language)
        deadlines = case_deadlines(
            self._calendar,
            received,
            acknowledge_days=policy_config.acknowledge_within_working_days,
            assess_days=policy_config.assess_within_working_days,
            fix_days=policy_config.fix_within_days,
        )
        mail_id = await self._store(
            conn, case_id=None, raw=raw, reading=reading, source=source, language=language
        )
        case = Case(
            id=case_id,
            state=CaseState.NEW,
            subject=shorten(subject, _MAX_CASE_SUBJECT),
            reporter_address=reporter,
            reporter_name=shorten(reporter_name, _MAX_NAME) if reporter_name else None,
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

        checked = reading.encryption != "failed"
        evidence = (
            check_report(
                f"{subject}\n{report_text}",
                reporter_address=reporter,
                ignore_addresses=[self._own_address],
            )
            if checked
            else None
        )
        await case_intake.record_case_intake(
            conn,
            case_intake.CaseIntake(
                case_id=case_id,
                forwarded_by=parsed.from_address if forwarded else None,
                forward_style=forwarded.style if forwarded else None,
                encryption=reading.encryption,
                signature_status=reading.signature.status if reading.signature else None,
                signature_fingerprint=reading.signature.fingerprint if reading.signature else None,
                has_contact=evidence.contact if evidence else None,
                has_target=evidence.target if evidence else None,
                has_description=evidence.description if evidence else None,
            ),
        )
        targets = extract_targets(
            f"{subject}\n{report_text}", ignore_domains=self._ignored_domains(parsed, reporter)
        )
        await case_intake.add_targets(
            conn, case_id, hosts=targets.hosts, urls=targets.urls, mail_id=mail_id
        )
        related = await case_intake.related_open_cases(conn, case_id, targets.hosts)

        await case_events.record(
            conn,
            case_id,
            actor=_mail_actor(reading),
            kind="opened",
            at=now,
            data={
                "mail_id": mail_id,
                "source": source,
                "forwarded_by": parsed.from_address if forwarded else None,
                "encryption": reading.encryption,
                "signature": reading.signature.status if reading.signature else None,
                "missing": evidence.missing if evidence else None,
                "related": [item.case_id for item in related],
            },
        )
        if forwarded is not None:
            await case_events.record(
                conn,
                case_id,
                actor=_mail_actor(reading),
                kind="forwarded",
                at=now,
                data={"forwarded_by": parsed.from_address, "style": forwarded.style},
            )
        details: list[str] = []
        if forwarded is not None:
            details.append(
                forwarded_line(parsed.from_address, forwarded.style, bool(forwarded.note))
            )
            if reporter is None:
                who = forwarded.reporter_name or "the original sender"
                details.append(f"The forwarded mail gives no address for {who}.")
        details += reading.protection_lines()
        await post_case_root(
            conn, case_id, render.case_root(case, self._tz, reading.notes, details), now=now
        )
        shown = report_text
        if forwarded is not None and forwarded.note:
            note = shorten(forwarded.note, _MAX_NOTE_CHARS)
            shown = f"{report_text}\n\n[Note from {parsed.from_address or 'the forwarder'}: {note}]"
        excerpt = mail_post(
            "📨 The report:",
            shown,
            max_chars=self._config.limits.max_body_chars_in_thread,
        )
        await post_to_case(conn, case_id, excerpt, idem_key=f"mail-in:{mail_id}", now=now)

        lines = check_lines(evidence, reachable=reporter is not None)
        lines += related_lines(related)
        lines += await self._record_keys(conn, case_id, mail_id, reading, now)
        await post_to_case(
            conn, case_id, intake_check(lines), idem_key=f"intake-check:{mail_id}", now=now
        )
        # A note back only to the most recent related cases: with every open case notified,
        # n reports about one host would post n²/2 notes and bury the threads.
        for item in related[-_MAX_BACK_NOTES:]:
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
        await self._queue_attachments(conn, case_id, mail_id, reading, now)
        return IntakeResult(IntakeOutcome.NEW_CASE, case_id, mail_id)

    def _ignored_domains(self, parsed: ParsedMail, reporter: str | None) -> list[str]:
        """Mail domains of the bot, the sender and the reporter: where people write from,
        not what they report (unless a subdomain of it is named)."""
        addresses = [self._own_address, parsed.from_address, reporter]
        return [address.rsplit("@", 1)[1] for address in addresses if address and "@" in address]

    async def _record_keys(
        self,
        conn: aiosqlite.Connection,
        case_id: str,
        mail_id: int,
        reading: _Reading,
        now: datetime,
    ) -> list[str]:
        """Remember the keys imported from this mail; the lines the thread should show."""
        for outcome in reading.keys:
            if outcome.imported_fingerprint and reading.sender:
                await case_intake.remember_reporter_key(
                    conn,
                    address=reading.sender,
                    fingerprint=outcome.imported_fingerprint,
                    mail_id=mail_id,
                    case_id=case_id,
                    at=now,
                )
                await case_events.record(
                    conn,
                    case_id,
                    actor=_mail_actor(reading),
                    kind="reporter_key_imported",
                    at=now,
                    data={"address": reading.sender, "fingerprint": outcome.imported_fingerprint},
                )
        return [outcome.message for outcome in reading.keys]

    async def _follow_up(
        self, conn: aiosqlite.Connection, case_id: str, raw: bytes, reading: _Reading, source: str
    ) -> IntakeResult:
        now = self._clock.now()
        case = await cases.get_case(conn, case_id)
        assert case is not None
        parsed = reading.parsed
        mail_id = await self._store(conn, case_id, raw, reading, source)
        automatic = parsed.is_automatic
        await case_events.record(
            conn,
            case_id,
            actor=_mail_actor(reading),
            kind="follow_up",
            at=now,
            data={"mail_id": mail_id, "automatic": automatic},
        )
        sender = parsed.from_address or "an unknown sender"
        if automatic:
            return await self._automatic(conn, case_id, mail_id, reading, now)
        info = reading.protection_lines()
        warnings = list(reading.notes)
        from_reporter = case.reporter_address in (parsed.from_address, parsed.reply_to)
        if case.reporter_address and not from_reporter:
            warnings.append(f"{NOT_FROM_REPORTER} ({case.reporter_address}).")
        stripped = strip_quoted(reading.text)
        post = mail_post(
            f"📨 Follow-up mail from {sender}: {shorten(reading.subject, _MAX_CASE_SUBJECT)}",
            stripped.text,
            max_chars=self._config.limits.max_body_chars_in_thread,
            info=info,
            warnings=warnings,
            quotes_hidden=stripped.removed,
        )
        await post_to_case(conn, case_id, post, idem_key=f"mail-in:{mail_id}", now=now)
        lines = await self._record_keys(conn, case_id, mail_id, reading, now)
        if reading.encryption != "failed":
            lines += await self._recheck(conn, case, mail_id, stripped.text, reading)
        if lines:
            await post_to_case(
                conn, case_id, intake_check(lines), idem_key=f"intake-check:{mail_id}", now=now
            )
        await self._queue_attachments(conn, case_id, mail_id, reading, now)
        return IntakeResult(IntakeOutcome.FOLLOW_UP, case_id, mail_id)

    async def _recheck(
        self,
        conn: aiosqlite.Connection,
        case: Case,
        mail_id: int,
        text: str,
        reading: _Reading,
    ) -> list[str]:
        """What a follow-up adds: its hosts, and what it supplies of the missing details."""
        parsed = reading.parsed
        targets = extract_targets(
            f"{reading.subject}\n{text}",
            ignore_domains=self._ignored_domains(parsed, case.reporter_address),
        )
        await case_intake.add_targets(
            conn, case.id, hosts=targets.hosts, urls=targets.urls, mail_id=mail_id
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
                ignore_addresses=[self._own_address],
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

    async def _automatic(
        self,
        conn: aiosqlite.Connection,
        case_id: str,
        mail_id: int,
        reading: _Reading,
        now: datetime,
    ) -> IntakeResult:
        parsed = reading.parsed
        sender = parsed.from_address or "an unknown sender"
        info = []
        summary = delivery_summary(reading.payloads)
        if summary:
            info.append(f"Delivery report: {summary}")
        post = mail_post(
            f"🤖 {AUTOMATIC_MAIL} ({parsed.automatic_reason}) from {sender}: "
            f"{shorten(reading.subject, _MAX_CASE_SUBJECT)}",
            strip_quoted(reading.text).text,
            max_chars=min(_MAX_AUTOMATIC_CHARS, self._config.limits.max_body_chars_in_thread),
            info=info,
        )
        await post_to_case(conn, case_id, post, idem_key=f"mail-in:{mail_id}", now=now)
        return IntakeResult(IntakeOutcome.AUTOMATIC, case_id, mail_id, parsed.automatic_reason)

    async def _queue_attachments(
        self,
        conn: aiosqlite.Connection,
        case_id: str,
        mail_id: int,
        reading: _Reading,
        now: datetime,
    ) -> None:
        """List the attachments, and queue each small enough as encrypted media."""
        if reading.encryption == "failed":
            return  # only ciphertext: the raw mail is stored, nothing to show
        limit = self._config.limits.max_attachment_bytes_in_thread
        listed: list[ListedAttachment] = []
        media: list[tuple[int, AttachmentInfo, str]] = []
        for index, (info, _data) in enumerate(reading.payloads):
            if not listable(info):
                continue
            name = display_name(info, index)
            why_not = None
            if not postable(info):
                why_not = "an OpenPGP key, not posted"
            elif info.size == 0:
                why_not = "empty, not posted"
            elif info.size > limit:
                why_not = f"larger than the thread's limit of {limit} bytes; kept in the store"
            else:
                media.append((index, info, name))
            listed.append(
                ListedAttachment(
                    name, info.content_type, info.size, info.sha256, why_not is None, why_not
                )
            )
        if not listed:
            return
        await post_to_case(
            conn, case_id, attachment_list(listed), idem_key=f"attachments:{mail_id}", now=now
        )
        for index, info, name in media:
            media_post = payloads.MediaPost(
                mail_id=mail_id,
                layer=reading.layer,
                index=index,
                sha256=info.sha256,
                filename=name,
                content_type=info.content_type,
                size=info.size,
            )
            await payloads.enqueue(
                conn, media_post, idem_key=f"media:{mail_id}:{index}", case_id=case_id, now=now
            )


def _header_section(raw: bytes) -> Message | None:
    try:
        return BytesHeaderParser(policy=policy.compat32).parsebytes(raw)
    except Exception:  # only the Autocrypt header is read from it; hostile bytes mean none
        return None


def _mail_actor(reading: _Reading) -> str:
    return f"mail:{reading.parsed.from_address or 'unknown'}"


def _dedupe(ids: list[str]) -> list[str]:
    return list(dict.fromkeys(ids))
