"""The case lifecycle commands: !ack, !assess, !fixed, !status."""

from __future__ import annotations

import re

from bot.policy.lifecycle import SEVERITIES, acknowledge, assess, mark_fixed
from commands.context import CommandContext
from commands.deadlines import status_text as sla_status_text
from commands.registry import Arg, CommandGroup

group = CommandGroup()

CVSS_VECTOR = re.compile(r"CVSS:[34]\.[0-9]/[A-Za-z0-9:/.]+")


@group.command(
    "ack",
    summary="confirm receipt: the reporter gets the receipt confirmation mail",
    reporter_gets="the receipt confirmation mail",
)
async def ack(ctx: CommandContext) -> str:
    case = acknowledge(ctx.the_case, ctx.now)
    note = await ctx.save_and_mail(case, "acknowledged", "ack")
    return f"✅ {case.id} acknowledged by {ctx.sender}. {note}"


@group.command(
    "assess",
    summary="record the assessment: the reporter gets the assessment mail",
    reporter_gets="the assessment mail",
    args=[
        Arg("severity", "how serious the weakness is", choices=SEVERITIES),
        Arg(
            "vector",
            "a CVSS 3.x or 4.0 vector, e.g. CVSS:3.1/AV:N/…",
            pattern=CVSS_VECTOR,
            optional=True,
            label="CVSS vector",
        ),
        Arg("text", "the assessment in words, sent to the reporter", optional=True, rest=True),
    ],
    details="An assessment can be revised with a new !assess until the case is fixed.",
)
async def assess_command(
    ctx: CommandContext, severity: str, vector: str | None, text: str | None
) -> str:
    case = assess(ctx.the_case, ctx.now, severity, vector, text)
    note = await ctx.save_and_mail(
        case, "assessed", "assessment", severity=severity, cvss_vector=vector
    )
    return f"📋 {case.id} assessed as {severity} by {ctx.sender}. {note}"


@group.command(
    "fixed",
    summary="record the fix: the reporter gets the fix notice mail",
    reporter_gets="the fix notice mail",
    args=[Arg("text", "what was fixed, sent to the reporter", optional=True, rest=True)],
    details="Only after !ack and !assess: the reporter is owed those answers first.",
)
async def fixed(ctx: CommandContext, text: str | None) -> str:
    case = mark_fixed(ctx.the_case, ctx.now, text)
    note = await ctx.save_and_mail(case, "fixed", "fixed")
    return f"🛠️ {case.id} marked fixed by {ctx.sender}. {note}"


@group.command("status", summary="state, severity, assignee and every deadline with time left")
async def status(ctx: CommandContext) -> str:
    # The card plus the fix clock's pause and extensions (commands/deadlines.py).
    return await sla_status_text(ctx)
