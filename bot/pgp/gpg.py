"""The bot's OpenPGP keyring: a wrapper around python-gnupg and the real gpg binary.

Keys (generate, import, look up, summarise), signing, encryption, decryption and
verification. The PGP/MIME around them is built in mime_out.py and read in mime_in.py.
Everything here is synchronous (gpg is a subprocess); async callers use ``asyncio.to_thread``.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import tempfile
from collections.abc import Collection
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any, cast

import gnupg

from bot.pgp.bounded_run import BoundedRun, GpgLimits, run_bounded
from bot.pgp.gpg_status import decrypt_error, signature_from_status, statuses
from bot.pgp.key_listing import (
    from_gpg_text,
    key_usable_for_encryption,
    summarise_key,
    to_gpg_text,
    uid_email,
)
from bot.pgp.keyring_lock import keyring_lock
from bot.pgp.mime_in import MimeReader
from bot.pgp.mime_out import (
    encrypted_message,
    encryption_input,
    micalg,
    signed_message,
    signing_input,
)
from bot.pgp.mime_wire import parse
from bot.pgp.verdicts import (
    CONTROL_CHARS,
    DecryptResult,
    Opened,
    PgpError,
    SignatureInfo,
    format_fingerprint,
    normalise_fingerprint,
)

# Callers import these from here: the Pgp class and the values its methods return.
__all__ = [
    "MIN_S2K_COUNT",
    "DecryptResult",
    "GpgLimits",
    "Pgp",
    "PgpError",
    "SignatureInfo",
    "format_fingerprint",
]

logger = logging.getLogger(__name__)

#: The smallest S2K iteration count gpg-agent accepts. Passing it as ``s2k_count`` makes
#: key generation and every unlock take milliseconds instead of the agent's calibrated
#: ~0.5 s; meant for tests and demos, where the passphrase protects nothing of value.
MIN_S2K_COUNT = 65536


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

# Addresses simple enough to put into a gpg filter expression without quoting rules.
_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+")


class Pgp:
    """The bot's OpenPGP keyring and the MIME operations built on it."""

    def __init__(
        self,
        gnupg_home: Path,
        key_fingerprint: str | None,
        passphrase: str | None,
        *,
        s2k_count: int | None = None,
        limits: GpgLimits | None = None,
    ) -> None:
        self._home = Path(gnupg_home)
        self._limits = limits or GpgLimits()
        self._home.mkdir(mode=0o700, parents=True, exist_ok=True)
        # gpg refuses to trust (and warns loudly about) a home others can read; the home
        # holds the bot's secret key, so tighten it rather than run with it open.
        if self._home.stat().st_mode & 0o077:
            os.chmod(self._home, 0o700)
        self._fingerprint = normalise_fingerprint(key_fingerprint) if key_fingerprint else None
        # An empty passphrase would make python-gnupg pass --passphrase-fd without writing a
        # line, and gpg would then eat the first line of the data as the passphrase.
        if passphrase and not _passphrase_ok(passphrase):
            raise PgpError("the passphrase must not contain line breaks or NUL characters")
        self._passphrase = to_gpg_text(passphrase) if passphrase else None
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
            # gpg. Latin-1 maps every byte, and to_gpg_text/from_gpg_text restore UTF-8.
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
            if CONTROL_CHARS.search(value):
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
        with keyring_lock(self._home):
            result = self._gpg.gen_key(to_gpg_text(self._gpg.gen_key_input(**params)))
        if not result.fingerprint:
            raise PgpError(f"key generation failed ({result.status or 'no key created'})")
        logger.info("generated OpenPGP key %s", result.fingerprint)
        return str(result.fingerprint)

    def export_public_key(self, fingerprint: str) -> str:
        """The public key, ASCII armored."""
        armored = self._gpg.export_keys(normalise_fingerprint(fingerprint), armor=True)
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
        with keyring_lock(self._home):
            result = self._gpg.import_keys(data, extra_args=extra_args)
        if result.sec_read or result.sec_imported:
            # The scan above should make this impossible; if gpg disagrees, say so loudly.
            raise PgpError("gpg read secret key material during an import of public keys")
        fingerprints: list[str] = []
        for fpr in result.fingerprints:
            if fpr and fpr not in fingerprints:
                fingerprints.append(str(fpr))
        return fingerprints

    def holds_public_key(self, fingerprint: str) -> bool:
        """Whether the keyring holds the public key `fingerprint` (in any state)."""
        return self._public_key(fingerprint) is not None

    def delete_public_key(self, fingerprint: str) -> bool:
        """Remove a reporter's public key (their case's data was deleted). True when it was
        removed, False when the keyring did not hold it. The bot's own key, and any key with
        a secret part, is never removed this way."""
        fpr = normalise_fingerprint(fingerprint)
        if fpr == self._fingerprint or self._gpg.list_keys(True, keys=[fpr]):
            raise PgpError("refusing to delete a key with a secret part (the bot's own key)")
        if self._public_key(fpr) is None:
            return False
        with keyring_lock(self._home):
            result = self._gpg.delete_keys([fpr], secret=False)
        if str(result) != "ok":
            raise PgpError(f"gpg could not delete the key: {result}")
        return True

    def key_for_address(
        self, address: str, *, pinned: str | None = None, exclude: Collection[str] = ()
    ) -> str | None:
        """Fingerprint of a usable encryption key with a valid user id for ``address``.

        Expired, revoked, disabled and invalid keys and user ids do not count. With
        ``pinned`` only that key counts; keys in ``exclude`` never do. Otherwise, with several
        candidates the most recently created key wins.
        """
        wanted = address.strip().lower()
        if not wanted:
            return None
        best: tuple[int, str] | None = None
        for key in self._gpg.list_keys():
            if pinned is not None and str(key.get("fingerprint")) != pinned:
                continue
            if str(key.get("fingerprint")) in exclude:
                continue
            if not any(uid_email(from_gpg_text(u)) == wanted for u in key.get("uids", [])):
                continue
            if not key_usable_for_encryption(key):
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
        return summarise_key(key)

    def fingerprint_ok(self) -> bool:
        """The bot's key is in the keyring with its secret part and is not expired/revoked."""
        if not self._fingerprint:
            return False
        secret = self._gpg.list_keys(secret=True, keys=[self._fingerprint])
        if not any(k.get("fingerprint") == self._fingerprint for k in secret):
            return False
        key = self._public_key(self._fingerprint)
        return key is not None and str(key.get("trust") or "") not in ("e", "r", "i", "d")

    def check_own_key(self, now: float, warn_days: int = 30) -> OwnKeyCheck:
        """What `cvdbot doctor` says about the bot's key: present with its secret part, not
        expired or revoked (a warning within `warn_days` of expiry), protected by a
        passphrase, and that passphrase right. The agent's cached passphrase is cleared
        first, so a wrong configured one cannot pass on a cached unlock; the running bot
        supplies its passphrase with every use, so clearing costs it nothing."""
        try:
            fpr = self._require_own_key()
        except PgpError as exc:
            return OwnKeyCheck(str(exc), False)
        secret = [
            k for k in self._gpg.list_keys(secret=True, keys=[fpr]) if k["fingerprint"] == fpr
        ]
        key = self._public_key(fpr)
        if not secret or key is None:
            return OwnKeyCheck(f"key {fpr} with its secret part is not in {self._home}", False)
        summary = summarise_key(key)
        if str(key.get("trust") or "") in ("e", "r", "i", "d"):
            return OwnKeyCheck(f"{summary}: not usable (expired or revoked)", False)
        grips = self._keygrips(fpr)
        protection = {self._agent_keyinfo(grip) for grip in grips}
        if "C" in protection:
            return OwnKeyCheck(f"{summary}: the secret key has no passphrase", False)
        for grip in grips:
            self._agent_command(f"CLEAR_PASSPHRASE --mode=normal {grip}")
        # Judged by gpg's SIG_CREATED (a truthy result), not by output: a clear-signature
        # run writes its header before gpg asks for the passphrase, so a wrong passphrase
        # still leaves data behind.
        signed = self._gpg.sign(
            b"cvdbot doctor", keyid=fpr, passphrase=self._passphrase, detach=True
        )
        if not signed or not signed.data:
            return OwnKeyCheck(f"{summary}: cannot sign with the configured passphrase", False)
        expires = str(key.get("expires") or "")
        if expires and int(expires) - now < warn_days * 86400:
            return OwnKeyCheck(f"{summary}: expires within {warn_days} days", True, warning=True)
        return OwnKeyCheck(f"{summary}: signs with the configured passphrase", True)

    def _keygrips(self, fingerprint: str) -> list[str]:
        proc = self._run_gpg(["--with-colons", "--with-keygrip", "-K", fingerprint], b"")
        return [
            line.split(":")[9]
            for line in proc.stdout.decode("ascii", "replace").splitlines()
            if line.startswith("grp:")
        ]

    def _agent_command(self, command: str) -> str:
        try:
            proc = subprocess.run(
                ["gpg-connect-agent", "--homedir", str(self._home), command, "/bye"],
                capture_output=True,
                env=self._env,
                timeout=30,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PgpError(f"gpg-agent could not be asked: {type(exc).__name__}") from exc
        return proc.stdout.decode("ascii", "replace")

    def _agent_keyinfo(self, grip: str) -> str:
        """The agent's protection flag of a secret key: P (passphrase), C (clear), - unknown."""
        for line in self._agent_command(f"KEYINFO {grip}").splitlines():
            fields = line.split()
            if fields[:2] == ["S", "KEYINFO"] and len(fields) > 7:
                return fields[7]
        return "-"

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
        signed_bytes = signing_input(msg)
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
        signature = bytes(result.data).decode("ascii")
        return signed_message(msg, signed_bytes, signature, micalg(result.hash_algo))

    def encrypt_mime(
        self,
        msg: EmailMessage,
        recipient_fingerprints: list[str],
        *,
        sign: bool = True,
        hide_subject: bool | str = False,
    ) -> EmailMessage:
        """Wrap ``msg`` in an RFC 3156 multipart/encrypted for the recipients and the bot.

        The bot's own key is always a recipient, so the team can read its sent mail from the
        store. With ``sign`` the bot signs inside the encryption (RFC 3156 6.2, one pass).
        The outer Subject stays visible (it carries the case tag) unless ``hide_subject``:
        then it is "...", or the text given; the real one travels in the protected headers.
        """
        if not recipient_fingerprints:
            raise PgpError("no recipient keys to encrypt to")
        recipients = [normalise_fingerprint(f) for f in recipient_fingerprints]
        own = self._fingerprint
        if sign:
            own = self._require_own_key()
        if own and own not in recipients:
            recipients.append(own)
        plaintext = encryption_input(msg)
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

        armored = bytes(result.data).decode("ascii")
        return encrypted_message(msg, armored, hide_subject=hide_subject)

    # ------------------------------------------------------------------ incoming

    def decrypt_raw(self, raw: bytes) -> DecryptResult:
        """Decrypt/verify a mail given as the raw bytes received (the preferred entry).

        The raw bytes are what a multipart/signed signature covers; a parsed message cannot
        always be serialised back to them.
        """
        return MimeReader(self._open, self.verify_detached).examine(parse(raw), raw)

    def decrypt_mime(self, msg: EmailMessage) -> DecryptResult:
        """Like :meth:`decrypt_raw` for an already parsed message.

        A multipart/signed part is verified against a re-serialisation of the parsed part,
        which matches the original only as far as the parser kept it; prefer decrypt_raw.
        """
        return MimeReader(self._open, self.verify_detached).examine(msg, None)

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
            run = self._run_limited(["--verify", str(sig_path), str(data_path)], b"", cap=0)
        if run.exceeded == "time":
            return SignatureInfo("error", None, None, None, self._time_text())
        info = signature_from_status(statuses(run))
        if info is None:
            return SignatureInfo("error", None, None, None, "no OpenPGP signature found")
        return info

    # ------------------------------------------------------------------ internals

    def _open(self, data: bytes) -> Opened:
        """Run ``gpg --decrypt`` (decrypts and/or verifies) and interpret its status lines.

        gpg runs under the configured limits: stopped after `timeout_seconds`, or as soon as
        the output grows past `output_cap` (a compressed message expanding to gigabytes).
        """
        cap = self._limits.output_cap(len(data))
        stdin = data
        args = ["--max-output", str(cap + _MAX_OUTPUT_SLACK), "--decrypt"]
        if self._passphrase is not None:
            # As python-gnupg does it: the first line of stdin is the passphrase.
            args = ["--passphrase-fd", "0", *args]
            stdin = self._passphrase.encode("latin-1") + b"\n" + data
        run = self._run_limited(args, stdin, cap=cap)
        status = statuses(run)
        if run.exceeded == "output":
            return Opened(None, True, False, None, _too_large_text(cap))
        if run.exceeded == "time":
            return Opened(None, True, False, None, self._time_text())
        result = run
        keys = {key for key, _ in status}
        encrypted = bool(
            keys & {"ENC_TO", "BEGIN_DECRYPTION", "NO_SECKEY", "NEED_PASSPHRASE_SYM"}
            or "DECRYPTION_FAILED" in keys
        )
        signature = signature_from_status(status)
        if encrypted:
            ok = "DECRYPTION_OKAY" in keys and not keys & {"DECRYPTION_FAILED", "BADMDC"}
            if not ok:
                return Opened(None, True, False, None, decrypt_error(status))
            return Opened(result.stdout, True, True, signature, None)
        if "PLAINTEXT" in keys:
            # Signed but not encrypted (clearsigned text or an opaque signed message).
            return Opened(result.stdout, False, False, signature, None)
        return Opened(None, False, False, signature, "not a readable OpenPGP message")

    def _run_limited(self, args: list[str], data: bytes, *, cap: int) -> BoundedRun:
        """gpg on untrusted data, under the wall-clock limit and with `cap` bytes of output."""
        cmd = ["gpg", "--homedir", str(self._home), "--batch", "--no-tty", "--status-fd", "2"]
        cmd += ["--pinentry-mode", "loopback", "--no-auto-key-retrieve"]
        cmd += ["--auto-key-locate", "local", "--display-charset", "utf-8", *args]
        try:
            return run_bounded(
                cmd, data, env=self._env, cap=cap, timeout=self._limits.timeout_seconds
            )
        except OSError as exc:
            raise PgpError(f"gpg could not be run: {type(exc).__name__}") from exc

    def _time_text(self) -> str:
        seconds = self._limits.timeout_seconds
        return f"gpg took longer than {seconds:g} s (limits.gpg_timeout_seconds) and was stopped"

    def _require_own_key(self) -> str:
        if not self._fingerprint:
            raise PgpError("no bot key configured (pgp.key_fingerprint)")
        return self._fingerprint

    def _public_key(self, fingerprint: str) -> dict[str, Any] | None:
        fpr = normalise_fingerprint(fingerprint)
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
            if valid and uid_email(from_gpg_text(uid)) == address:
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


# ---------------------------------------------------------------------- small helpers


@dataclass(frozen=True)
class OwnKeyCheck:
    detail: str
    ok: bool
    warning: bool = False


# gpg's own --max-output sits a little above our cap: we stop it at the cap ourselves, and
# its limit is the backstop should our kill come late.
_MAX_OUTPUT_SLACK = 1024 * 1024


def _too_large_text(cap: int) -> str:
    return (
        f"its content expands past the limit of {cap} bytes (limits.max_decrypted_bytes, "
        "limits.max_expansion_ratio); gpg was stopped"
    )


def _passphrase_ok(passphrase: str) -> bool:
    return not any(c in passphrase for c in "\r\n\x00")


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
