"""The case lifecycle commands: !ack, !assess, !fixed, !status."""

from __future__ import annotations

import re

from bot.policy.cvss_vector import InvalidVector, rate, severity_differs
from bot.policy.lifecycle import SEVERITIES, CaseState, acknowledge, assess, mark_fixed
from commands.context import CommandContext
from commands.deadlines import status_text as sla_status_text
from commands.registry import Arg, CommandError, CommandGroup

group = CommandGroup()

# Any word that starts with CVSS: is taken as the vector and validated (a malformed one is
# refused), never passed on to the reporter as the assessment's text.
CVSS_VECTOR = re.compile(r"CVSS:\S+")


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
            "a CVSS 3.0, 3.1 or 4.0 vector, e.g. CVSS:3.1/AV:N/…; its score is computed",
            pattern=CVSS_VECTOR,
            optional=True,
            label="CVSS vector",
        ),
        Arg("text", "the assessment in words, sent to the reporter", optional=True, rest=True),
    ],
    details=(
        "An invalid CVSS vector is refused with the reason. When the vector's severity differs "
        "from the one given, the answer says so; the team's severity is recorded. An "
        "assessment can be revised with a new !assess until the case is fixed: the first "
        "assessment's time stays, the revision is in !history."
    ),
)
async def assess_command(
    ctx: CommandContext, severity: str, vector: str | None, text: str | None
) -> str:
    before = ctx.the_case
    rating = None
    if vector is not None:
        try:
            rating = rate(vector)
        except InvalidVector as exc:
            raise CommandError(
                f"the CVSS vector is not valid: {exc}. Nothing was changed, no mail was sent."
            ) from None
    case = assess(before, ctx.now, severity, vector, text)
    score = rating.text() if rating else None
    if before.state is CaseState.ASSESSED:
        revised = f"{before.severity} -> {severity}"
        note = await ctx.save_and_mail(
            case,
            "assessment_revised",
            "assessment",
            severity=severity,
            cvss_vector=vector,
            cvss_score=score,
            revised=revised,
            severity_before=before.severity,
            cvss_vector_before=before.cvss_vector,
        )
        answer = f"📋 {case.id} re-assessed as {severity} by {ctx.sender} (revised: {revised})."
    else:
        note = await ctx.save_and_mail(
            case, "assessed", "assessment", severity=severity, cvss_vector=vector, cvss_score=score
        )
        answer = f"📋 {case.id} assessed as {severity} by {ctx.sender}."
    if rating is not None:
        answer += f" {rating.text()}."
        if severity_differs(severity, rating):
            answer += (
                f" ⚠️ The vector's severity is {rating.severity}, not {severity}; the case "
                f"keeps {severity}, as given."
            )
    return f"{answer} {note}"


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
