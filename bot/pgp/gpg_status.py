"""Reading gpg's ``[GNUPG:]`` status lines: one signature verdict, one decryption error text.

Pure functions over the lines gpg writes with --status-fd; python-gnupg's own summary
folds them lossily (several signatures, error codes), so the bot reads them itself.
"""

from __future__ import annotations

import re
from typing import Any, cast

from bot.pgp.verdicts import SignatureInfo, SignatureStatus


def statuses(result: Any) -> list[tuple[str, str]]:
    """The ``[GNUPG:] KEYWORD args`` lines gpg wrote (python-gnupg folds them lossily)."""
    out: list[tuple[str, str]] = []
    for line in str(getattr(result, "stderr", "") or "").splitlines():
        if line.startswith("[GNUPG:] "):
            keyword, _, value = line[9:].partition(" ")
            out.append((keyword, value.strip()))
    return out


def signature_from_status(status: list[tuple[str, str]]) -> SignatureInfo | None:
    """Fold the per-signature status lines into one verdict (a bad signature wins)."""
    sigs: list[dict[str, str]] = []
    current: dict[str, str] | None = None
    for keyword, value in status:
        if keyword == "NEWSIG":
            current = {}
            sigs.append(current)
        elif keyword in (
            "GOODSIG",
            "BADSIG",
            "EXPSIG",
            "EXPKEYSIG",
            "REVKEYSIG",
            "ERRSIG",
            "VALIDSIG",
        ):
            if current is None or keyword in current:
                current = {}
                sigs.append(current)
            current[keyword] = value
    infos = [_one_signature(sig) for sig in sigs if sig]
    if not infos:
        return None
    for info in infos:
        if info.status == "bad":
            return info
    return infos[0]


def _one_signature(sig: dict[str, str]) -> SignatureInfo:
    fingerprint: str | None = None
    if "VALIDSIG" in sig:
        fields = sig["VALIDSIG"].split()
        # Field 10 is the primary key's fingerprint (the signature may be by a subkey).
        fingerprint = fields[9] if len(fields) >= 10 else fields[0]
    for keyword, status in (
        ("BADSIG", "bad"),
        ("REVKEYSIG", "revoked_key"),
        ("EXPKEYSIG", "expired_key"),
        ("GOODSIG", "good"),
    ):
        if keyword in sig:
            key_id, _, uid = sig[keyword].partition(" ")
            return SignatureInfo(
                cast(SignatureStatus, status), fingerprint, key_id, _unescape_uid(uid) or None
            )
    if "EXPSIG" in sig:
        key_id, _, uid = sig["EXPSIG"].partition(" ")
        return SignatureInfo(
            "error", fingerprint, key_id, _unescape_uid(uid) or None, "the signature has expired"
        )
    fields = sig.get("ERRSIG", "").split()
    errsig_key_id = fields[0] if fields else None
    issuer = fields[6] if len(fields) >= 7 and fields[6] != "-" else None
    code = fields[5] if len(fields) >= 6 else ""
    if code == "9":
        return SignatureInfo("unknown_key", issuer, errsig_key_id, None)
    reason = "unsupported algorithm" if code == "4" else f"gpg error code {code or '?'}"
    return SignatureInfo("error", issuer, errsig_key_id, None, reason)


def decrypt_error(status: list[tuple[str, str]]) -> str:
    keys = {keyword for keyword, _ in status}
    missing = [value.split()[0] for keyword, value in status if keyword == "NO_SECKEY" and value]
    recipients = [value.split()[0] for keyword, value in status if keyword == "ENC_TO" and value]
    if recipients and len(missing) >= len(recipients):
        ids = ", ".join(dict.fromkeys(missing))
        return f"encrypted to a key we do not hold (key id {ids})"
    # gpg-agent reports a wrong passphrase as error code 11 (GPG_ERR_BAD_PASSPHRASE); with
    # no passphrase at all gpg asks for one and, in batch mode, gives up without a status.
    errors = [_gpg_error_code(value) for keyword, value in status if keyword == "ERROR"]
    unlock = keys & {"BAD_PASSPHRASE", "MISSING_PASSPHRASE"} or 11 in errors
    if unlock or ("NEED_PASSPHRASE" in keys and "BEGIN_DECRYPTION" not in keys):
        return "the bot's secret key could not be unlocked (wrong or missing passphrase)"
    if "NEED_PASSPHRASE_SYM" in keys and not recipients:
        return "encrypted with a password instead of to our key"
    if "BADMDC" in keys or any(k == "ERROR" and "mdc" in v.lower() for k, v in status):
        return "integrity check failed: the encrypted data was damaged or modified"
    return "decryption failed: the encrypted data is damaged or in an unsupported format"


def _gpg_error_code(value: str) -> int | None:
    """The libgpg-error code (without its source bits) at the end of an ERROR status."""
    last = value.rsplit(" ", 1)[-1]
    return int(last) & 0xFFFF if last.isdigit() else None


def _unescape_uid(uid: str) -> str:
    # Status lines percent-escape special characters of the (UTF-8) user id.
    raw = re.sub(
        rb"%([0-9A-Fa-f]{2})", lambda m: bytes([int(m.group(1), 16)]), uid.encode("latin-1")
    )
    return raw.decode("utf-8", "replace")
