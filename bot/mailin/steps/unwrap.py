"""Intake step "decrypt and verify": the readable layer of a mail, its signature verdict,
and, for mail from people, a forwarded report inside it and the public keys it carries.

This runs before the intake's transaction: gpg may be slow, and importing a reporter's key
again after a crash changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import re
from email import policy
from email.message import Message
from email.parser import BytesHeaderParser

from bot.mailin.attachments import is_pgp_mime_encrypted, layer_payloads, readable_layer
from bot.mailin.bounds import DEFAULT_BOUNDS, MailBounds
from bot.mailin.forwarded import detect_forward
from bot.mailin.intake_posts import UNDECRYPTABLE
from bot.mailin.parse import parse_message
from bot.mailin.reporter_keys import find_key_material, import_reporter_keys
from bot.mailin.steps.incoming import IncomingMail
from bot.pgp.gpg import DecryptResult, Pgp

log = logging.getLogger(__name__)

# Every form of PGP the reader knows carries one of these: an armor line, or the protocol
# parameter of multipart/encrypted or multipart/signed.
_PGP_MARKER = re.compile(rb"-----BEGIN PGP|application/pgp-", re.IGNORECASE)
_ARMORED_MESSAGE = re.compile(
    r"-----BEGIN PGP MESSAGE-----.*?(?:-----END PGP MESSAGE-----|\Z)", re.S
)


async def unwrap(
    pgp: Pgp, mail: IncomingMail, *, examine: bool, bounds: MailBounds = DEFAULT_BOUNDS
) -> None:
    """Decrypt and verify `mail`; with `examine`, also import the keys it carries.

    Automatic mail is only decrypted: it is neither a forward nor a source of keys.
    """
    result = await decrypt_and_verify(pgp, mail)
    mail.layer, layer_bytes = readable_layer(mail.raw, mail.parsed, result)
    if mail.layer == "decrypted" or mail.parsed.attachments:
        mail.payloads = await asyncio.to_thread(layer_payloads, layer_bytes, bounds)
    if mail.parsed.is_automatic:
        return
    if mail.encryption != "failed":
        mail.forwarded = detect_forward(mail.subject, mail.text, mail.payloads)
    if examine:
        try:
            await import_keys(pgp, mail)
        except Exception as exc:  # a hostile key must not stop the report being stored
            log.warning("reporter key handling failed (%s)", type(exc).__name__)
            mail.notes.append("the public key in this mail could not be processed")


async def decrypt_and_verify(pgp: Pgp, mail: IncomingMail) -> DecryptResult | None:
    """Replace the mail's text and subject by the decrypted ones; note what could not be."""
    parsed = mail.parsed
    if not _PGP_MARKER.search(mail.raw):
        # Neither armored data nor a PGP/MIME content type anywhere: nothing for gpg, and
        # no second full parse of a mail of thousands of parts.
        return None
    try:
        result = await asyncio.to_thread(pgp.decrypt_raw, mail.raw)
    except Exception as exc:  # hostile input can upset gpg or python-gnupg in odd ways
        log.warning("PGP processing failed (%s); the mail is read as it is", type(exc).__name__)
        mail.notes.append("the PGP processing of this mail failed; read as it is")
        return None
    mail.signature = result.signature
    if result.encrypted:
        mail.encryption_style = "PGP/MIME" if is_pgp_mime_encrypted(parsed) else "inline PGP"
        # The outer layer of an encrypted mail has no text of its own; that is no problem.
        mail.notes = [note for note in mail.notes if note != "no readable text body"]
    if result.encrypted and not result.decrypted:
        mail.encryption = "failed"
        mail.decrypt_error = result.error
        placeholder = f"[PGP-encrypted content: it {UNDECRYPTABLE}]"
        text = _ARMORED_MESSAGE.sub(placeholder, parsed.text)
        mail.text = text if text.strip() else placeholder
        return result
    if result.message is not None:
        inner = parse_message(result.message, len(mail.raw))
        mail.text = inner.text
        # An encrypted part rarely repeats From, Date or Message-ID; only what is wrong
        # with its body is news to the team.
        mail.notes.extend(p for p in inner.problems if "header" not in p)
        if result.encrypted:
            mail.encryption = "decrypted"
    if result.protected_subject:
        mail.subject = " ".join(result.protected_subject.split())
    return result


async def import_keys(pgp: Pgp, mail: IncomingMail) -> None:
    """Import the sender's keys found in the mail; re-check a signature one of them made."""
    headers = _header_section(mail.raw)
    material = find_key_material(mail.text, mail.payloads, headers, mail.sender)
    if not material:
        return
    if mail.sender:
        # What the keyring held before: the key to pin first if no mail brought one yet.
        mail.keyring_key = await asyncio.to_thread(pgp.key_for_address, mail.sender)
    mail.keys = await asyncio.to_thread(import_reporter_keys, pgp, mail.sender, material)
    imported = any(outcome.imported_fingerprint for outcome in mail.keys)
    if imported and mail.signature is not None and mail.signature.status == "unknown_key":
        # The key that signed the mail came with it: check the signature again.
        again = await asyncio.to_thread(pgp.decrypt_raw, mail.raw)
        if again.signature is not None:
            mail.signature = again.signature
            mail.signing_key_came_with_mail = True


def _header_section(raw: bytes) -> Message | None:
    try:
        return BytesHeaderParser(policy=policy.compat32).parsebytes(raw)
    except Exception:  # only the Autocrypt header is read from it; hostile bytes mean none
        return None
