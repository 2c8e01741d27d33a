"""What gpg concluded about a message: the error type, signature verdicts, decryption results.

Plain data shared by the gpg wrapper (bot/pgp/gpg.py) and the PGP/MIME reader (mime_in.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Literal

SignatureStatus = Literal["good", "bad", "unknown_key", "expired_key", "revoked_key", "error"]

# Control characters in a user id or key parameter: shown as spaces, refused in gpg input.
CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


class PgpError(Exception):
    """A gpg operation failed in a way the caller must handle (never carries plaintext)."""


@dataclass(frozen=True)
class SignatureInfo:
    """The outcome of checking one OpenPGP signature."""

    status: SignatureStatus
    fingerprint: str | None
    key_id: str | None
    signer: str | None
    detail: str | None = None

    def describe(self) -> str:
        """One short human line for the case thread."""
        who = printable(self.signer) if self.signer else None
        if self.fingerprint:
            ident = format_fingerprint(self.fingerprint)
        elif self.key_id:
            ident = f"key id {self.key_id}"
        else:
            ident = "unknown key"
        if self.status == "good":
            return f"good signature by {who or 'a key without user id'} ({ident})"
        if self.status == "bad":
            claim = f" claiming to be from {who}" if who else ""
            return f"BAD signature{claim} ({ident}): the content does not match the signature"
        if self.status == "unknown_key":
            return f"signed with a key we do not have ({ident}); signature not checked"
        if self.status == "expired_key":
            return f"signature by {who or 'unknown signer'} ({ident}), but the key has expired"
        if self.status == "revoked_key":
            return f"signature by {who or 'unknown signer'} ({ident}), but the key is revoked"
        return f"signature could not be checked: {self.detail or 'unknown error'}"


@dataclass(frozen=True)
class DecryptResult:
    """What was found in an incoming mail: its protected content and how it was protected."""

    message: EmailMessage | None
    encrypted: bool
    decrypted: bool
    signature: SignatureInfo | None
    protected_subject: str | None
    error: str | None


@dataclass(frozen=True)
class Opened:
    """The interpreted result of one ``gpg --decrypt`` run."""

    plaintext: bytes | None
    encrypted: bool
    decrypted: bool
    signature: SignatureInfo | None
    error: str | None


def format_fingerprint(fingerprint: str) -> str:
    """Group a fingerprint in blocks of four, as gpg shows it to people."""
    fpr = normalise_fingerprint(fingerprint)
    return " ".join(fpr[i : i + 4] for i in range(0, len(fpr), 4))


def normalise_fingerprint(fingerprint: str) -> str:
    fpr = re.sub(r"\s+", "", fingerprint).upper()
    return fpr[2:] if fpr.startswith("0X") else fpr


def printable(text: str) -> str:
    return CONTROL_CHARS.sub(" ", text).strip()
