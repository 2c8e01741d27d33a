"""The policy's promises beyond the fix: !credit, !consent, !reward, !ibd, !publish, !advisory.

Each decision is stored in `case_decisions` (storage/case_decisions.py; the rules are in
bot/policy/decisions.py) and written to the audit log with its evidence: always the Matrix
event ID of the command, and for what the reporter told us (credit, consent, the joint
publication decision) the mail it rests on: `--evidence <mail-id>` (the stored mail's number
or its Message-ID), or by default the reporter's latest mail in the case.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from bot.advisory.from_case import NoAdvisory, advisories
from bot.mailout.ibd import queue_ibd_mail
from bot.outbox import payloads
from bot.outbox.payloads import FilePost
from bot.policy import decisions as rules
from bot.policy.decisions import Decisions
from bot.policy.lifecycle import TransitionError
from commands.context import CommandContext
from commands.registry import Arg, CommandError, CommandGroup, Role
from storage import case_decisions, case_events, mails

group = CommandGroup()

EVIDENCE_HELP = (
    "Evidence: add --evidence <mail-id> (the stored mail's number or its Message-ID) to name "
    "the reporter's mail this rests on; without it the reporter's latest mail in the case is "
    "recorded. The command's own event ID is always recorded."
)
_EVIDENCE = re.compile(r"(?:^|\s)--evidence\s+(\S+)\s*$")
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def split_evidence(text: str | None) -> tuple[str, str | None]:
    """(the text without `--evidence X`, X)."""
    if not text:
        return "", None
    match = _EVIDENCE.search(text)
    if match is None:
        if "--evidence" in text:
            raise CommandError("--evidence goes last, with one mail ID: --evidence 12")
        return text.strip(), None
    return text[: match.start()].strip(), match.group(1)


async def evidence_of(ctx: CommandContext, given: str | None) -> tuple[str, dict[str, Any]]:
    """What a decision the reporter made rests on: (how the thread names it, audit data)."""
    case = ctx.the_case
    data: dict[str, Any] = {"event_id": ctx.event_id}
    if given is not None:
        mail = await mails.case_mail(ctx.conn, case.id, given)
        if mail is None:
            raise CommandError(f"{case.id} has no incoming mail {given!r} (a number or Message-ID)")
    elif case.reporter_address is not None:
        mail = await mails.latest_from(ctx.conn, case.id, case.reporter_address)
    else:
        mail = None
    if mail is None:
        data["evidence"] = f"event {ctx.event_id}"
        return f"the team's word (command {ctx.event_id})", data
    data.update(evidence=f"mail {mail.id} {mail.message_id}", mail_id=mail.id)
    data["message_id"] = mail.message_id
    return f"mail {mail.id} {mail.message_id}", data


async def _save(ctx: CommandContext, d: Decisions, kind: str, **data: Any) -> None:
    await case_decisions.save(ctx.conn, d)
    await case_events.record(
        ctx.conn,
        ctx.the_case.id,
        actor=ctx.sender,
        kind=kind,
        at=ctx.now,
        data={"event_id": ctx.event_id, **data},
    )


# ------------------------------------------------------------------------------ credit


@group.command(
    "credit",
    summary="record the reporter's credit choice: a name (and URL) or anonymous (the default)",
    reporter_gets="nothing",
    args=[
        Arg("choice", "name or anonymous", choices=("name", "anonymous")),
        Arg(
            "words",
            "the display name the reporter chose, optionally followed by a URL",
            optional=True,
            rest=True,
            label="display name [url] [--evidence mail-id]",
        ),
    ],
    details="The advisory names the reporter only with a credit name. " + EVIDENCE_HELP,
)
async def credit(ctx: CommandContext, choice: str, words: str | None) -> str:
    case = ctx.the_case
    text, given = split_evidence(words)
    name = url = None
    if choice == "name":
        name, url = rules.parse_credit_name(text)
    elif text:
        raise CommandError("!credit anonymous takes no name")
    where, evidence = await evidence_of(ctx, given)
    d = await case_decisions.load(ctx.conn, case.id)
    d = rules.give_credit(case, d, name, url, evidence["evidence"], ctx.now)
    await _save(ctx, d, "credit", name=name, url=url, **evidence)
    said = f"credited as {name}" + (f" ({url})" if url else "") if name else "anonymous"
    return f"🏷️ {case.id}: the reporter is {said} (recorded by {ctx.sender}; evidence: {where})."


@group.command(
    "consent",
    summary="record whether the reporter's contact details may be shared (e.g. with the IBD)",
    reporter_gets="nothing",
    args=[
        Arg("what", "what the consent is for", choices=("share-contact",)),
        Arg("answer", "the reporter's answer", choices=("yes", "no")),
        Arg(
            "evidence",
            optional=True,
            rest=True,
            label="--evidence mail-id",
        ),
    ],
    details="Without a yes the IBD mail leaves the reporter's name and address out. "
    + EVIDENCE_HELP,
)
async def consent(ctx: CommandContext, what: str, answer: str, evidence: str | None) -> str:
    case = ctx.the_case
    rest, given = split_evidence(evidence)
    if rest:
        raise CommandError(f"unexpected {rest!r}")
    where, data = await evidence_of(ctx, given)
    d = await case_decisions.load(ctx.conn, case.id)
    d = rules.set_consent(case, d, answer == "yes", data["evidence"], ctx.now)
    await _save(ctx, d, "consent", share_contact=answer == "yes", **data)
    shared = "may" if answer == "yes" else "may not"
    return (
        f"🔏 {case.id}: the reporter's contact details {shared} be shared (recorded by "
        f"{ctx.sender}; evidence: {where})."
    )


# ------------------------------------------------------------------------------ reward


@group.command(
    "reward",
    summary="the reward decision: the team proposes, a manager approves or declines",
    reporter_gets="on approve: the reward mail asking what is needed to deliver it",
    args=[
        Arg("step", "what to record", choices=("propose", "approve", "decline", "details", "sent")),
        Arg("text", "see below", optional=True, rest=True),
    ],
    step_roles={"approve": Role.MANAGER, "decline": Role.MANAGER},
    details=(
        "!reward propose diligence=<…> quality=<…> seriousness=<…> <what you propose> weighs "
        "the policy's three criteria. !reward approve [text] (the text goes into the "
        "reporter's mail) or !reward decline [text]: managers only. !reward details <text> "
        "keeps what delivery needs (e.g. a postal address) until !reward sent, which "
        "removes it."
    ),
)
async def reward(ctx: CommandContext, step: str, text: str | None) -> str:
    case = ctx.the_case
    d = await case_decisions.load(ctx.conn, case.id)
    if step == "propose":
        d = rules.propose_reward(case, d, text or "", ctx.now)
        await _save(
            ctx, d, "reward_proposed", criteria=d.reward_criteria, proposal=d.reward_proposal
        )
        return (
            f"🎁 {case.id}: reward proposed by {ctx.sender} ({d.reward_criteria}): "
            f"{d.reward_proposal}. A manager decides with !reward approve or !reward decline."
        )
    if step in ("approve", "decline"):
        d = rules.decide_reward(case, d, step == "approve", text, ctx.sender, ctx.now)
        await _save(ctx, d, f"reward_{d.reward_state}", text=text, decided_by=ctx.sender)
        if step == "decline":
            return f"🎁 {case.id}: reward declined by {ctx.sender}. The reporter gets no mail."
        queued = await ctx.services.mailer.enqueue(
            ctx.conn, case, "reward", idem_key=f"mail:{ctx.event_id}", now=ctx.now, text=text
        )
        return f"🎁 {case.id}: reward approved by {ctx.sender}. {queued.note}"
    if step == "details":
        if not text:
            raise CommandError("!reward details needs the delivery details")
        d = rules.reward_details(case, d, text)
        # The details themselves stay out of the audit log: they are removed when sent.
        await _save(ctx, d, "reward_details_recorded")
        return f"🎁 {case.id}: delivery details kept until !reward sent removes them."
    d = rules.reward_sent(case, d, ctx.now)
    await _save(ctx, d, "reward_sent", text=text)
    return f"🎁 {case.id}: reward sent, recorded by {ctx.sender}; the delivery details are removed."


# ------------------------------------------------------------------------------ IBD


@group.command(
    "ibd",
    summary="share the case with the IBD: a PGP-encrypted, signed mail with the TLP label",
    reporter_gets="nothing",
    args=[
        Arg(
            "label",
            f"{', '.join(rules.TLP_LABELS)} (default {rules.DEFAULT_TLP}), or update",
            optional=True,
            label="TLP label|update",
        )
    ],
    details=(
        "Once the case is assessed. The mail carries the case ID, dates, affected hosts and "
        "URLs, the description, severity and CVSS, and the state; the reporter's name and "
        "address only after !consent share-contact yes. !ibd update sends the outcome later "
        "with the same label. Needs the ibd section in the configuration."
    ),
)
async def ibd(ctx: CommandContext, label: str | None) -> str:
    case = ctx.the_case
    if ctx.services.config.ibd is None:
        raise CommandError(
            "the IBD is not configured (ibd.email and ibd.key_fingerprint), so nothing was "
            "shared. Ask the operator to add it; cvdbot check-config warns about it."
        )
    d = await case_decisions.load(ctx.conn, case.id)
    update = label is not None and label.lower() == "update"
    if update:
        d = rules.update_ibd(case, d, ctx.now)
        tlp = d.ibd_tlp or rules.DEFAULT_TLP
    else:
        tlp = rules.parse_tlp(label)
        d = rules.share_with_ibd(case, d, tlp, ctx.now)
    note = await queue_ibd_mail(
        ctx.conn,
        ctx.services.config,
        case,
        d,
        tlp=tlp,
        update=update,
        idem_key=f"ibd:{ctx.event_id}",
        now=ctx.now,
    )
    await _save(
        ctx,
        d,
        "ibd_updated" if update else "ibd_shared",
        tlp=tlp,
        to=ctx.services.config.ibd.email,
        contact_shared=d.share_contact and case.reporter_address is not None,
    )
    who = "with" if d.share_contact and case.reporter_address else "without"
    what = "update for" if update else "share of"
    return f"🛡️ {ctx.sender} sent the IBD {what} {case.id} {who} the reporter's contact. {note}"


# ------------------------------------------------------------------------------ publication


@group.command(
    "publish",
    summary="the joint decision on publication, after the fix",
    reporter_gets="on propose: the publication proposal mail",
    args=[
        Arg("step", "what to record", choices=("propose", "agreed", "declined", "none")),
        Arg("date", "YYYY-MM-DD", pattern=DATE, optional=True, label="YYYY-MM-DD"),
        Arg("text", optional=True, rest=True, label="text|--evidence mail-id"),
    ],
    details=(
        "!publish propose <YYYY-MM-DD> [text] mails the reporter the proposal. !publish "
        "agreed [date] (default: the proposed date), !publish declined (the reporter does "
        "not want it published) and !publish none (no publication) record the decision. "
        + EVIDENCE_HELP
    ),
)
async def publish(ctx: CommandContext, step: str, date: str | None, text: str | None) -> str:
    case = ctx.the_case
    d = await case_decisions.load(ctx.conn, case.id)
    when = rules.parse_date(date) if date else None
    if step == "propose":
        if when is None:
            raise CommandError("!publish propose needs the date: !publish propose YYYY-MM-DD")
        d = rules.propose_publication(case, d, when, text, ctx.now)
        await _save(ctx, d, "publication_proposed", date=when.isoformat(), text=text)
        queued = await ctx.services.mailer.enqueue(
            ctx.conn,
            case,
            "publication",
            idem_key=f"mail:{ctx.event_id}",
            now=ctx.now,
            text=text,
            publish_date=when,
        )
        return f"📣 {case.id}: publication on {when} proposed by {ctx.sender}. {queued.note}"
    rest, given = split_evidence(text)
    if rest:
        raise CommandError(f"unexpected {rest!r}")
    if step != "agreed" and when is not None:
        raise CommandError(f"!publish {step} takes no date")
    where, data = await evidence_of(ctx, given)
    d = rules.decide_publication(case, d, step, when, data["evidence"], ctx.now)
    date_text = d.publish_date.isoformat() if d.publish_date else None
    await _save(ctx, d, f"publication_{step}", date=date_text, **data)
    said = {
        "agreed": f"publication agreed for {date_text}",
        "declined": "the reporter declined publication",
        "none": "no publication",
    }[step]
    return f"📣 {case.id}: {said} (recorded by {ctx.sender}; evidence: {where})."


@group.command(
    "advisory",
    summary="post the CSAF 2.0 and Markdown advisories into the thread as encrypted files",
    reporter_gets="nothing",
    details=(
        "Only for a fixed case. The CSAF document is validated against the official schema; "
        "the reporter is named only with !credit name. cvdbot advisory prints the same."
    ),
)
async def advisory(ctx: CommandContext) -> str:
    case = ctx.the_case
    try:
        made = await advisories(ctx.conn, ctx.services.config, case.id, ctx.now)
    except NoAdvisory as exc:
        raise TransitionError(str(exc)) from exc
    files = [
        (f"{case.id}.csaf.json", "application/json", made.csaf, "csaf"),
        (f"{case.id}.md", "text/markdown", made.markdown, "md"),
    ]
    digests = {}
    for filename, mimetype, text, key in files:
        data = text.encode("utf-8")
        digests[filename] = hashlib.sha256(data).hexdigest()
        await payloads.enqueue(
            ctx.conn,
            FilePost(f"{filename} (advisory of {case.id})", filename, mimetype, data),
            idem_key=f"advisory-{key}:{ctx.event_id}",
            case_id=case.id,
            now=ctx.now,
        )
    await case_events.record(
        ctx.conn,
        case.id,
        actor=ctx.sender,
        kind="advisory_posted",
        at=ctx.now,
        data={
            "event_id": ctx.event_id,
            "tlp": made.facts.tlp,
            "credited": made.facts.credit_name is not None,
            "sha256": digests,
        },
    )
    credit = f"credits {made.facts.credit_name}" if made.facts.credit_name else "names no reporter"
    return (
        f"📄 {case.id}: the CSAF 2.0 advisory (valid against the official schema) and the "
        f"Markdown advisory are posted in this thread as encrypted files; {made.facts.tlp}, "
        f"{credit}."
    )
