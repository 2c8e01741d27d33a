"""Intake step "key trust": reporter keys as trust on first use.

The first key seen for an address is pinned, and only a pinned key is ever encrypted to
(bot/mailout/sealing.py, `recipient_key`). A different key later waits until a team member
runs `!key accept` or `!key reject` (commands/keys.py), and every case thread of that address
is told that it arrived: anyone can forge a From address, so a mail must never be able to
redirect later mail to a key of its own. A key the keyring already held (the operator's, as
for the managers' digest addresses) counts as the first one; a digest address never gets a
key pinned by mail alone. A good signature says which kind of key made it.
"""

from __future__ import annotations

from datetime import datetime

import aiosqlite

from bot.mailin.intake_posts import (
    SIGNED_BY_KEY_WITH_MAIL,
    SIGNED_BY_PINNED_KEY,
    SIGNED_BY_UNPINNED_KEY,
)
from bot.mailin.reporter_keys import KEY_IMPORTED, KeyOutcome
from bot.mailin.steps.incoming import IncomingMail, IntakeSetup
from bot.matrix.posts import Post, post_to_case
from bot.pgp.gpg import format_fingerprint
from storage import case_events, cases, reporter_keys
from storage.reporter_keys import KeyRecord, KeyStatus

#: Thread wording, for tests.
KEY_WAITS = "is not used until a team member runs !key accept"


async def signature_trust(conn: aiosqlite.Connection, mail: IncomingMail) -> None:
    """Say of a good signature whether a pinned key made it; before this mail's keys count."""
    signature = mail.signature
    if signature is None or signature.status != "good" or not signature.fingerprint:
        return
    records = await reporter_keys.keys_of(conn, mail.sender) if mail.sender else []
    for record in records:
        if record.fingerprint == signature.fingerprint and record.status == "pinned":
            mail.signature_trust = f"{SIGNED_BY_PINNED_KEY} {record.recorded_at.date()}"
            return
    came_with_mail = mail.signing_key_came_with_mail
    mail.signature_trust = SIGNED_BY_KEY_WITH_MAIL if came_with_mail else SIGNED_BY_UNPINNED_KEY


async def record_keys(
    conn: aiosqlite.Connection,
    setup: IntakeSetup,
    case_id: str,
    mail_id: int,
    mail: IncomingMail,
    now: datetime,
) -> list[str]:
    """Pin or hold the keys this mail brought; the lines this case's thread should show."""
    lines: list[str] = []
    for outcome in mail.keys:
        if not (outcome.imported_fingerprint and mail.sender):
            lines.append(outcome.message)
            continue
        lines.append(await _one_key(conn, setup, case_id, mail_id, mail, outcome, now))
    return lines


async def _one_key(
    conn: aiosqlite.Connection,
    setup: IntakeSetup,
    case_id: str,
    mail_id: int,
    mail: IncomingMail,
    outcome: KeyOutcome,
    now: datetime,
) -> str:
    address = (mail.sender or "").lower()
    fingerprint = outcome.imported_fingerprint or ""
    grouped = format_fingerprint(fingerprint)
    records = await reporter_keys.keys_of(conn, address)
    known = next((r for r in records if r.fingerprint == fingerprint), None)
    if known is not None:
        return _known_line(known, address, grouped)
    pinned = _pinned(records)
    if pinned is None and mail.keyring_key and mail.keyring_key != fingerprint:
        if all(r.fingerprint != mail.keyring_key for r in records):
            # The operator's key, there before any mail: it is the first one seen.
            await reporter_keys.record_key(
                conn,
                address=address,
                fingerprint=mail.keyring_key,
                status="pinned",
                mail_id=None,
                case_id=None,
                at=now,
            )
            pinned = KeyRecord(address, mail.keyring_key, "pinned", now, None)
    digest_address = address in {a.lower() for a in setup.config.digest.email_to}
    status: KeyStatus = "pinned" if pinned is None and not digest_address else "pending"
    await reporter_keys.record_key(
        conn,
        address=address,
        fingerprint=fingerprint,
        status=status,
        mail_id=mail_id,
        case_id=case_id,
        at=now,
    )
    await case_events.record(
        conn,
        case_id,
        actor=mail.actor,
        kind="reporter_key_pinned" if status == "pinned" else "reporter_key_pending",
        at=now,
        data={"address": address, "fingerprint": fingerprint},
    )
    if status == "pinned":
        return (
            f"🔑 {KEY_IMPORTED} for {address} ({grouped}), from {outcome.origin}. It is the "
            "first key seen for this address, so it is pinned: mail to them is encrypted to it."
        )
    keeps = (
        f"stays encrypted to the key pinned on {pinned.recorded_at.date()} "
        f"({format_fingerprint(pinned.fingerprint)})"
        if pinned is not None
        else "stays unencrypted (a digest address: no key is pinned by mail alone)"
    )
    waits = (
        f"🔑 A new key for {address} ({grouped}) came with a mail, from {outcome.origin}. It "
        f"{KEY_WAITS} (or !key reject) in a case thread of that address: mail to them {keeps}."
    )
    for other in await cases.case_ids_of_reporter(conn, address):
        if other != case_id:
            await post_to_case(
                conn,
                other,
                Post.text(f"{waits} It came in {case_id}."),
                idem_key=f"new-key:{fingerprint}:{other}",
                now=now,
            )
    return waits


def _pinned(records: list[KeyRecord]) -> KeyRecord | None:
    pinned = [r for r in records if r.status == "pinned"]
    return pinned[-1] if pinned else None


def _known_line(known: KeyRecord, address: str, grouped: str) -> str:
    if known.status == "pinned":
        return (
            f"🔑 The key for {address} ({grouped}) is the one pinned on {known.recorded_at.date()}."
        )
    if known.status == "pending":
        return f"🔑 The key for {address} ({grouped}) came before and still {KEY_WAITS}."
    return f"🔑 The key for {address} ({grouped}) was {known.status} by the team; it is not used."
