"""Writing to the reporter in the team's own words, and the case's mail language:
!reply (an exact preview), !send (sends the latest preview once), !update (the progress
mail), !lang.

What may be sent when is decided in bot/policy/reply_preview.py and bot/policy/lifecycle.py
(STEPS["update"]); whether a mail goes encrypted is decided by the rule the mail channel
seals with (bot/mailout/sealing.py), looked up by the dispatcher before the transaction.
"""

from __future__ import annotations

from dataclasses import replace

from bot.mailout.reporter import RenderedMail, language_of
from bot.mailout.sealing import protection
from bot.matrix.posts import defuse_mentions
from bot.matrix.render import local
from bot.policy import fix_clock
from bot.policy.lifecycle import Case, check_not_deleted, check_step
from bot.policy.reply_preview import PREVIEW_VALID_FOR, check_sendable
from commands.context import CommandContext
from commands.registry import Arg, CommandError, CommandGroup
from storage import case_events, fix_clocks, reply_previews

group = CommandGroup()

# The team's text goes into one Matrix event (the preview) and one mail: kept well below
# what an event can carry.
MAX_TEXT_CHARS = 8000
LANGUAGE_NAMES = {"nl": "Dutch (nl)", "en": "English (en)"}
SEPARATOR = "────────────────────────────────"


def _reporter_address(case: Case) -> str:
    check_not_deleted(case)
    if case.reporter_address is None:
        raise CommandError(f"{case.id} has no reporter address to write to (anonymous report).")
    return case.reporter_address


def _checked_text(text: str) -> str:
    if len(text) > MAX_TEXT_CHARS:
        raise CommandError(
            f"the text has {len(text)} characters; at most {MAX_TEXT_CHARS} fit one mail "
            "and its preview. Nothing was changed."
        )
    return text


def _key_now(ctx: CommandContext, address: str) -> str | None:
    """The reporter's key as the dispatcher found it just before this command."""
    found = ctx.reporter_key
    if found is None or found.address != address:
        raise CommandError(
            "I could not find out whether I hold the reporter's PGP key, so I cannot say how "
            "the mail would be protected. Nothing was changed; try again in a moment."
        )
    return found.fingerprint


@group.command(
    "reply",
    summary="preview a mail to the reporter in your words; !send sends it",
    reporter_gets="nothing yet: !send sends the previewed reply",
    args=[Arg("text", "what the reporter should read, as written", rest=True)],
    details=(
        "Shows the exact mail (subject, language, body, and whether it goes encrypted or "
        "signed only) and keeps it as the case's latest preview for an hour. A new !reply "
        "replaces it. Not for anonymous reports."
    ),
    needs_reporter_key=True,
)
async def reply(ctx: CommandContext, text: str) -> str:
    case = ctx.the_case
    address = _reporter_address(case)
    text = _checked_text(text)
    key = _key_now(ctx, address)
    mail = ctx.services.mailer.render(case, "reply", text=text)
    preview = await reply_previews.add(
        ctx.conn,
        case_id=case.id,
        event_id=ctx.event_id,
        created_at=ctx.now,
        created_by=ctx.sender,
        language=mail.language,
        to_address=address,
        text=text,
        subject=mail.subject,
        body=mail.body,
        encrypted=key is not None,
    )
    await case_events.record(
        ctx.conn,
        case.id,
        actor=ctx.sender,
        kind="reply_previewed",
        at=ctx.now,
        data={"preview": preview.number, "language": mail.language, "encrypted": key is not None},
    )
    until = local(ctx.now + PREVIEW_VALID_FOR, ctx.services.tz)
    lines = [
        f"📝 Preview #{preview.number} of a reply to the reporter of {case.id} — not sent yet.",
        f"To: {address}",
        f"Subject: {mail.subject}",
        f"Language: {LANGUAGE_NAMES[mail.language]}",
        f"Protection: {protection(key)}",
        SEPARATOR,
        mail.body.rstrip("\n"),
        SEPARATOR,
        f"!send sends it (or !send {preview.number}), until {until}; a new !reply replaces it.",
    ]
    # The subject and the team's text may carry "@room": defused in the room, not the mail.
    return defuse_mentions("\n".join(lines))


