"""Protecting a mail before it leaves: PGP-encrypted and signed when a key for the recipient
is known, else signed only. The one place that choice is made and worded.
"""

from __future__ import annotations

import asyncio
import copy
from dataclasses import dataclass
from email.message import EmailMessage

from bot.pgp.gpg import Pgp
from bot.pgp.mime_wire import WIRE
from storage import reporter_keys
from storage.db import Database

ENCRYPTED = "PGP-encrypted and signed"
NO_KEY_KNOWN = "no PGP key known for this address"


@dataclass(frozen=True)
class Sealed:
    """The exact bytes to send and what the thread is told about their protection."""

    raw: bytes
    protection: str


def signed_only(why: str) -> str:
    return f"signed; not encrypted, {why}"


def outer_subject(real_subject: str, fixed_subject: str, *, confidential: bool) -> str | None:
    """The one rule for the Subject a mail shows outside its encryption (reporter mail, the
    digest, and any later kind such as the IBD mail): None (the real subject may show) when
    the mail carries no report content that came encrypted; else `fixed_subject` (a case
    tag and a fixed phrase). `seal` then puts the real subject only inside the encryption
    (RFC 9788 protected headers), and when no key is known, nowhere."""
    if not confidential or real_subject == fixed_subject:
        return None
    return fixed_subject


async def recipient_key(pgp: Pgp, db: Database, address: str) -> str | None:
    """The key to encrypt to for `address`: the pinned one (trust on first use,
    storage/reporter_keys.py) if it is still usable (not revoked or expired); with none
    pinned, a usable key the keyring holds that no mail brought (put there by the operator,
    as for the managers' digest addresses). A key waiting for `!key accept` or rejected is
    never used."""
    async with db.transaction() as conn:
        pinned, exclude = await reporter_keys.key_choice(conn, address)
    return await asyncio.to_thread(pgp.key_for_address, address, pinned=pinned, exclude=exclude)


def protection(key: str | None, unencrypted_why: str = NO_KEY_KNOWN) -> str:
    """How a mail sealed with `key` (None: no key) is protected, as the thread says it."""
    return ENCRYPTED if key else signed_only(unencrypted_why)


async def seal(
    pgp: Pgp,
    message: EmailMessage,
    key: str | None,
    *,
    unencrypted_why: str = NO_KEY_KNOWN,
    hidden_subject: str | None = None,
) -> Sealed:
    """Encrypt to `key` (and the bot's own key) and sign, or sign only when `key` is None.

    `hidden_subject` (from `outer_subject`): the Subject shown outside; the message's own
    Subject then goes only into the encrypted part, or is replaced when there is no key.
    gpg runs in a worker thread: the agent may take seconds. Callers hold no database
    transaction while this runs. `unencrypted_why` ends the wording of a signed-only mail.
    """
    if key:
        hide: bool | str = hidden_subject or False
        sealed = await asyncio.to_thread(pgp.encrypt_mime, message, [key], hide_subject=hide)
    else:
        if hidden_subject is not None:
            message = copy.deepcopy(message)
            message.replace_header("Subject", hidden_subject)
        sealed = await asyncio.to_thread(pgp.sign_mime, message)
    return Sealed(sealed.as_bytes(policy=WIRE), protection(key, unencrypted_why))
