"""The intake corpus as code: the manifest's schema, and the PGP variants built at run time.

PGP messages are kept in `messages/` as the cleartext the reporter wrote; `OutsideWorld`
plays the reporters' side with the real gpg (one key per reporter address, made on first
use, plus an old "wrong" key) and turns a cleartext message into PGP/MIME or inline PGP as
the manifest's `pgp:` spec says. Keys are made fresh in every run, so nothing secret is
stored in the repository and the bot never sees a key it was not sent.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Mapping
from email import policy
from email.generator import BytesGenerator
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import parseaddr
from pathlib import Path
from typing import Literal

import gnupg
import yaml
from pydantic import BaseModel, ConfigDict, model_validator

from bot.pgp.gpg import MIN_S2K_COUNT, Pgp

CORPUS_DIR = Path(__file__).resolve().parent
MESSAGES_DIR = CORPUS_DIR / "messages"
MANIFEST = CORPUS_DIR / "manifest.yaml"

REPORTER_PASSPHRASE = "reporter-passphrase"
PUBKEY_PLACEHOLDER = b"{{pubkey}}"
_CASE_PLACEHOLDER = re.compile(rb"\{\{case:([A-Za-z0-9_.-]+)\}\}")

Expect = Literal["new_case", "follow_up", "automatic", "duplicate"]
SignatureExpectation = Literal["good", "bad", "unknown_key"]
MissingItem = Literal["contact", "reproduction"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Tamper(_Strict):
    """Change these bytes after signing, as a meddling relay would."""

    find: str
    replace: str


class PgpSpec(_Strict):
    """How the reporter's client protected the message."""

    encrypt: bool = False
    sign: bool = False
    style: Literal["mime", "inline"] = "mime"
    to: Literal["bot", "wrong_key"] = "bot"
    attach_key: bool = False
    # Protected headers (RFC 9788): the outer Subject becomes "...", the real one is inside.
    hide_subject: bool = False
    tamper: Tamper | None = None

    @model_validator(mode="after")
    def _possible(self) -> PgpSpec:
        if not (self.encrypt or self.sign):
            raise ValueError("a pgp spec encrypts, signs or both")
        if self.hide_subject and not (self.encrypt and self.style == "mime"):
            raise ValueError("hide_subject needs PGP/MIME encryption")
        if self.tamper is not None and self.encrypt:
            raise ValueError("tamper applies to signed, unencrypted messages")
        return self


class CorpusEntry(_Strict):
    """One message of the corpus and what the intake must make of it."""

    file: str
    client: str
    description: str
    pgp: PgpSpec | None = None
    expect: Expect
    follow_up_of: str | None = None
    reporter: str | None = None
    forwarded_by: str | None = None
    language: Literal["nl", "en"] | None = None
    thread_contains: list[str] = []
    thread_not_contains: list[str] = []
    # Absent: not checked. null: the thread shows no signature verdict.
    signature: SignatureExpectation | None = None
    missing: list[MissingItem] | None = None
    related_to: str | None = None
    # Bytes the stored raw mail must contain (the store keeps what the thread cuts).
    stored_contains: list[str] = []
    # Attachments posted as encrypted media, and ones only listed (too large).
    attachments_posted: list[str] = []
    attachments_listed: list[str] = []

    @model_validator(mode="after")
    def _consistent(self) -> CorpusEntry:
        if self.expect == "follow_up" and self.follow_up_of is None:
            raise ValueError(f"{self.file}: a follow_up names follow_up_of")
        if self.expect != "new_case":
            for name in ("reporter", "language", "forwarded_by", "related_to", "missing"):
                if name in self.model_fields_set:
                    raise ValueError(f"{self.file}: {name} is for new_case entries only")
        return self

    @property
    def checks_signature(self) -> bool:
        return "signature" in self.model_fields_set

    @property
    def checks_reporter(self) -> bool:
        return "reporter" in self.model_fields_set

    def cleartext(self) -> bytes:
        return (MESSAGES_DIR / self.file).read_bytes()


