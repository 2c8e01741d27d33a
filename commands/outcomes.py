"""How a case ends when it is not fixed, and how it comes back: !reject, !duplicate,
!withdrawn, !spam and !reopen.

An outcome stops the case's clocks (the SLA watch finds nothing running, and `!cases` and
the digest stop counting it as open; bot/policy/lifecycle.py decides which states those
are). Each outcome but spam mails the reporter in the case's language. `!reopen` brings the
case back to the working state its kept promises give and has the SLA watch look at it
again; it sends no mail, so the team decides what the reporter hears.
"""

from __future__ import annotations

from bot.policy.lifecycle import (
    CASE_ID_PATTERN,
    REJECT_REASONS,
    CaseState,
    end_with,
    parse_case_id,
    reopen,
    same_reporter,
)
from commands.context import CommandContext
from commands.registry import Arg, CommandError, CommandGroup
from storage import cases, next_checks

group = CommandGroup()

STOPPED = "Its clocks stopped: no more deadline warnings, and it no longer counts as open."


@group.command(
    "reject",
    summary="end the case as not to be fixed, with the reason: the reporter gets the rejection",
    reporter_gets="the rejection mail, with the reason in plain words",
    args=[
        Arg("reason", "why the report is not handled as a vulnerability", choices=REJECT_REASONS),
        Arg("text", "more explanation, sent to the reporter as written", optional=True, rest=True),
    ],
    details=(
        "not-a-vulnerability: no security weakness; out-of-scope: not covered by the policy "
        "(e.g. not our system); not-reproducible: we could not reproduce it; accepted-risk: "
        "a known risk we accept. !reopen undoes it."
    ),
)
async def reject(ctx: CommandContext, reason: str, text: str | None) -> str:
    case = end_with(ctx.the_case, CaseState.REJECTED, ctx.now, reason=reason, text=text)
    note = await ctx.save_and_mail(case, "rejected", "rejected", mail_text=text, reason=reason)
    return f"🚫 {case.id} rejected ({reason}) by {ctx.sender}. {STOPPED} {note}"


@group.command(
    "duplicate",
    summary="end the case as a duplicate of an earlier one: the reporter gets the notice",
    reporter_gets=(
        "the duplicate notice (it names the earlier case only when that is their own report)"
    ),
    args=[
        Arg(
            "original",
            "the case it duplicates",
            pattern=CASE_ID_PATTERN,
            label="CVD-ID",
        )
    ],
    details=(
        "In this case's thread: !duplicate CVD-YYYY-NNNN names the earlier case. Another "
        "reporter is only told that it was already reported, never the other case's ID."
    ),
)
async def duplicate(ctx: CommandContext, original: str) -> str:
    original_id = parse_case_id(original)
    assert original_id is not None  # the argument's pattern is the case ID pattern
    case = end_with(ctx.the_case, CaseState.DUPLICATE, ctx.now, duplicate_of=original_id)
    earlier = await cases.get_case(ctx.conn, original_id)
    if earlier is None:
        raise CommandError(f"there is no case {original_id}; nothing was changed.")
    named = original_id if same_reporter(case, earlier) else None
    await ctx.save(case, "duplicate", duplicate_of=original_id, named_in_mail=named is not None)
    queued = await ctx.services.mailer.enqueue(
        ctx.conn,
        case,
        "duplicate",
        idem_key=f"mail:{ctx.event_id}",
        now=ctx.now,
        duplicate_of=named,
    )
    told = (
        f" The mail names {original_id}: it is the same reporter's case."
        if named and queued.queued
        else ""
    )
    return (
        f"🔁 {case.id} marked as a duplicate of {original_id} by {ctx.sender}. {STOPPED} "
        f"{queued.note}{told}"
    )


@group.command(
    "withdrawn",
    summary="the reporter withdrew the report: they get the confirmation that we stopped",
    reporter_gets="the confirmation that we stopped handling the report",
)
async def withdrawn(ctx: CommandContext) -> str:
    case = end_with(ctx.the_case, CaseState.WITHDRAWN, ctx.now)
    note = await ctx.save_and_mail(case, "withdrawn", "withdrawn")
    return f"↩️ {case.id} marked as withdrawn by {ctx.sender}. {STOPPED} {note}"


@group.command(
    "spam",
    summary="end the case as spam: nothing is sent",
    reporter_gets="nothing",
)
async def spam(ctx: CommandContext) -> str:
    case = end_with(ctx.the_case, CaseState.SPAM, ctx.now)
    await ctx.save(case, "spam")
    return f"🗑️ {case.id} marked as spam by {ctx.sender}. {STOPPED} No mail was sent."


@group.command(
    "reopen",
    summary="bring a case back from an outcome or from closed, until its data is deleted",
    reporter_gets="nothing (use !reply to tell them)",
    details=(
        "The case returns to the state its kept promises give (new, acknowledged, assessed "
        "or fixed), and the deadline clocks of the promises not yet kept run again."
    ),
)
async def reopen_command(ctx: CommandContext) -> str:
    before = ctx.the_case
    case = reopen(before)
    await ctx.save(case, "reopened", was=before.state_text, now_state=case.state.value)
    await next_checks.check_soon(ctx.conn, case.id)
    clocks = "Its clocks run again." if case.state.clocks_run else "It has no clocks left to run."
    return (
        f"🔓 {case.id} reopened by {ctx.sender}: it was {before.state_text}, it is "
        f"{case.state_text} again. {clocks} The reporter was not told; !reply writes to them."
    )
