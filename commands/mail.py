"""Mail to the reporter beyond the lifecycle steps: !ask (the more-information request)."""

from __future__ import annotations

from bot.policy.lifecycle import CaseState
from commands.context import CommandContext
from commands.registry import Arg, CommandError, CommandGroup
from storage import case_events

group = CommandGroup()


@group.command(
    "ask",
    summary="ask the reporter for more information: the reporter gets that mail",
    reporter_gets="the request for more information",
    args=[
        Arg(
            "text",
            "what you need to know, sent to the reporter as written (default: the standard "
            "request for the URL or IP address and a description)",
            optional=True,
            rest=True,
        )
    ],
    details=(
        "For a report that misses what the policy asks (a way to reproduce, a contact): the "
        "mail is in the report's language and quotes the case tag, so the answer joins this "
        "thread. Not for anonymous reports or fixed cases."
    ),
)
async def ask(ctx: CommandContext, text: str | None) -> str:
    case = ctx.the_case
    if case.reporter_address is None:
        raise CommandError(f"{case.id} has no reporter address to ask (anonymous report).")
    if case.state is CaseState.FIXED:
        raise CommandError(f"{case.id} is fixed; there is nothing more to ask for it.")
    queued = await ctx.services.mailer.enqueue(
        ctx.conn, case, "more_info", idem_key=f"mail:{ctx.event_id}", now=ctx.now, text=text
    )
    await case_events.record(
        ctx.conn,
        case.id,
        actor=ctx.sender,
        kind="more_info_requested",
        at=ctx.now,
        data={"text": text},
    )
    return f"❓ {ctx.sender} asked the reporter of {case.id} for more information. {queued.note}"
