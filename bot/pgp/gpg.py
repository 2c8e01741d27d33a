"""OpenPGP for cvdbot: PGP/MIME (RFC 3156) and inline PGP around the real gpg binary.

Decrypts and verifies reporters' mail, signs and encrypts the bot's own mail, and manages
the keys reporters send. Everything here is synchronous (gpg is a subprocess); async callers
wrap the calls in ``asyncio.to_thread``.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import io
import logging
import os
import re
import secrets
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from email import policy
from email.generator import BytesGenerator
from email.message import EmailMessage, Message
from email.parser import BytesParser, HeaderParser
from email.utils import getaddresses
from pathlib import Path
from typing import Any, Literal, cast

import gnupg

logger = logging.getLogger(__name__)

#: The smallest S2K iteration count gpg-agent accepts. Passing it as ``s2k_count`` makes
#: key generation and every unlock take milliseconds instead of the agent's calibrated
#: ~0.5 s; meant for tests and demos, where the passphrase protects nothing of value.
MIN_S2K_COUNT = 65536

SignatureStatus = Literal["good", "bad", "unknown_key", "expired_key", "revoked_key", "error"]

# Outgoing messages are serialised exactly like this before signing, so the signed bytes are
# the transmitted bytes: CRLF line endings, RFC 2047 encoded headers, lines of at most 78.
_WIRE = policy.SMTP
# Re-serialising a parsed message to recover signed bytes (when no raw bytes were given):
# never refold a header that came from the source, since refolding changes the bytes.
_REGEN = policy.SMTP.clone(refold_source="none")

# Headers copied into the signed/encrypted part (RFC 9788 header protection): a client that
# understands protected headers shows these instead of the unauthenticated outer ones.
# In-Reply-To and References stay outside: they only thread the mail, and a reporter's long
# Message-ID makes Python fold them in a way that changes when the part is parsed again.
_PROTECTED_HEADERS = (
    "From",
    "To",
    "Cc",
    "Reply-To",
    "Subject",
    "Date",
    "Message-ID",
)

# OpenPGP hash algorithm ids (RFC 4880 9.4) to the RFC 3156 micalg names.
_MICALG = {
    "1": "pgp-md5",
    "2": "pgp-sha1",
    "3": "pgp-ripemd160",
    "8": "pgp-sha256",
    "9": "pgp-sha384",
    "10": "pgp-sha512",
    "11": "pgp-sha224",
}

# OpenPGP public key algorithm ids (RFC 4880 9.1, RFC 6637) for key_summary.
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

_KEY_TYPES: dict[str, dict[str, Any]] = {
    "ed25519/cv25519": {
        "key_type": "EDDSA",
        "key_curve": "ed25519",
        "subkey_type": "ECDH",
        "subkey_curve": "cv25519",
    },
    "rsa3072": {
        "key_type": "RSA",
        "key_length": 3072,
        "subkey_type": "RSA",
        "subkey_length": 3072,
    },
    "rsa4096": {
        "key_type": "RSA",
        "key_length": 4096,
        "subkey_type": "RSA",
        "subkey_length": 4096,
    },
}

_ARMOR_MESSAGE = re.compile(
    rb"^-----BEGIN PGP MESSAGE-----[ \t]*\r?$.*?^-----END PGP MESSAGE-----[ \t]*\r?$",
    re.M | re.S,
)
_ARMOR_SIGNED = re.compile(
    rb"^-----BEGIN PGP SIGNED MESSAGE-----[ \t]*\r?$.*?^-----END PGP SIGNATURE-----[ \t]*\r?$",
    re.M | re.S,
)
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
# Addresses simple enough to put into a gpg filter expression without quoting rules.
_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+")


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
        who = _printable(self.signer) if self.signer else None
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
class _Opened:
    """The interpreted result of one ``gpg --decrypt`` run."""

    plaintext: bytes | None
    encrypted: bool
    decrypted: bool
    signature: SignatureInfo | None
    error: str | None


def format_fingerprint(fingerprint: str) -> str:
    """Group a fingerprint in blocks of four, as gpg shows it to people."""
    fpr = _normalise_fingerprint(fingerprint)
    return " ".join(fpr[i : i + 4] for i in range(0, len(fpr), 4))


class Pgp:
    """The bot's OpenPGP keyring and the MIME operations built on it."""

    def __init__(
        self,
        gnupg_home: Path,
        key_fingerprint: str | None,
        passphrase: str | None,
        *,
        s2k_count: int | None = None,
    ) -> None:
        self._home = Path(gnupg_home)
        self._home.mkdir(mode=0o700, parents=True, exist_ok=True)
        # gpg refuses to trust (and warns loudly about) a home others can read; the home
        # holds the bot's secret key, so tighten it rather than run with it open.
        if self._home.stat().st_mode & 0o077:
            os.chmod(self._home, 0o700)
        self._fingerprint = _normalise_fingerprint(key_fingerprint) if key_fingerprint else None
        # An empty passphrase would make python-gnupg pass --passphrase-fd without writing a
        # line, and gpg would then eat the first line of the data as the passphrase.
        if passphrase and not _passphrase_ok(passphrase):
            raise PgpError("the passphrase must not contain line breaks or NUL characters")
        self._passphrase = _to_gpg_text(passphrase) if passphrase else None
        env = dict(os.environ)
        # Untranslated messages: nothing depends on them, but they are what operators search.
        env["LC_ALL"] = "C.UTF-8"
        env["LANGUAGE"] = "C"
        self._env = env
        if s2k_count is not None:
            self._configure_agent(s2k_count)
        try:
            self._gpg = self._start_gpg(env)
        except (OSError, ValueError) as exc:
            raise PgpError(f"gpg is not usable with home {self._home}: {exc}") from exc

    def _start_gpg(self, env: dict[str, str]) -> Any:
        return gnupg.GPG(
            gpgbinary="gpg",
            gnupghome=str(self._home),
            env=env,
            # python-gnupg decodes gpg's stderr with this codec in a reader thread; a strict
            # UTF-8 decoder dies on a legacy Latin-1 user id in a hostile key and can stall
            # gpg. Latin-1 maps every byte, and _to_gpg_text/_from_gpg_text restore UTF-8.
            encoding="latin-1",
            options=[
                # Never prompt: a missing or wrong passphrase is an error, not a pinentry.
                "--pinentry-mode",
                "loopback",
                # A mail must never make the bot fetch keys from the network.
                "--no-auto-key-retrieve",
                "--auto-key-locate",
                "local",
                "--display-charset",
                "utf-8",
            ],
        )

    @property
    def key_fingerprint(self) -> str | None:
        """The bot's own key (normalised: upper case, no spaces)."""
        return self._fingerprint

    @property
    def gnupg_home(self) -> Path:
        return self._home

    # ------------------------------------------------------------------ keys

    def generate_key(
        self,
        name: str,
        email: str,
        passphrase: str,
        *,
        key_type: str = "ed25519/cv25519",
        expire_date: str = "0",
    ) -> str:
        """Create a signing primary key with an encryption subkey; returns the fingerprint."""
        spec = _KEY_TYPES.get(key_type.lower())
        if spec is None:
            raise PgpError(f"unsupported key type {key_type!r}; use one of {sorted(_KEY_TYPES)}")
        # Values go into gpg's line-based parameter file: a line break would inject
        # parameters of the caller's choosing.
        for label, value in (("name", name), ("email", email), ("expire_date", expire_date)):
            if _CONTROL_CHARS.search(value):
                raise PgpError(f"the key's {label} must not contain control characters")
        if passphrase and not _passphrase_ok(passphrase):
            raise PgpError("the passphrase must not contain line breaks or NUL characters")
        params: dict[str, Any] = dict(spec)
        params.update(
            key_usage="sign",
            subkey_usage="encrypt",
            name_real=name,
            name_email=email,
            expire_date=expire_date,
        )
        if passphrase:
            params["passphrase"] = passphrase
        else:
            params["no_protection"] = True
        # The parameter file is UTF-8 for gpg; python-gnupg encodes it with its codec.
        result = self._gpg.gen_key(_to_gpg_text(self._gpg.gen_key_input(**params)))
        if not result.fingerprint:
            raise PgpError(f"key generation failed ({result.status or 'no key created'})")
        logger.info("generated OpenPGP key %s", result.fingerprint)
        return str(result.fingerprint)

    def export_public_key(self, fingerprint: str) -> str:
        """The public key, ASCII armored."""
        armored = self._gpg.export_keys(_normalise_fingerprint(fingerprint), armor=True)
        if not armored or "BEGIN PGP PUBLIC KEY BLOCK" not in armored:
            raise PgpError(f"no public key {fingerprint} in the keyring")
        return str(armored)

    def import_keys(self, armored: str | bytes, *, only_address: str | None = None) -> list[str]:
        """Import public keys (e.g. a reporter's application/pgp-keys attachment).

        Returns the fingerprints gpg accepted, including keys it already had (their
        signatures may have been refreshed). Secret key material is refused outright: the
        keyring must only ever hold the bot's own secret key, and a reporter who mailed a
        secret key needs to be told rather than have it silently used.

        With ``only_address``, only the user IDs with exactly that address are imported
        (keys without one are skipped): a key mailed by a@x must not become the key the bot
        encrypts to for b@y just because it also carries a user ID for b@y.
        """
        data = armored.encode("utf-8") if isinstance(armored, str) else bytes(armored)
        if self._contains_secret_key(data):
            raise PgpError("refusing to import secret key material; only public keys are accepted")
        # import-minimal drops third-party signatures: protects the keyring against
        # certificate flooding and keeps reporters' social graphs out of our store.
        extra_args = ["--import-options", "import-minimal"]
        if only_address is not None:
            if not _PLAIN_ADDRESS.fullmatch(only_address):
                raise PgpError("refusing to filter a key import on an unusual address")
            extra_args += ["--import-filter", f"keep-uid=mbox = {only_address.lower()}"]
        result = self._gpg.import_keys(data, extra_args=extra_args)
        if result.sec_read or result.sec_imported:
            # The scan above should make this impossible; if gpg disagrees, say so loudly.
            raise PgpError("gpg read secret key material during an import of public keys")
        fingerprints: list[str] = []
        for fpr in result.fingerprints:
            if fpr and fpr not in fingerprints:
                fingerprints.append(str(fpr))
        return fingerprints

    def key_for_address(self, address: str) -> str | None:
        """Fingerprint of a usable encryption key with a valid user id for ``address``.

        Expired, revoked, disabled and invalid keys and user ids do not count. With several
        candidates the most recently created key wins (a reporter's newest key).
        """
        wanted = address.strip().lower()
        if not wanted:
            return None
        best: tuple[int, str] | None = None
        for key in self._gpg.list_keys():
            if not any(_uid_email(_from_gpg_text(u)) == wanted for u in key.get("uids", [])):
                continue
            if not _key_usable_for_encryption(key):
                continue
            fpr = str(key["fingerprint"])
            if not self._has_valid_uid(fpr, wanted):
                continue
            created = int(key.get("date") or 0)
            if best is None or created > best[0]:
                best = (created, fpr)
        return best[1] if best else None

    def key_summary(self, fingerprint: str) -> str:
        """E.g. ``Alice <a@x> ed25519 0123 4567 ... (expires 2027-01-31)``."""
        key = self._public_key(fingerprint)
        if key is None:
            raise PgpError(f"no public key {fingerprint} in the keyring")
        uids = key.get("uids") or []
        uid = _printable(_from_gpg_text(str(uids[0]))) if uids else "(no user id)"
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

    def fingerprint_ok(self) -> bool:
        """The bot's key is in the keyring with its secret part and is not expired/revoked."""
        if not self._fingerprint:
            return False
        secret = self._gpg.list_keys(secret=True, keys=[self._fingerprint])
        if not any(k.get("fingerprint") == self._fingerprint for k in secret):
            return False
        key = self._public_key(self._fingerprint)
        return key is not None and str(key.get("trust") or "") not in ("e", "r", "i", "d")

    def close(self) -> None:
        """Stop this home's gpg-agent, which holds the cached passphrase in memory."""
        self._gpgconf("--kill", "gpg-agent")

    # ------------------------------------------------------------------ outgoing

    def sign_mime(self, msg: EmailMessage) -> EmailMessage:
        """Wrap ``msg`` in an RFC 3156 multipart/signed signed with the bot's key.

        The envelope headers stay outside; the body becomes the signed part, which also
        carries the protected headers. The signed part is made 7-bit clean first so no MTA
        re-encodes it, and it is attached in re-parsed form so that any later serialisation
        reproduces exactly the bytes that were signed.
        """
        fpr = self._require_own_key()
        signed_bytes = _stable_wire(_protected_body(msg))
        result = self._gpg.sign(
            signed_bytes,
            keyid=fpr,
            passphrase=self._passphrase,
            detach=True,
            clearsign=False,
            binary=False,
        )
        if not result or not result.data:
            raise PgpError(f"signing failed ({result.status or 'no signature produced'})")
        micalg = _MICALG.get(str(result.hash_algo), "pgp-sha256")

        boundary = _new_boundary(signed_bytes)
        outer = _envelope(msg, hide_subject=False)
        outer["Content-Type"] = (
            f'multipart/signed; micalg="{micalg}"; '
            f'protocol="application/pgp-signature"; boundary="{boundary}"'
        )
        outer.preamble = "This is an OpenPGP/MIME signed message (RFC 4880 and 3156)"
        sig_part = EmailMessage(policy=policy.default)
        sig_part["Content-Type"] = 'application/pgp-signature; name="OpenPGP_signature.asc"'
        sig_part["Content-Description"] = "OpenPGP digital signature"
        sig_part["Content-Disposition"] = 'attachment; filename="OpenPGP_signature.asc"'
        sig_part.set_payload(bytes(result.data).decode("ascii"))
        outer.attach(_parse(signed_bytes))
        outer.attach(sig_part)

        # The one property that matters: the transmitted first part is byte-for-byte what
        # gpg signed. Check it here rather than let a reporter's client say "bad signature".
        transmitted = _first_part_bytes(_to_wire(outer), boundary)
        if transmitted != signed_bytes:
            raise PgpError("internal error: the signed part does not serialise to the signed bytes")
        return outer

    def encrypt_mime(
        self,
        msg: EmailMessage,
        recipient_fingerprints: list[str],
        *,
        sign: bool = True,
        hide_subject: bool = False,
    ) -> EmailMessage:
        """Wrap ``msg`` in an RFC 3156 multipart/encrypted for the recipients and the bot.

        The bot's own key is always a recipient, so the team can read its sent mail from the
        store. With ``sign`` the bot signs inside the encryption (RFC 3156 6.2, one pass).
        The outer Subject stays visible (it carries the case tag) unless ``hide_subject``.
        """
        if not recipient_fingerprints:
            raise PgpError("no recipient keys to encrypt to")
        recipients = [_normalise_fingerprint(f) for f in recipient_fingerprints]
        own = self._fingerprint
        if sign:
            own = self._require_own_key()
        if own and own not in recipients:
            recipients.append(own)
        plaintext = _to_wire(_protected_body(msg))
        result = self._gpg.encrypt(
            plaintext,
            recipients,
            sign=own if sign else None,
            passphrase=self._passphrase if sign else None,
            # Trust model: the key is the one the reporter sent us; there is no web of trust.
            always_trust=True,
            armor=True,
        )
        if not result.ok:
            detail = f": {result.status_detail}" if result.status_detail else ""
            raise PgpError(f"encryption failed ({result.status or 'unknown error'}{detail})")

        boundary = _new_boundary(b"")
        outer = _envelope(msg, hide_subject=hide_subject)
        outer["Content-Type"] = (
            f'multipart/encrypted; protocol="application/pgp-encrypted"; boundary="{boundary}"'
        )
        outer.preamble = "This is an OpenPGP/MIME encrypted message (RFC 4880 and 3156)"
        version = EmailMessage(policy=policy.default)
        version["Content-Type"] = "application/pgp-encrypted"
        version["Content-Description"] = "PGP/MIME version identification"
        version.set_payload("Version: 1\n")
        data = EmailMessage(policy=policy.default)
        data["Content-Type"] = 'application/octet-stream; name="encrypted.asc"'
        data["Content-Description"] = "OpenPGP encrypted message"
        data["Content-Disposition"] = 'inline; filename="encrypted.asc"'
        data.set_payload(bytes(result.data).decode("ascii"))
        outer.attach(version)
        outer.attach(data)
        return outer

    # ------------------------------------------------------------------ incoming

    def decrypt_raw(self, raw: bytes) -> DecryptResult:
        """Decrypt/verify a mail given as the raw bytes received (the preferred entry).

        The raw bytes are what a multipart/signed signature covers; a parsed message cannot
        always be serialised back to them.
        """
        return self._examine(_parse(raw), raw)

    def decrypt_mime(self, msg: EmailMessage) -> DecryptResult:
        """Like :meth:`decrypt_raw` for an already parsed message.

        A multipart/signed part is verified against a re-serialisation of the parsed part,
        which matches the original only as far as the parser kept it; prefer decrypt_raw.
        """
        return self._examine(msg, None)

    def verify_detached(self, data: bytes, signature: bytes) -> SignatureInfo:
        """Check a detached signature over exactly ``data``."""
        # Both go through files in a private directory inside the gnupg home: python-gnupg's
        # in-memory verify logs the first bytes of the data at debug level, and the data may
        # be decrypted plaintext.
        with tempfile.TemporaryDirectory(prefix=".verify-", dir=self._home) as tmp:
            sig_path = Path(tmp, "signature")
            data_path = Path(tmp, "data")
            _write_private(sig_path, signature)
            _write_private(data_path, data)
            result = self._gpg.verify_file(str(sig_path), data_filename=str(data_path))
        info = _signature_from_status(_statuses(result))
        if info is None:
            return SignatureInfo("error", None, None, None, "no OpenPGP signature found")
        return info

    # ------------------------------------------------------------------ internals

    def _examine(self, msg: EmailMessage, raw: bytes | None) -> DecryptResult:
        encrypted = _find_part(msg, "multipart/encrypted", "application/pgp-encrypted")
        if encrypted is not None:
            return self._pgp_mime_encrypted(encrypted)
        signed = _find_part(msg, "multipart/signed", "application/pgp-signature")
        if signed is not None:
            return self._pgp_mime_signed(signed, raw)
        return self._inline(msg)

    def _pgp_mime_encrypted(self, part: Message) -> DecryptResult:
        payload = part.get_payload()
        data_part: Message | None = None
        if isinstance(payload, list):
            for child in payload[1:]:
                if isinstance(child, Message):
                    if child.get_content_type() == "application/octet-stream":
                        data_part = child
                        break
        ciphertext = data_part.get_payload(decode=True) if data_part is not None else None
        if not isinstance(ciphertext, bytes) or not ciphertext.strip():
            return _failed("malformed PGP/MIME message: no encrypted data part")
        opened = self._open(ciphertext)
        if opened.plaintext is None:
            return DecryptResult(None, opened.encrypted, False, None, None, opened.error)
        inner = _parse_plaintext(opened.plaintext)
        signature = opened.signature
        message = inner
        # RFC 3156 6.1: signed first (multipart/signed), then encrypted. The plaintext is the
        # exact byte stream the signature was made over.
        if _is_pgp(inner, "multipart/signed", "application/pgp-signature"):
            nested = self._pgp_mime_signed(inner, opened.plaintext)
            if nested.message is not None:
                message = nested.message
            if signature is None:
                signature = nested.signature
        return DecryptResult(
            message=message,
            encrypted=opened.encrypted,
            decrypted=opened.decrypted,
            signature=signature,
            protected_subject=_protected_subject(message),
            error=None,
        )

    def _pgp_mime_signed(self, part: Message, raw: bytes | None) -> DecryptResult:
        payload = part.get_payload()
        boundary = part.get_boundary()
        if not isinstance(payload, list) or len(payload) < 2 or not boundary:
            return DecryptResult(
                None,
                False,
                False,
                SignatureInfo("error", None, None, None, "malformed multipart/signed message"),
                None,
                None,
            )
        sig_part = payload[1]
        signature = sig_part.get_payload(decode=True) if isinstance(sig_part, Message) else None
        signed_bytes = _first_part_bytes(raw, boundary) if raw is not None else None
        if signed_bytes is None:
            signed_bytes = _first_part_bytes(_to_bytes(part, _REGEN), boundary)
        if signed_bytes is None or not isinstance(signature, bytes):
            info = SignatureInfo("error", None, None, None, "could not locate the signed part")
            return DecryptResult(None, False, False, info, None, None)
        info = self._verify_mime_part(signed_bytes, signature)
        message = _parse(_crlf(signed_bytes))
        return DecryptResult(message, False, False, info, _protected_subject(message), None)

    def _verify_mime_part(self, signed_bytes: bytes, signature: bytes) -> SignatureInfo:
        # RFC 3156 5: the signature is over the part in canonical form (CRLF line endings);
        # mail delivered through an MTA pipe arrives with bare LF and must be converted back.
        canonical = _crlf(signed_bytes)
        info = self.verify_detached(canonical, signature)
        if info.status == "bad" and canonical != signed_bytes:
            # Some clients sign the bytes as they are on their disk (bare LF); accept their
            # signature over the bytes exactly as received as well.
            exact = self.verify_detached(signed_bytes, signature)
            if exact.status == "good":
                return exact
        return info

    def _inline(self, msg: EmailMessage) -> DecryptResult:
        for part in _inline_candidates(msg):
            body = part.get_payload(decode=True)
            if not isinstance(body, bytes):
                continue
            charset = part.get_content_charset()
            block = _ARMOR_MESSAGE.search(body)
            if block is not None:
                opened = self._open(block.group(0))
                if opened.plaintext is None:
                    return DecryptResult(None, opened.encrypted, False, None, None, opened.error)
                text = _decode_text(opened.plaintext, charset)
                return DecryptResult(
                    _text_message(text),
                    opened.encrypted,
                    opened.decrypted,
                    opened.signature,
                    None,
                    None,
                )
            block = _ARMOR_SIGNED.search(body)
            if block is not None:
                opened = self._open(block.group(0))
                text = _decode_text(opened.plaintext or b"", charset)
                signature = opened.signature or SignatureInfo(
                    "error", None, None, None, opened.error or "no signature found"
                )
                return DecryptResult(_text_message(text), False, False, signature, None, None)
        return DecryptResult(None, False, False, None, None, None)

    def _open(self, data: bytes) -> _Opened:
        """Run ``gpg --decrypt`` (decrypts and/or verifies) and interpret its status lines."""
        result = self._gpg.decrypt(data, passphrase=self._passphrase)
        status = _statuses(result)
        keys = {key for key, _ in status}
        encrypted = bool(
            keys & {"ENC_TO", "BEGIN_DECRYPTION", "NO_SECKEY", "NEED_PASSPHRASE_SYM"}
            or "DECRYPTION_FAILED" in keys
        )
        signature = _signature_from_status(status)
        if encrypted:
            ok = "DECRYPTION_OKAY" in keys and not keys & {"DECRYPTION_FAILED", "BADMDC"}
            if not ok:
                return _Opened(None, True, False, None, _decrypt_error(status))
            return _Opened(bytes(result.data), True, True, signature, None)
        if "PLAINTEXT" in keys:
            # Signed but not encrypted (clearsigned text or an opaque signed message).
            return _Opened(bytes(result.data), False, False, signature, None)
        return _Opened(None, False, False, signature, "not a readable OpenPGP message")

    def _require_own_key(self) -> str:
        if not self._fingerprint:
            raise PgpError("no bot key configured (pgp.key_fingerprint)")
        return self._fingerprint

    def _public_key(self, fingerprint: str) -> dict[str, Any] | None:
        fpr = _normalise_fingerprint(fingerprint)
        for key in self._gpg.list_keys(keys=[fpr]):
            if key.get("fingerprint") == fpr:
                return cast(dict[str, Any], key)
        return None

    def _has_valid_uid(self, fingerprint: str, address: str) -> bool:
        # Listed per key: python-gnupg's uid_map is keyed by the user id text, so two keys
        # with the same user id would overwrite each other's validity.
        listing = self._gpg.list_keys(keys=[fingerprint])
        for uid, fields in listing.uid_map.items():
            valid = fields.get("trust") not in ("r", "e", "i")
            if valid and _uid_email(_from_gpg_text(uid)) == address:
                return True
        return False

    def _contains_secret_key(self, data: bytes) -> bool:
        # --list-packets only parses: it needs no agent and stores nothing. Packet tags 5
        # and 7 are secret keys and secret subkeys.
        proc = self._run_gpg(["--list-packets"], data)
        listing = proc.stdout.decode("utf-8", "replace")
        return ":secret key packet:" in listing or ":secret sub key packet:" in listing

    def _run_gpg(self, args: list[str], data: bytes) -> subprocess.CompletedProcess[bytes]:
        cmd = ["gpg", "--homedir", str(self._home), "--batch", "--no-tty", *args]
        try:
            return subprocess.run(cmd, input=data, capture_output=True, env=self._env, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PgpError(f"gpg could not be run: {type(exc).__name__}") from exc

    def _gpgconf(self, *args: str) -> None:
        try:
            subprocess.run(
                ["gpgconf", "--homedir", str(self._home), *args],
                capture_output=True,
                env=self._env,
                timeout=30,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            logger.warning("gpgconf %s failed: %s", " ".join(args), type(exc).__name__)

    def _configure_agent(self, s2k_count: int) -> None:
        if s2k_count < MIN_S2K_COUNT:
            raise PgpError(f"s2k_count must be at least {MIN_S2K_COUNT}")
        conf = self._home / "gpg-agent.conf"
        current = conf.read_text(encoding="utf-8").splitlines() if conf.exists() else []
        # Keep whatever else the operator configured; only the s2k-count line is ours.
        lines = [line for line in current if line.split()[:1] != ["s2k-count"]]
        lines.append(f"s2k-count {s2k_count}")
        if lines == current:
            return
        conf.write_text("\n".join(lines) + "\n", encoding="utf-8")
        # A running agent only reads its configuration when told to (this never starts one).
        self._gpgconf("--reload", "gpg-agent")


# ---------------------------------------------------------------------- MIME building


def _protected_body(msg: EmailMessage) -> EmailMessage:
    """The body of ``msg`` as a 7-bit clean MIME part carrying the protected headers."""
    inner = copy.deepcopy(msg)
    for name in {k.lower() for k in inner.keys()}:
        if not name.startswith("content-"):
            del inner[name]
    if inner.get("Content-Type") is None:
        text = msg.get_payload(decode=True)
        body = text.decode("utf-8", "replace") if isinstance(text, bytes) else ""
        inner = EmailMessage(policy=policy.default)
        inner.set_content(body)
        del inner["MIME-Version"]
    _make_transport_safe(inner)
    inner.set_param("protected-headers", "v1")
    # Content-Type first, then the other content headers, then the protected headers: the
    # layout Thunderbird writes, and readable for anyone inspecting the raw part.
    content = sorted(inner.items(), key=lambda item: item[0].lower() != "content-type")
    for name in {k.lower() for k, _ in content}:
        del inner[name]
    for name, value in content:
        inner[name] = value
    for name in _PROTECTED_HEADERS:
        for value in msg.get_all(name, []):
            inner[name] = str(value)
    return inner


def _envelope(msg: EmailMessage, *, hide_subject: bool) -> EmailMessage:
    """A new message with the envelope (non-Content-*) headers of ``msg``, in order."""
    outer = EmailMessage(policy=policy.default)
    for name, value in msg.items():
        lname = name.lower()
        if lname.startswith("content-") or lname == "mime-version":
            continue
        if lname == "subject" and hide_subject:
            continue
        outer[name] = value
    if hide_subject:
        outer["Subject"] = "..."
    outer["MIME-Version"] = "1.0"
    return outer


def _make_transport_safe(root: Message) -> None:
    """Re-encode every leaf so the part is 7-bit and survives any MTA unchanged.

    RFC 3156 3: signed data must not be altered in transit, so no 8bit (an MTA may convert
    it), no trailing whitespace (may be stripped), no line starting "From " (may become
    ">From "), no overlong lines.
    """
    for part in root.walk():
        if part.is_multipart():
            continue
        cte = str(part.get("Content-Transfer-Encoding", "7bit")).strip().lower()
        if cte == "base64":
            continue
        data = part.get_payload(decode=True)
        if not isinstance(data, bytes):
            continue
        if cte in ("7bit", "8bit", "binary") and _is_7bit_safe(data):
            if cte != "7bit":
                del part["Content-Transfer-Encoding"]
                part["Content-Transfer-Encoding"] = "7bit"
            continue
        if part.get_content_maintype() == "text":
            encoded, new_cte = qp_encode(data), "quoted-printable"
        else:
            encoded, new_cte = base64.encodebytes(data).decode("ascii"), "base64"
        del part["Content-Transfer-Encoding"]
        part["Content-Transfer-Encoding"] = new_cte
        part.set_payload(encoded)


def _is_7bit_safe(data: bytes) -> bool:
    if any(b > 126 or (b < 32 and b not in (9, 10, 13)) for b in data):
        return False
    for line in data.replace(b"\r\n", b"\n").split(b"\n"):
        if b"\r" in line or len(line) > 76:
            return False
        if line.endswith((b" ", b"\t")) or line.startswith(b"From ") or line == b".":
            return False
    return True


def qp_encode(data: bytes) -> str:
    """Quoted-printable (RFC 2045 6.7) that is also safe for signed mail.

    Unlike the stdlib encoders this also escapes "From " at the start of any line and a
    line holding a single dot, and keeps every line within 76 characters.
    """
    text = data.replace(b"\r\n", b"\n")
    out: list[str] = []
    for line in text.split(b"\n"):
        tokens: list[str] = []
        last = len(line) - 1
        for i, byte in enumerate(line):
            if byte in (0x20, 0x09):
                # Whitespace at the end of a line may be stripped in transit.
                tokens.append(chr(byte) if i < last else f"={byte:02X}")
            elif 33 <= byte <= 126 and byte != 0x3D:
                tokens.append(chr(byte))
            else:
                tokens.append(f"={byte:02X}")
        if line == b".":
            tokens = ["=2E"]
        out.extend(_qp_wrap(tokens))
    return "\n".join(out)


def _qp_wrap(pieces: list[str]) -> list[str]:
    """Split one encoded line into physical lines of at most 76 characters (soft breaks)."""
    lines: list[str] = []
    current = ""
    for index, piece in enumerate(pieces):
        is_last = index == len(pieces) - 1
        limit = 76 if is_last else 75  # room for the "=" of a soft break
        starts_from = _spells_from(pieces, index)
        if not current and starts_from:
            piece = "=46"
        if len(current) + len(piece) > limit:
            lines.append(current + "=")
            current = ""
            if starts_from:
                piece = "=46"
        current += piece
    lines.append(current)
    return lines


def _spells_from(pieces: list[str], index: int) -> bool:
    return "".join(pieces[index : index + 5]) == "From "


def _new_boundary(content: bytes) -> str:
    while True:
        boundary = f"=-cvdbot-{secrets.token_hex(16)}"
        if boundary.encode("ascii") not in content:
            return boundary


def _to_wire(part: Message) -> bytes:
    return _to_bytes(part, _WIRE)


def _stable_wire(part: Message) -> bytes:
    """The part's wire bytes in the form that survives being parsed and generated again.

    Python's header folding is not always idempotent (a folded header may gain a space after
    the colon on its second generation); signing the settled form keeps the signature valid
    whatever serialises the message later.
    """
    data = _to_wire(part)
    for _ in range(3):
        again = _to_wire(_parse(data))
        if again == data:
            return data
        data = again
    raise PgpError("internal error: the signed part does not settle into one serialisation")


def _to_bytes(part: Message, pol: policy.Policy) -> bytes:
    buf = io.BytesIO()
    BytesGenerator(buf, mangle_from_=False, policy=pol).flatten(part, unixfrom=False)
    return buf.getvalue()


def _parse(raw: bytes) -> EmailMessage:
    return BytesParser(policy=policy.default).parsebytes(raw)


def _crlf(data: bytes) -> bytes:
    return re.sub(rb"\r?\n", b"\r\n", data)


def _first_part_bytes(raw: bytes, boundary: str) -> bytes | None:
    """The exact bytes of the first body part of the multipart with ``boundary`` in ``raw``.

    RFC 2046 5.1.1: the line break before a delimiter line belongs to the delimiter, so the
    part runs from after the first delimiter line to before the line break of the second.
    A delimiter cannot occur inside the parts, so the first two occurrences are the ones.
    """
    delimiter = re.compile(
        rb"(?:\r?\n|\A)--" + re.escape(boundary.encode("utf-8", "surrogateescape")) + rb"(--)?"
        rb"[ \t]*(?:\r?\n|\Z)"
    )
    first = delimiter.search(raw)
    if first is None or first.group(1):
        return None
    second = delimiter.search(raw, first.end())
    if second is None:
        return None
    # The second match starts at its own leading line break; don't let it start inside the
    # first delimiter's terminating line break (an empty part).
    return raw[first.end() : max(second.start(), first.end())]


# ---------------------------------------------------------------------- MIME reading


def _walk_no_messages(part: Message) -> Iterator[Message]:
    """Pre-order walk that does not enter attached messages (message/rfc822).

    A forwarded, signed mail inside a report must not pass for the report's own signature.
    """
    yield part
    if part.get_content_maintype() == "message" or not part.is_multipart():
        return
    # Only a multipart's payload is read: decoding a leaf can raise for a hostile charset
    # (idna, punycode), and leaves have no children anyway.
    payload = part.get_payload()
    if isinstance(payload, list):
        for child in payload:
            if isinstance(child, Message):
                yield from _walk_no_messages(child)


def _is_pgp(part: Message, content_type: str, protocol: str) -> bool:
    if part.get_content_type() != content_type:
        return False
    value = part.get_param("protocol")
    return isinstance(value, str) and value.strip().lower() == protocol


def _find_part(msg: Message, content_type: str, protocol: str) -> Message | None:
    for part in _walk_no_messages(msg):
        if _is_pgp(part, content_type, protocol):
            return part
    return None


def _inline_candidates(msg: Message) -> list[Message]:
    """Parts that may hold armored PGP: text/plain (body text before attachments), then
    armored attachments such as the "encrypted.asc" some webmail extensions send."""
    parts = list(_walk_no_messages(msg))
    texts = [p for p in parts if p.get_content_type() == "text/plain"]
    texts.sort(key=lambda p: p.get_content_disposition() == "attachment")
    armored = [
        p
        for p in parts
        if p.get_content_type() not in ("text/plain", "application/pgp-keys")
        and not p.is_multipart()
        and (
            p.get_content_type() == "application/pgp-encrypted"
            or (p.get_filename() or "").lower().endswith(".asc")
        )
    ]
    return texts + armored


def _parse_plaintext(plaintext: bytes) -> EmailMessage:
    # RFC 3156 requires a MIME entity, but some clients encrypt bare text in PGP/MIME.
    if re.match(rb"[A-Za-z0-9-]+:", plaintext):
        return _parse(plaintext)
    return _text_message(_decode_text(plaintext, None))


def _text_message(text: str) -> EmailMessage:
    message = EmailMessage(policy=policy.default)
    message.set_content(text.replace("\r\n", "\n"))
    del message["MIME-Version"]
    return message


def _decode_text(data: bytes, charset: str | None) -> str:
    for candidate in ("utf-8", charset):
        if not candidate:
            continue
        try:
            return data.decode(candidate)
        except (LookupError, UnicodeDecodeError):
            continue
    return data.decode("latin-1")


def _protected_subject(message: Message) -> str | None:
    """The Subject from RFC 9788 / "protected-headers=v1" header protection, if any."""
    marked = message.get_param("protected-headers") is not None or message.get_param("hp")
    subject = message.get("Subject")
    if marked and subject is not None:
        return str(subject)
    # The older Enigmail form: a text/rfc822-headers part with the protected headers.
    for part in _walk_no_messages(message):
        if part.get_content_type() == "text/rfc822-headers":
            body = part.get_payload(decode=True)
            if isinstance(body, bytes):
                headers = HeaderParser(policy=policy.default).parsestr(
                    _decode_text(body, part.get_content_charset())
                )
                if headers.get("Subject") is not None:
                    return str(headers["Subject"])
    return None


def _failed(error: str) -> DecryptResult:
    return DecryptResult(None, True, False, None, None, error)


# ---------------------------------------------------------------------- gpg status


def _statuses(result: Any) -> list[tuple[str, str]]:
    """The ``[GNUPG:] KEYWORD args`` lines gpg wrote (python-gnupg folds them lossily)."""
    out: list[tuple[str, str]] = []
    for line in str(getattr(result, "stderr", "") or "").splitlines():
        if line.startswith("[GNUPG:] "):
            keyword, _, value = line[9:].partition(" ")
            out.append((keyword, value.strip()))
    return out


def _signature_from_status(status: list[tuple[str, str]]) -> SignatureInfo | None:
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


def _decrypt_error(status: list[tuple[str, str]]) -> str:
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


def _to_gpg_text(text: str) -> str:
    """Text that python-gnupg's Latin-1 codec turns into the UTF-8 bytes gpg expects."""
    return text.encode("utf-8").decode("latin-1")


def _from_gpg_text(text: str) -> str:
    """The inverse of :func:`_to_gpg_text` for text python-gnupg decoded as Latin-1."""
    return text.encode("latin-1", "replace").decode("utf-8", "replace")


# ---------------------------------------------------------------------- small helpers


def _normalise_fingerprint(fingerprint: str) -> str:
    fpr = re.sub(r"\s+", "", fingerprint).upper()
    return fpr[2:] if fpr.startswith("0X") else fpr


def _passphrase_ok(passphrase: str) -> bool:
    return not any(c in passphrase for c in "\r\n\x00")


def _printable(text: str) -> str:
    return _CONTROL_CHARS.sub(" ", text).strip()


def _uid_email(uid: str) -> str | None:
    # Exactly one address: a user id naming several must not match any of them.
    addresses = [addr for _, addr in getaddresses([uid]) if "@" in addr]
    return addresses[0].strip().lower() if len(addresses) == 1 else None


def _key_usable_for_encryption(key: dict[str, Any]) -> bool:
    # Field 2 (validity): r revoked, e expired, i invalid, d disabled (older gpg). Field 12
    # holds the usable capabilities of the whole key in upper case, D for disabled.
    if str(key.get("trust") or "") in ("r", "e", "i", "d"):
        return False
    caps = str(key.get("cap") or "")
    return "E" in caps and "D" not in caps


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
