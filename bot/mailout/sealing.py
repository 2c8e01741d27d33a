"""Protecting a mail before it leaves: PGP-encrypted and signed when a key for the recipient
is known, else signed only. The one place that choice is made and worded.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage

from bot.pgp.gpg import Pgp

ENCRYPTED = "PGP-encrypted and signed"
NO_KEY_KNOWN = "no PGP key known for this address"


@dataclass(frozen=True)
class Sealed:
    """The exact bytes to send and what the thread is told about their protection."""

    raw: bytes
    protection: str


def signed_only(why: str) -> str:
    return f"signed; not encrypted, {why}"


def protection(key: str | None, unencrypted_why: str = NO_KEY_KNOWN) -> str:
    """How a mail sealed with `key` (None: no key) is protected, as the thread says it."""
    return ENCRYPTED if key else signed_only(unencrypted_why)


async def recipient_key(pgp: Pgp, address: str) -> str | None:
    """The usable encryption key for `address` in the bot's keyring, if any."""
    return await asyncio.to_thread(pgp.key_for_address, address)


async def seal(
    pgp: Pgp, message: EmailMessage, key: str | None, *, unencrypted_why: str = NO_KEY_KNOWN
) -> Sealed:
    """Encrypt to `key` (and the bot's own key) and sign, or sign only when `key` is None.

    gpg runs in a worker thread: the agent may take seconds. Callers hold no database
    transaction while this runs. `unencrypted_why` ends the wording of a signed-only mail.
    """
    if key:
        sealed = await asyncio.to_thread(pgp.encrypt_mime, message, [key])
    else:
        sealed = await asyncio.to_thread(pgp.sign_mime, message)
    return Sealed(sealed.as_bytes(policy=policy.SMTP), protection(key, unencrypted_why))
