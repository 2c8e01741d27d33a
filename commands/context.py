"""What a command handler gets: the open transaction, the case, who asked, and the services."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import aiosqlite

from bot.policy.lifecycle import Case
from bot.services import Services
from commands.registry import CommandError, Registry, Role
from storage import case_events, cases


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

    @property
    def the_case(self) -> Case:
        if self.case is None:
            raise CommandError("this command needs a case")
        return self.case

    async def save(self, case: Case, kind: str, **data: object) -> None:
        """Store a changed case and its audit record in the command's transaction."""
        await cases.save_case(self.conn, case, self.now.isoformat())
        await case_events.record(
            self.conn, case.id, actor=self.sender, kind=kind, at=self.now, data=dict(data)
        )
        self.case = case
