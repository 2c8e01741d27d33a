"""Working a case inside the team: !assign, !note, !history. None of them mails the reporter."""

from __future__ import annotations

import html

from bot.matrix.history import history_post
from bot.matrix.posts import Post, user_link
from bot.policy.assignment import assign, resolve_assignee
from bot.policy.lifecycle import check_not_deleted
from commands.context import CommandContext
from commands.registry import Arg, CommandError, CommandGroup
from storage import case_events

group = CommandGroup()

#: A note is the team's own words, kept whole in the audit log; this bounds one entry.
MAX_NOTE_CHARS = 4000


@group.command(
    "assign",
    summary="set who works the case: a team member or manager, me, or none",
    args=[Arg("who", "a user ID (@name:server), me, or none", label="@user|me|none")],
    details=(
        "Only members of matrix.team or matrix.managers can be assigned. Deadline warnings "
        "mention the assignee; !cases mine lists their cases."
    ),
)
async def assign_command(ctx: CommandContext, who: str) -> Post:
    case = ctx.the_case
    config = ctx.services.config.matrix
    assignee = resolve_assignee(who, ctx.sender, config.team_and_managers)
    previous = case.assignee
    await ctx.save(assign(case, assignee), "assigned", assignee=assignee, previous=previous)
    if assignee is None:
        return Post.text(f"👤 {case.id} is no longer assigned (was {previous}), by {ctx.sender}.")
    body = f"👤 {case.id} assigned to {assignee} by {ctx.sender}."
    html_body = (
        f"👤 {html.escape(case.id)} assigned to {user_link(assignee)} by {html.escape(ctx.sender)}."
    )
    return Post(body, html_body, mentions=(assignee,))


@group.command(
    "note",
    summary="keep an internal note in the case's audit log (never mailed)",
    args=[Arg("text", "the note", rest=True)],
    details="!history shows the notes with the rest of the audit log.",
)
async def note(ctx: CommandContext, text: str) -> str:
    case = ctx.the_case
    check_not_deleted(case)
    if len(text) > MAX_NOTE_CHARS:
        raise CommandError(
            f"a note is at most {MAX_NOTE_CHARS} characters (this one has {len(text)}); "
            "nothing was kept."
        )
    await case_events.record(
        ctx.conn, case.id, actor=ctx.sender, kind="note", at=ctx.now, data={"text": text}
    )
    return f"📝 Note by {ctx.sender} kept in the audit log of {case.id}; it is never mailed."


@group.command(
    "history",
    summary="the case's audit log: who did what, when; newest last",
    details="A long history shows its newest entries and says how many older ones it leaves out.",
)
async def history(ctx: CommandContext) -> Post:
    case = ctx.the_case
    events = await case_events.history(ctx.conn, case.id)
    return history_post(case.id, events, ctx.services.tz)