@group.command(
    "send",
    summary="send the case's latest !reply preview to the reporter, once",
    reporter_gets="the reply mail, exactly as previewed",
    args=[
        Arg(
            "number",
            "the preview you read (default: the latest); refused when a newer one exists",
            optional=True,
            label="preview number",
        )
    ],
    details=(
        "A preview older than an hour, superseded by a newer !reply, or already sent is "
        "refused; so is one whose language or protection no longer holds."
    ),
    needs_reporter_key=True,
)
async def send(ctx: CommandContext, number: str | None) -> str:
    case = ctx.the_case
    address = _reporter_address(case)
    wanted = None
    if number is not None:
        if not number.lstrip("#").isdigit():
            raise CommandError(f"{number!r} is not a preview number (e.g. !send 2).")
        wanted = int(number.lstrip("#"))
    key = _key_now(ctx, address)
    preview = check_sendable(
        await reply_previews.latest(ctx.conn, case.id),
        wanted=wanted,
        now=ctx.now,
        case_language=language_of(case),
        to_address=address,
        encrypted_now=key is not None,
    )
    if not await reply_previews.mark_sent(
        ctx.conn, case.id, preview.number, at=ctx.now, by=ctx.sender
    ):
        raise CommandError(f"preview #{preview.number} was already sent; nothing was sent again.")
    queued = await ctx.services.mailer.enqueue(
        ctx.conn,
        case,
        "reply",
        idem_key=f"mail:{ctx.event_id}",
        now=ctx.now,
        rendered=RenderedMail(language_of(case), preview.subject, preview.body),
    )
    await case_events.record(
        ctx.conn,
        case.id,
        actor=ctx.sender,
        kind="reply_sent",
        at=ctx.now,
        data={"preview": preview.number, "previewed_by": preview.created_by},
    )
    return f"📨 {ctx.sender} sent reply preview #{preview.number} of {case.id}. {queued.note}"


@group.command(
    "update",
    summary="send the reporter a progress update (your text, or the standard one)",
    reporter_gets="the progress update mail",
    args=[
        Arg(
            "text",
            "the news, sent to the reporter as written (default: we are still working on it; "
            "the fix target is <date>)",
            optional=True,
            rest=True,
        )
    ],
    details=(
        "For an acknowledged, assessed or fixed case; the policy promises to keep the "
        "reporter informed, and the thread is warned when nobody wrote for "
        "policy.update_every_days. Not for anonymous reports."
    ),
)
async def update(ctx: CommandContext, text: str | None) -> str:
    case = ctx.the_case
    check_step(case, "update")
    _reporter_address(case)
    if text is not None:
        text = _checked_text(text)
    # The target date the mail names is the fix deadline as it stands (pauses, extensions).
    clock = await fix_clocks.load(ctx.conn, case.id)
    target = fix_clock.effective_fix_due(case, clock, ctx.now)
    queued = await ctx.services.mailer.enqueue(
        ctx.conn,
        replace(case, fix_due=target),
        "update",
        idem_key=f"mail:{ctx.event_id}",
        now=ctx.now,
        text=text,
    )
    await case_events.record(
        ctx.conn,
        case.id,
        actor=ctx.sender,
        kind="update_sent",
        at=ctx.now,
        data={"text": text, "language": case.language},
    )
    return f"📣 {ctx.sender} sent the reporter of {case.id} a progress update. {queued.note}"


@group.command(
    "lang",
    summary="switch the language of the case's mails to the reporter",
    reporter_gets="nothing; later mails are in the new language",
    args=[Arg("language", "nl (Dutch) or en (English)", choices=("nl", "en"))],
)
async def lang(ctx: CommandContext, language: str) -> str:
    case = ctx.the_case
    check_not_deleted(case)
    if case.language == language:
        raise CommandError(f"the mails of {case.id} are already in {LANGUAGE_NAMES[language]}.")
    changed = replace(case, language=language)
    await ctx.save(changed, "language_changed", previous=case.language, language=language)
    return (
        f"🌐 {ctx.sender} switched the mails of {case.id} from "
        f"{LANGUAGE_NAMES[case.language] if case.language in LANGUAGE_NAMES else case.language} "
        f"to {LANGUAGE_NAMES[language]}. Later mails to the reporter use it."
    )
