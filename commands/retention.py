"""Closing a case and the retention countdown: !close, !hold, !unhold.

`!close` starts the countdown (`policy.retention_days_after_close`); when it runs out the
retention job (bot/watch/retention.py) deletes the case's data and keeps a stub. `!hold`
stops the countdown (a legal obligation, an ongoing matter), `!unhold` starts it again from
that moment. The rules are in bot/policy/lifecycle.py.
"""

from __future__ import annotations

from datetime import timedelta

from bot.matrix.render import local
from bot.policy.lifecycle import Case, CaseState, close, hold, unhold
from commands.context import CommandContext
from commands.registry import Arg, CommandGroup

group = CommandGroup()


def _retention(ctx: CommandContext) -> timedelta:
    return timedelta(days=ctx.services.config.policy.retention_days_after_close)


def deletion_text(ctx: CommandContext, case: Case) -> str:
    """What the thread is told about when the case's data goes."""
    if case.hold_reason is not None:
        return "The deletion countdown is on hold: nothing is deleted until !unhold."
    if case.delete_after is None:
        return "The deletion countdown starts when the case is closed (!close)."
    return (
        f"Its data (mails, attachments, the reporter's identity and key, the report text) "
        f"will be deleted on {local(case.delete_after, ctx.services.tz)}."
    )


@group.command(
    "close",
    summary="close a fixed case or an outcome; the reporter is told when their data is deleted",
    reporter_gets=(
        "the closing mail, with the date their data will be deleted "
        "(not for spam or anonymous reports)"
    ),
    details=(
        "The retention countdown (policy.retention_days_after_close) starts; !hold stops it. "
        "No mail for spam or anonymous reports."
    ),
)
async def close_command(ctx: CommandContext) -> str:
    before = ctx.the_case
    case = close(before, ctx.now, _retention(ctx))
    data: dict[str, object] = {"outcome": case.outcome, "delete_after": case.delete_after}
    if before.state is CaseState.SPAM:
        await ctx.save(case, "closed", **data)
        note = "No closing mail: the report was spam."
    else:
        note = await ctx.save_and_mail(case, "closed", "closing", mail_text=None, **data)
    deletion = deletion_text(ctx, case)
    return f"📁 {case.id} closed ({case.outcome}) by {ctx.sender}. {deletion} {note}"


@group.command(
    "hold",
    summary="stop the deletion countdown, e.g. for a legal obligation",
    args=[Arg("reason", "why the data must be kept (kept in the audit log)", rest=True)],
    details="The case's data is kept until !unhold; then the full period starts again.",
)
async def hold_command(ctx: CommandContext, reason: str) -> str:
    before = ctx.the_case
    case = hold(before, reason)
    await ctx.save(case, "retention_held", reason=reason, delete_after_before=before.delete_after)
    return f"🔒 {case.id}: deletion held by {ctx.sender}. {deletion_text(ctx, case)}"


@group.command(
    "unhold",
    summary="restart the deletion countdown: the full retention period from now",
)
async def unhold_command(ctx: CommandContext) -> str:
    case = unhold(ctx.the_case, ctx.now, _retention(ctx))
    await ctx.save(case, "retention_released", delete_after=case.delete_after)
    return f"🔓 {case.id}: hold released by {ctx.sender}. {deletion_text(ctx, case)}"