def load_manifest(path: Path = MANIFEST) -> list[CorpusEntry]:
    """The manifest, validated: files exist, references point at earlier entries."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a list of entries")
    entries = [CorpusEntry.model_validate(item) for item in data]
    seen: set[str] = set()
    for entry in entries:
        if entry.file in seen:
            raise ValueError(f"{entry.file} is listed twice")
        if not (MESSAGES_DIR / entry.file).is_file():
            raise ValueError(f"{entry.file} is not in {MESSAGES_DIR}")
        for ref in (entry.follow_up_of, entry.related_to, *case_references(entry.cleartext())):
            if ref is not None and ref not in seen:
                raise ValueError(f"{entry.file} refers to {ref}, which is not an earlier entry")
        seen.add(entry.file)
    return entries


def case_references(raw: bytes) -> list[str]:
    """The files named by `{{case:<file>}}` placeholders in a message."""
    return [match.decode("ascii") for match in _CASE_PLACEHOLDER.findall(raw)]


def fill_cases(raw: bytes, case_of: Mapping[str, str]) -> bytes:
    """Replace every `{{case:<file>}}` with the case ID that file got."""

    def case_id(match: re.Match[bytes]) -> bytes:
        return case_of[match.group(1).decode("ascii")].encode("ascii")

    return _CASE_PLACEHOLDER.sub(case_id, raw)


def needs_key(entry: CorpusEntry) -> bool:
    """Whether the entry's sender needs a key pair on the reporters' side."""
    return entry.pgp is not None or PUBKEY_PLACEHOLDER in entry.cleartext()


def sender_of(raw: bytes) -> tuple[str, str]:
    """(display name, address) of the From header."""
    msg = BytesParser(policy=policy.default).parsebytes(raw, headersonly=True)
    name, address = parseaddr(str(msg.get("From", "")))
    if not address:
        raise ValueError("a PGP corpus message needs a From address")
    return name or address, address.lower()


def to_wire(msg: EmailMessage) -> bytes:
    """CRLF bytes exactly as a client would transmit them (what a signature covers)."""
    buffer = io.BytesIO()
    BytesGenerator(buffer, mangle_from_=False, policy=policy.SMTP).flatten(msg, unixfrom=False)
    return buffer.getvalue()


class OutsideWorld:
    """The reporters' side: their keys, the bot's public key, and an old key of the team."""

    def __init__(self, home: Path, bot_public_key: str) -> None:
        self.home = home
        # Configures the agent for cheap key protection; the keys protect nothing real.
        self._admin = Pgp(home, None, None, s2k_count=MIN_S2K_COUNT)
        imported = self._admin.import_keys(bot_public_key)
        if len(imported) != 1:
            raise ValueError(f"expected one bot key, got {len(imported)}")
        self.bot_fingerprint = imported[0]
        self.wrong_fingerprint = self._admin.generate_key(
            "CVD team (old key)", "security@haaksbergen.example", REPORTER_PASSPHRASE
        )
        self._keys: dict[str, str] = {}
        self._gpg = gnupg.GPG(
            gnupghome=str(home), options=["--pinentry-mode", "loopback", "--batch"]
        )

    def key_for(self, address: str, name: str) -> str:
        """The reporter's fingerprint, made on first use."""
        address = address.lower()
        if address not in self._keys:
            self._keys[address] = self._admin.generate_key(name, address, REPORTER_PASSPHRASE)
        return self._keys[address]

    def make_keys(self, messages: Iterable[bytes]) -> None:
        """Make the key pairs of these messages' senders ahead of time."""
        for raw in messages:
            name, address = sender_of(raw)
            self.key_for(address, name)

    def reporter(self, address: str) -> Pgp:
        """The reporter's own view of gpg: signs with and decrypts for their key."""
        return Pgp(self.home, self._keys[address.lower()], REPORTER_PASSPHRASE)

    def public_key(self, address: str) -> str:
        return self._admin.export_public_key(self._keys[address.lower()])

    def build(self, raw: bytes, spec: PgpSpec | None) -> bytes:
        """The message as the reporter's client sends it."""
        if PUBKEY_PLACEHOLDER in raw:
            name, address = sender_of(raw)
            self.key_for(address, name)
            raw = raw.replace(PUBKEY_PLACEHOLDER, self.public_key(address).strip().encode())
        if spec is None:
            return raw
        name, address = sender_of(raw)
        fingerprint = self.key_for(address, name)
        msg = BytesParser(policy=policy.default).parsebytes(raw)
        assert isinstance(msg, EmailMessage)
        recipient = self.bot_fingerprint if spec.to == "bot" else self.wrong_fingerprint
        if spec.style == "mime":
            if spec.attach_key:
                msg.add_attachment(
                    self.public_key(address).encode("ascii"),
                    maintype="application",
                    subtype="pgp-keys",
                    filename=f"OpenPGP_0x{fingerprint[-16:]}.asc",
                )
            reporter = self.reporter(address)
            if spec.encrypt:
                built = reporter.encrypt_mime(
                    msg, [recipient], sign=spec.sign, hide_subject=spec.hide_subject
                )
            else:
                built = reporter.sign_mime(msg)
            out = to_wire(built)
        else:
            out = to_wire(self._inline(msg, spec, fingerprint, recipient, address))
        if spec.tamper is not None:
            find, replace = spec.tamper.find.encode(), spec.tamper.replace.encode()
            if find not in out:
                raise ValueError(f"tamper text {spec.tamper.find!r} is not in the signed message")
            out = out.replace(find, replace, 1)
        return out

    def _inline(
        self, msg: EmailMessage, spec: PgpSpec, fingerprint: str, recipient: str, address: str
    ) -> EmailMessage:
        body = msg.get_body(("plain",))
        if body is None:
            raise ValueError("inline PGP needs a text/plain body")
        text = body.get_content().replace("\r\n", "\n").encode("utf-8")
        if spec.encrypt:
            result = self._gpg.encrypt(
                text,
                [recipient],
                sign=fingerprint if spec.sign else None,
                passphrase=REPORTER_PASSPHRASE if spec.sign else None,
                always_trust=True,
                armor=True,
            )
        else:
            result = self._gpg.sign(
                text, keyid=fingerprint, passphrase=REPORTER_PASSPHRASE, clearsign=True
            )
        if not result.data:
            raise RuntimeError(f"gpg failed for the inline variant: {result.status}")
        out = EmailMessage(policy=policy.default)
        for key, value in msg.items():
            if not key.lower().startswith("content-") and key.lower() != "mime-version":
                out[key] = value
        out["MIME-Version"] = "1.0"
        out.set_content(bytes(result.data).decode("utf-8"))
        if spec.attach_key:
            out.add_attachment(
                self.public_key(address).encode("ascii"),
                maintype="application",
                subtype="pgp-keys",
                filename=f"0x{fingerprint[-16:]}.asc",
            )
        return out

    def close(self) -> None:
        self._admin.close()
