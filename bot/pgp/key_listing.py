"""Reading gpg's key listings: user ids, whether a key can encrypt, one-line key summaries.

Pure functions over the dicts python-gnupg's ``list_keys`` returns, plus the text codec
that carries UTF-8 through python-gnupg's Latin-1 pipes.
"""

from __future__ import annotations

import datetime as dt
from email.utils import getaddresses
from typing import Any

from bot.pgp.verdicts import format_fingerprint, printable

# OpenPGP public key algorithm ids (RFC 4880 9.1, RFC 6637) as summaries name them.
_PK_ALGO = {
    "1": "rsa",
    "2": "rsa",
    "3": "rsa",
    "16": "elgamal",
    "17": "dsa",
    "18": "ecdh",
    "19": "ecdsa",
    "22": "eddsa",
}


def summarise_key(key: dict[str, Any]) -> str:
    """E.g. ``Alice <a@x> ed25519 0123 4567 ... (expires 2027-01-31)`` for one listed key."""
    uids = key.get("uids") or []
    uid = printable(from_gpg_text(str(uids[0]))) if uids else "(no user id)"
    curve = str(key.get("curve") or "")
    if curve and curve != "unavailable":
        algo = curve
    else:
        algo = f"{_PK_ALGO.get(str(key.get('algo')), 'algo' + str(key.get('algo')))}"
        algo += str(key.get("length") or "")
    validity = str(key.get("trust") or "")
    expires = str(key.get("expires") or "")
    if validity == "r":
        state = "revoked"
    elif expires:
        when = dt.datetime.fromtimestamp(int(expires), tz=dt.UTC).date().isoformat()
        state = f"expired {when}" if validity == "e" else f"expires {when}"
    else:
        state = "no expiry"
    return f"{uid} {algo} {format_fingerprint(str(key['fingerprint']))} ({state})"


def to_gpg_text(text: str) -> str:
    """Text that python-gnupg's Latin-1 codec turns into the UTF-8 bytes gpg expects."""
    return text.encode("utf-8").decode("latin-1")


def from_gpg_text(text: str) -> str:
    """The inverse of :func:`to_gpg_text` for text python-gnupg decoded as Latin-1."""
    return text.encode("latin-1", "replace").decode("utf-8", "replace")


def uid_email(uid: str) -> str | None:
    """The one address in a user id, lower-cased; None for none or several."""
    # Exactly one address: a user id naming several must not match any of them.
    addresses = [addr for _, addr in getaddresses([uid]) if "@" in addr]
    return addresses[0].strip().lower() if len(addresses) == 1 else None


def key_usable_for_encryption(key: dict[str, Any]) -> bool:
    """Whether a listed key may be encrypted to: valid, not disabled, can encrypt."""
    # Field 2 (validity): r revoked, e expired, i invalid, d disabled (older gpg). Field 12
    # holds the usable capabilities of the whole key in upper case, D for disabled.
    if str(key.get("trust") or "") in ("r", "e", "i", "d"):
        return False
    caps = str(key.get("cap") or "")
    return "E" in caps and "D" not in caps
