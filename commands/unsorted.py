"""!open <mail-id>: turns an unsorted mail (automatic or list mail that matched no case, shown
in the "unsorted" thread) into a case whose clock starts at the mail's receipt."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.mailin.parse import NotAMailError, parse_mail
from bot.mailin.steps.incoming import IncomingMail, IntakeSetup
from bot.mailin.steps.open_case import open_case, queue_new_case_posts
from commands.context import CommandContext
from commands.registry import Arg, CommandError, CommandGroup
from storage import case_events, mails

group = CommandGroup()


@dataclass(frozen=True)
class _At:
    """The clock the intake steps read: the moment of the command."""

    moment: datetime

    def now(self) -> datetime:
        return self.moment


@group.command(
    "open",
    summary="turn an unsorted mail into a case",
    args=[Arg("mail_id", "the number the unsorted thread shows")],
    needs_case=False,
    details=(
        "For a report that came as automatic or list mail (a mailing list, a bug-bounty "
        "platform, a web form): the case's deadlines count from when the mailbox received "
        "it. An encrypted mail is opened as it was stored, without decrypting it again."
    ),
)
async def open_mail(ctx: CommandContext, mail_id: str) -> str:
    if not mail_id.isdigit():
        raise CommandError(f"{mail_id!r} is not a mail number.")
    stored = await mails.unsorted_mail(ctx.conn, int(mail_id))
    if stored is None:
        raise CommandError(f"Mail {mail_id} is not an unsorted mail (unknown, or in a case).")
    try:
        parsed = parse_mail(stored.raw)
    except NotAMailError as exc:
        raise CommandError(f"Mail {mail_id} cannot be read as a mail: {exc.reason}") from exc
    received = datetime.fromisoformat(stored.received_at)
    mail = IncomingMail.parsed_from(stored.raw, parsed, source=stored.source, received_at=received)
    mail.notes.append(f"opened from the unsorted mail by {ctx.sender}")
    setup = IntakeSetup(ctx.services.config, ctx.services.calendar, None, _At(ctx.now))
    opened = await open_case(ctx.conn, setup, mail, stored_mail_id=stored.id)
    await queue_new_case_posts(ctx.conn, setup, mail, opened)
    await case_events.record(
        ctx.conn,
        opened.case.id,
        actor=ctx.sender,
        kind="opened_from_unsorted",
        at=ctx.now,
        data={"mail_id": stored.id},
    )
    return f"📂 {ctx.sender} opened {opened.case.id} from unsorted mail {stored.id}."
