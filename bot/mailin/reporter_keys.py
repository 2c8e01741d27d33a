"""Public keys reporters send: found in a mail, checked, and imported for later mail.

A key may come as an attachment (`application/pgp-keys`, or a `.asc` file holding a key
block), pasted into the text, or in an Autocrypt header (Thunderbird sends one with every
mail once OpenPGP is set up). Anyone can mail a key with any user ID, so a key is imported
only when one of its user IDs is the sending address, and then only with that user ID: the
bot must never start encrypting a third party's mail to a key a stranger sent. Keys are
inspected in a throw-away gpg home first, so a hostile key never touches the real keyring
unless it passed. Synchronous (gpg); async callers use ``asyncio.to_thread``.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from email.message import Message
from email.utils import getaddresses

from bot.mailin.parse import AttachmentInfo
from bot.pgp.gpg import Pgp, PgpError, format_fingerprint

__all__ = [
    "KEY_IMPORTED",
    "KEY_NOT_IMPORTED",
    "KeyMaterial",
    "KeyOutcome",
    "ListedKey",
    "find_key_material",
    "import_reporter_keys",
    "inspect_keys",
]

log = logging.getLogger(__name__)

#: Thread wording, for tests and the corpus runner.
KEY_IMPORTED = "Imported the reporter's public key"
KEY_NOT_IMPORTED = "was not imported"

# More would be key flooding, not a reporter sending their key.
_MAX_KEY_BYTES = 256 * 1024
_MAX_CANDIDATES = 5

_PUBLIC_BLOCK = re.compile(
    rb"-----BEGIN PGP PUBLIC KEY BLOCK-----.*?-----END PGP PUBLIC KEY BLOCK-----", re.S
)
_PRIVATE_BLOCK = re.compile(rb"-----BEGIN PGP PRIVATE KEY BLOCK-----", re.S)
_KEY_FILE = re.compile(r"\.(?:asc|key|pub|gpg|pgp)$", re.I)
_COLON_ESCAPE = re.compile(r"\\x([0-9a-fA-F]{2})")


@dataclass(frozen=True)
class KeyMaterial:
    origin: str  # "the attachment key.asc", "a key pasted into the text", "its Autocrypt header"
    data: bytes


@dataclass(frozen=True)
class ListedKey:
    fingerprint: str
    uids: tuple[str, ...]
    addresses: tuple[str, ...]
    secret: bool
    can_encrypt: bool
    unusable: bool  # revoked or expired


@dataclass(frozen=True)
class KeyOutcome:
    origin: str
    imported_fingerprint: str | None
    message: str  # for the thread


def find_key_material(
    text: str,
    attachments: list[tuple[AttachmentInfo, bytes]],
    headers: Message | None,
    sender: str | None,
) -> list[KeyMaterial]:
    """Every public key a mail offers, at most a handful."""
    found: list[KeyMaterial] = []
    for info, data in attachments:
        name = info.filename or "without a name"
        is_key_type = info.content_type == "application/pgp-keys"
        if is_key_type or (_KEY_FILE.search(info.filename or "") and _PUBLIC_BLOCK.search(data)):
            found.append(KeyMaterial(f"the attachment {name}", data))
        elif _PRIVATE_BLOCK.search(data) and _KEY_FILE.search(info.filename or ""):
            found.append(KeyMaterial(f"the attachment {name}", data))
    encoded = text.encode("utf-8", "replace")
    for block in _PUBLIC_BLOCK.finditer(encoded):
        found.append(KeyMaterial("a key pasted into the text", block.group(0)))
    if _PRIVATE_BLOCK.search(encoded):
        found.append(KeyMaterial("a key pasted into the text", encoded))
    if headers is not None and sender is not None:
        autocrypt = _autocrypt_key(headers, sender)
        if autocrypt is not None:
            found.append(KeyMaterial("its Autocrypt header", autocrypt))
    return [item for item in found if len(item.data) <= _MAX_KEY_BYTES][:_MAX_CANDIDATES]


def _autocrypt_key(headers: Message, sender: str) -> bytes | None:
    """The key of an Autocrypt header for `sender` (RFC-like Autocrypt Level 1)."""
    try:
        values = [str(value) for value in headers.get_all("Autocrypt", [])]
    except Exception:  # hostile header bytes; the header is optional anyway
        return None
    for value in values:
        attributes: dict[str, str] = {}
        for part in value.split(";"):
            name, sep, content = part.strip().partition("=")
            if sep:
                attributes[name.strip().lower()] = content.strip()
        if attributes.get("addr", "").lower() != sender.lower() or "keydata" not in attributes:
            continue
        try:
            return base64.b64decode(re.sub(r"\s+", "", attributes["keydata"]), validate=True)
        except (binascii.Error, ValueError):
            return None
    return None


@dataclass
class _Listing:
    """One key while its colon listing is read."""

    secret: bool
    can_encrypt: bool
    unusable: bool
    fingerprint: str | None = None
    uids: list[str] = field(default_factory=list)

    def done(self) -> list[ListedKey]:
        if not self.fingerprint:
            return []
        addresses = (_uid_address(uid) for uid in self.uids)
        return [
            ListedKey(
                fingerprint=self.fingerprint,
                uids=tuple(self.uids),
                addresses=tuple(dict.fromkeys(a for a in addresses if a is not None)),
                secret=self.secret,
                can_encrypt=self.can_encrypt,
                unusable=self.unusable,
            )
        ]


def _unescape(value: str) -> str:
    raw = _COLON_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), value)
    return raw.encode("latin-1", "replace").decode("utf-8", "replace")


def _uid_address(uid: str) -> str | None:
    addresses = [spec for _, spec in getaddresses([uid]) if "@" in spec]
    return addresses[0].strip().lower() if len(addresses) == 1 else None


def inspect_keys(data: bytes) -> list[ListedKey]:
    """The keys in `data` as gpg reads them, without importing anything anywhere.

    Runs ``gpg --show-keys`` in a fresh, empty home that is deleted afterwards.
    """
    with tempfile.TemporaryDirectory(prefix="cvdbot-keycheck-") as home:
        os.chmod(home, 0o700)
        try:
            proc = subprocess.run(
                [
                    "gpg",
                    "--homedir",
                    home,
                    "--batch",
                    "--no-tty",
                    "--with-colons",
                    "--fixed-list-mode",
                    "--show-keys",
                ],
                input=data,
                capture_output=True,
                timeout=60,
                env={**os.environ, "LC_ALL": "C.UTF-8", "LANGUAGE": "C"},
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PgpError(f"gpg could not be run: {type(exc).__name__}") from exc
    keys: list[ListedKey] = []
    current: _Listing | None = None
    for line in proc.stdout.decode("latin-1").splitlines():
        fields = line.split(":")
        if len(fields) < 12:
            fields += [""] * (12 - len(fields))
        record = fields[0]
        if record in ("pub", "sec"):
            if current is not None:
                keys.extend(current.done())
            current = _Listing(
                secret=record == "sec",
                can_encrypt="E" in fields[11],
                unusable=fields[1] in ("r", "e"),
            )
        elif current is None:
            continue
        elif record == "fpr" and current.fingerprint is None:
            current.fingerprint = fields[9].upper()
        elif record == "uid" and (current.unusable or fields[1] not in ("r", "e")):
            # A revoked or expired key marks every user ID so; they still say whose it is
            # (`_one_key` then updates a key the keyring holds and imports no other).
            current.uids.append(_unescape(fields[9]))
        elif record == "ssb":
            current.secret = True
    if current is not None:
        keys.extend(current.done())
    return keys


def import_reporter_keys(
    pgp: Pgp, sender: str | None, material: list[KeyMaterial]
) -> list[KeyOutcome]:
    """Import what `sender` sent of their own keys; say what happened to each key."""
    outcomes: list[KeyOutcome] = []
    for item in material:
        try:
            listed = inspect_keys(item.data)
        except PgpError as exc:
            log.warning("could not inspect a mailed key: %s", exc)
            outcomes.append(
                KeyOutcome(
                    item.origin,
                    None,
                    f"🔑 The key in {item.origin} could not be read; nothing was imported.",
                )
            )
            continue
        if not listed:
            outcomes.append(
                KeyOutcome(
                    item.origin,
                    None,
                    f"🔑 {item.origin.capitalize()} holds no readable OpenPGP key; "
                    "nothing was imported.",
                )
            )
            continue
        for key in listed:
            outcomes.append(_one_key(pgp, sender, item, key))
    return outcomes


def _one_key(pgp: Pgp, sender: str | None, item: KeyMaterial, key: ListedKey) -> KeyOutcome:
    grouped = format_fingerprint(key.fingerprint)
    if key.secret:
        return KeyOutcome(
            item.origin,
            None,
            f"⚠️ {item.origin.capitalize()} holds SECRET key material ({grouped}); it "
            f"{KEY_NOT_IMPORTED}. Whoever sent it should consider that key compromised.",
        )
    names = ", ".join(key.addresses[:5]) or "no address"
    if len(key.addresses) > 5:
        names += f" and {len(key.addresses) - 5} more"
    if sender is None or sender not in key.addresses:
        whose = f"the sender's address {sender}" if sender else "a sender address (there is none)"
        return KeyOutcome(
            item.origin,
            None,
            f"🔑 A public key for {names} ({grouped}) in {item.origin} {KEY_NOT_IMPORTED}: "
            f"none of its user IDs is {whose}.",
        )
    if key.unusable:
        if pgp.holds_public_key(key.fingerprint):
            return _revocation(pgp, sender, item, key)
        return KeyOutcome(
            item.origin,
            None,
            f"🔑 The key for {sender} ({grouped}) in {item.origin} is revoked or expired; "
            f"it {KEY_NOT_IMPORTED}.",
        )
    try:
        imported = pgp.import_keys(item.data, only_address=sender)
    except PgpError as exc:
        log.warning("import of a reporter's key failed: %s", exc)
        return KeyOutcome(
            item.origin, None, f"🔑 The key for {sender} ({grouped}) {KEY_NOT_IMPORTED}: {exc}."
        )
    if key.fingerprint not in imported:
        return KeyOutcome(
            item.origin,
            None,
            f"🔑 gpg did not accept the key for {sender} ({grouped}); it {KEY_NOT_IMPORTED}.",
        )
    usable = (
        " Mail to them will be encrypted to it."
        if key.can_encrypt
        else (" It cannot encrypt (no encryption subkey), so mail to them stays signed only.")
    )
    return KeyOutcome(
        item.origin,
        key.fingerprint,
        f"🔑 {KEY_IMPORTED} for {sender} ({grouped}), from {item.origin}.{usable}",
    )


def _revocation(pgp: Pgp, sender: str, item: KeyMaterial, key: ListedKey) -> KeyOutcome:
    """A key the keyring holds, mailed revoked or expired (a reporter's client sends the
    revoked key): the keyring's copy is updated, so the key is never encrypted to again.
    Safe from a forged sender: only the key's owner can sign its revocation, and gpg keeps
    the newest self-signature, so an old copy cannot shorten a key's life."""
    grouped = format_fingerprint(key.fingerprint)
    try:
        pgp.import_keys(item.data, only_address=sender)
    except PgpError as exc:
        log.warning("update of a reporter's revoked key failed: %s", exc)
        return KeyOutcome(
            item.origin, None, f"🔑 The key for {sender} ({grouped}) {KEY_NOT_IMPORTED}: {exc}."
        )
    return KeyOutcome(
        item.origin,
        None,
        f"🔑 The key for {sender} ({grouped}) in {item.origin} is revoked or expired; the "
        "bot's copy of it now says so, and mail to them is no longer encrypted to it.",
    )
