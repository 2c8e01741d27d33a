"""What a command handler gets: the open transaction, the case, who asked, and the services."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import aiosqlite

from bot.mailout.compose import MailKind
from bot.policy.lifecycle import Case
from bot.services import Services
from commands.registry import CommandError, Registry, Role
from storage import case_events, cases, next_checks


@dataclass(frozen=True)
class ReporterKey:
    """What the dispatcher found before the transaction: the reporter's usable PGP key for
    `address` (None: no key, the mail will be signed only)."""

    address: str
    fingerprint: str | None


@dataclass
class CommandContext:
    conn: aiosqlite.Connection
    services: Services
    registry: Registry
    sender: str
    role: Role
    room_id: str
    event_id: str
    now: datetime
    case: Case | None
    # Looked up for commands declared with needs_reporter_key; None when it could not be.
    reporter_key: ReporterKey | None = None

    @property
    def the_case(self) -> Case:
        if self.case is None:
            raise CommandError("this command needs a case")
        return self.case

    async def save(self, case: Case, kind: str, **data: object) -> None:
        """Store a changed case and its audit record in the command's transaction."""
        await cases.save_case(self.conn, case, self.now.isoformat())
        # A step may start a clock (an assessment starts the IBD share's): look again soon;
        # a check that finds nothing new only reschedules.
        await next_checks.check_soon(self.conn, case.id)
        await case_events.record(
            self.conn, case.id, actor=self.sender, kind=kind, at=self.now, data=dict(data)
        )
        self.case = case

    async def save_and_mail(
        self, case: Case, kind: str, mail: MailKind, *, mail_text: str | None = None, **data: object
    ) -> str:
        """Save a step with its audit record and queue the reporter's mail for it, in the
        command's transaction (one mail per command message: the event ID is its key).
        Returns what the thread is told about the mail."""
        await self.save(case, kind, **data)
        queued = await self.services.mailer.enqueue(
            self.conn, case, mail, idem_key=f"mail:{self.event_id}", now=self.now, text=mail_text
        )
        return queued.note
