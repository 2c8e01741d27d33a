"""The retention job: when a closed case's countdown (`policy.retention_days_after_close`)
runs out, its personal data and report text are deleted and a stub stays.

In one transaction per case, with the posts that announce it:
* the case row becomes its stub (bot/policy/lifecycle.py: `strip_personal_data`): ID,
  dates, severity, outcome, each promise's due and done times;
* its mails are emptied in place (raw bytes with their attachments, subjects, addresses),
  each keeping the SHA-256 of its bytes; the hosts and URLs, the forwarder, the signer's
  fingerprint, the reporter's key (unless a case whose data stays has the same address);
* the audit log keeps who ran which step and when, without report text
  (bot/policy/retention.py); the stored payloads of what was sent are replaced;
* every event the bot posted for the case (root, report text, follow-ups, attachments,
  answers, status cards) is redacted through the outbox, once each, and so are the overdue
  alerts about it in the managers' room (they quote the subject); the thread is told what
  was deleted and when.

The root and the command answers are redacted too, not only the report text: the root
carries the subject and the reporter's address, and answers and status cards quote the
subject or the team's words; one rule for all of the bot's events leaves no case content
behind by a wrong guess about which post holds some. The stub post that follows says what
stays. The team's own messages are theirs; the bot does not redact them.

After the deletions the write-ahead log is checkpointed and emptied (`Database.checkpoint_wal`):
the WAL would otherwise keep the pages as they were before, report text and all.

A case with a post or mail still waiting in the outbox is left for the next run: a post not
yet in the room could not be redacted. The reporter's key leaves the gpg home after the
transaction (gpg is not part of it), through `key_deletions`, so a crash only repeats that.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

import aiosqlite

from bot.config import Config
from bot.matrix.posts import Post, post_to_case
from bot.matrix.render import local
from bot.outbox import payloads
from bot.outbox.payloads import Redaction
from bot.pgp.gpg import Pgp
from bot.policy.lifecycle import Case, TransitionError, deletion_due, strip_personal_data
from bot.policy.promises import PROMISES
from bot.watch.deadline_warnings import escalation_key_prefix
from storage import case_events, cases, retention
from storage.db import Database

log = logging.getLogger(__name__)

BATCH = 50
REDACTION_REASON = "case data deleted after the retention period"


@dataclass
class RetentionResult:
    deleted: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)  # posts or mails still in the outbox
    keys_removed: list[str] = field(default_factory=list)

    @property
    def queued(self) -> bool:
        return bool(self.deleted)


def promise_lines(case: Case, tz: ZoneInfo) -> list[str]:
    """Whether each promise was kept, as the stub keeps it."""
    lines = []
    for promise in PROMISES:
        due, done = promise.due(case), promise.done(case)
        if done is None:
            verdict = "not kept (the case ended first)"
        elif done <= due:
            verdict = f"kept in time ({local(done, tz)})"
        else:
            verdict = f"kept late ({local(done, tz)}, due {local(due, tz)})"
        lines.append(f"{promise.label}: {verdict}")
    return lines


def deletion_note(
    stub: Case,
    mails: list[retention.DeletedMail],
    targets: int,
    redacted: int,
    escalations: int,
    tz: ZoneInfo,
) -> str:
    assert stub.data_deleted_at is not None
    incoming = sum(mail.direction == "in" for mail in mails)
    lines = [
        f"🗑️ {stub.id}: the retention period after closing ran out; on "
        f"{local(stub.data_deleted_at, tz)} the case's data was deleted:",
        f"• {incoming} mail(s) from and {len(mails) - incoming} to the reporter, with their "
        "attachments (SHA-256 of each kept)",
        "• the reporter's name, address and key; the report's subject and text; the team's "
        f"texts to the reporter; {targets} host(s)/URL(s)",
        f"• {redacted} of my messages in this thread (redacted)",
        *(
            [
                f"• {escalations} overdue alert(s) in the managers' room, which named the subject "
                "(redacted)"
            ]
            if escalations
            else []
        ),
        "What stays: the case ID, dates, severity "
        f"({stub.severity or 'none recorded'}), outcome ({stub.outcome or 'none'}), "
        "whether each promise was kept, and the audit log of who ran which step (!history).",
        *(f"• {line}" for line in promise_lines(stub, tz)),
    ]
    return "\n".join(lines)


class RetentionWatch:
    def __init__(self, db: Database, config: Config, pgp: Pgp, tz: ZoneInfo) -> None:
        self._db = db
        self._config = config
        self._pgp = pgp
        self._tz = tz
        # Deleted data stays in the WAL until a checkpoint: owed until one succeeds.
        self._checkpoint_owed = False

    async def tick(self, now: datetime) -> RetentionResult:
        result = RetentionResult()
        async with self._db.transaction() as conn:
            due = await retention.cases_due(conn, now, BATCH)
        for case_id in due:
            # One transaction per case: a long catch-up never holds up commands and intake.
            try:
                async with self._db.transaction() as conn:
                    deleted = await self._delete(conn, case_id, now)
            except Exception:
                log.exception("deleting the data of %s failed; the next run retries", case_id)
                continue
            (result.deleted if deleted else result.waiting).append(case_id)
        result.keys_removed = await self._remove_keys()
        if result.deleted or self._checkpoint_owed:
            self._checkpoint_owed = not await self._db.checkpoint_wal()
        if result.deleted or result.waiting:
            log.info(
                "retention: %d case(s) deleted, %d waiting for their outbox",
                len(result.deleted),
                len(result.waiting),
            )
        return result

    async def _delete(self, conn: aiosqlite.Connection, case_id: str, now: datetime) -> bool:
        case = await cases.get_case(conn, case_id)
        if case is None or not deletion_due(case, now):
            return False
        if await retention.has_pending_outbox(conn, case_id):
            return False
        try:
            stub = strip_personal_data(case, now)
        except TransitionError:
            return False
        events = await retention.sent_matrix_events(conn, case_id)
        escalations = await retention.sent_room_posts(conn, escalation_key_prefix(case_id))
        mails = await retention.delete_mails(conn, case_id, now)
        targets = await retention.delete_intake_details(conn, case_id)
        await retention.delete_decisions_text(conn, case_id)
        await retention.delete_reporter_keys(conn, case_id, case.reporter_address, now)
        await retention.scrub_audit_log(conn, case_id)
        await retention.scrub_outbox(conn, case_id, payloads.DELETED_PAYLOAD)
        await cases.save_case(conn, stub, now.isoformat())
        await case_events.record(
            conn,
            case_id,
            actor="cvdbot",
            kind="data_deleted",
            at=now,
            data={
                "mails_sha256": [mail.sha256 for mail in mails],
                "targets": targets,
                "redacted": len(events),
                "escalations_redacted": len(escalations),
            },
        )
        case_room = self._config.matrix.case_room
        for room, event_id in [(case_room, event) for event in events] + escalations:
            await payloads.enqueue(
                conn,
                Redaction(room, event_id, REDACTION_REASON),
                idem_key=f"redact:{event_id}",
                case_id=case_id,
                now=now,
            )
        note = deletion_note(stub, mails, targets, len(events), len(escalations), self._tz)
        await post_to_case(
            conn, case_id, Post.text(note), idem_key=f"data-deleted:{case_id}", now=now
        )
        return True

    async def _remove_keys(self) -> list[str]:
        async with self._db.transaction() as conn:
            queued = await retention.queued_key_deletions(conn)
        removed = []
        for fingerprint in queued:
            try:
                await asyncio.to_thread(self._pgp.delete_public_key, fingerprint)
            except Exception:
                log.exception("removing a deleted case's reporter key failed; retried later")
                continue
            async with self._db.transaction() as conn:
                await retention.key_deleted(conn, fingerprint)
            removed.append(fingerprint)
        return removed
