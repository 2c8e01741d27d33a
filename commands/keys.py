"""!key accept / !key reject: the team's decision on a reporter key that differs from the
pinned one (trust on first use, bot/mailin/steps/key_trust.py)."""

from __future__ import annotations

import re

from bot.pgp.gpg import format_fingerprint
from commands.context import CommandContext
from commands.registry import Arg, CommandError, CommandGroup
from storage import case_events, reporter_keys

group = CommandGroup()

_FINGERPRINT = re.compile(r"[0-9A-Fa-f ]{16,59}")


@group.command(
    "key",
    summary="accept or reject a reporter key that differs from the pinned one",
    args=[
        Arg(
            "decision",
            "accept: encrypt to the new key from now on; reject: never use it",
            choices=("accept", "reject"),
        ),
        Arg(
            "fingerprint",
            "which waiting key (default: the newest), as the thread shows it",
            pattern=_FINGERPRINT,
            optional=True,
            rest=True,
        ),
    ],
    details=(
        "Anyone can forge a sender address, so a key that arrives after the first one is not "
        "used until a team member accepts it here, after checking it with the reporter by "
        "another channel."
    ),
)
async def key(ctx: CommandContext, decision: str, fingerprint: str | None) -> str:
    case = ctx.the_case
    address = case.reporter_address
    if address is None:
        raise CommandError(f"{case.id} has no reporter address, so no reporter key.")
    records = await reporter_keys.keys_of(ctx.conn, address)
    waiting = [r for r in records if r.status == "pending"]
    wanted = "".join((fingerprint or "").split()).upper()
    if wanted:
        waiting = [r for r in waiting if r.fingerprint == wanted]
    if not waiting:
        raise CommandError(f"No key of {address} is waiting for a decision.")
    chosen = waiting[-1]
    accept = decision == "accept"
    await reporter_keys.decide(
        ctx.conn,
        address=address,
        fingerprint=chosen.fingerprint,
        accept=accept,
        by=ctx.sender,
        at=ctx.now,
    )
    await case_events.record(
        ctx.conn,
        case.id,
        actor=ctx.sender,
        kind="reporter_key_accepted" if accept else "reporter_key_rejected",
        at=ctx.now,
        data={"address": address, "fingerprint": chosen.fingerprint},
    )
    grouped = format_fingerprint(chosen.fingerprint)
    if accept:
        return (
            f"🔑 {ctx.sender} accepted the key {grouped} for {address}: it is pinned now, and "
            "mail to them is encrypted to it."
        )
    return f"🔑 {ctx.sender} rejected the key {grouped} for {address}: it is never used."
