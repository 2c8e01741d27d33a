"""Tests for bot.pgp (the gpg wrapper and its PGP/MIME) against the real gpg binary.

Outgoing mail is checked with a separate plain ``gpg`` run on the bytes as transmitted
(interoperability, not self-consistency); incoming mail is built by hand the way reporters'
clients build it (Thunderbird-style PGP/MIME, inline PGP). Keys are generated once per
module; every test works on its own copies of the GNUPG homes in its tmp_path.
"""

from __future__ import annotations

import base64
import email
import quopri
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage, Message
from pathlib import Path
from typing import Protocol

import pytest

from bot.pgp.gpg import MIN_S2K_COUNT, Pgp, PgpError, format_fingerprint

BOT_ADDR = "security@gemeente.example"
REP_ADDR = "rita@reporter.example"
# Non-ASCII on purpose: the passphrase must reach gpg as UTF-8.
BOT_PASS = "bot-wachtwoord-€ü"
REP_PASS = "reporter-pass"
STRANGER_PASS = "stranger-pass"
SECRET_WORD = "Zwaardvis42"  # marks report plaintext; must never show up in errors
CASE_SUBJECT = "[CVD-2026-0007] Ontvangstbevestiging van uw melding – dank u"


@dataclass(frozen=True)
class KeySet:
    templates: dict[str, Path]
    fpr: dict[str, str]
    public: dict[str, str]


@pytest.fixture(scope="module")
def keyset(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeySet]:
    base = tmp_path_factory.mktemp("keys")
    people = {
        "bot": ("CVD Bot Gemeente", BOT_ADDR, BOT_PASS),
        "reporter": ("Rita Reporter", REP_ADDR, REP_PASS),
        "stranger": ("Mallory Stranger", "mallory@elsewhere.example", STRANGER_PASS),
    }
    templates: dict[str, Path] = {}
    fprs: dict[str, str] = {}
    public: dict[str, str] = {}
    for role, (name, address, passphrase) in people.items():
        home = base / role
        pgp = Pgp(home, None, None, s2k_count=MIN_S2K_COUNT)
        fprs[role] = pgp.generate_key(name, address, passphrase)
        public[role] = pgp.export_public_key(fprs[role])
        pgp.close()
        templates[role] = home
    yield KeySet(templates, fprs, public)


class HomeFactory(Protocol):
    def __call__(self, role: str, name: str | None = None) -> Path: ...


@pytest.fixture
def home(tmp_path: Path, keyset: KeySet) -> Iterator[HomeFactory]:
    """Copies a template GNUPG home into this test's tmp_path; stops its agent afterwards."""
    made: list[Path] = []

    def make(role: str, name: str | None = None) -> Path:
        """A copy of the ``role`` template (an empty home for other roles) at ``name``."""
        target = tmp_path / (name or role)
        if role in keyset.templates:
            shutil.copytree(
                keyset.templates[role],
                target,
                ignore=shutil.ignore_patterns("S.*", "*.lock", ".#lk*"),
            )
        else:
            target.mkdir(mode=0o700)
            (target / "gpg-agent.conf").write_text(f"s2k-count {MIN_S2K_COUNT}\n")
        made.append(target)
        return target

    yield make
    for path in made:
        subprocess.run(["gpgconf", "--homedir", str(path), "--kill", "gpg-agent"], check=False)


@pytest.fixture
def bot(home: HomeFactory, keyset: KeySet) -> Pgp:
    """The bot, which already knows the reporter's key (as after the reporter's first mail)."""
    pgp = Pgp(home("bot"), keyset.fpr["bot"], BOT_PASS)
    pgp.import_keys(keyset.public["reporter"])
    return pgp


@pytest.fixture
def reporter_home(home: HomeFactory, keyset: KeySet) -> Path:
    """The reporter's own gpg, with the bot's public key (as published on the website)."""
    path = home("reporter")
    gpg(path, "--import", data=keyset.public["bot"].encode())
    return path


def gpg(
    home_dir: Path, *args: str, data: bytes | None = None, passphrase: str | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Plain gpg, as a reporter's mail client or an independent verifier runs it."""
    cmd = ["gpg", "--homedir", str(home_dir), "--batch", "--no-tty", "--status-fd", "2"]
    cmd += ["--pinentry-mode", "loopback"]
    if passphrase is not None:
        cmd += ["--passphrase", passphrase]
    return subprocess.run([*cmd, *args], input=data, capture_output=True, timeout=60)


def crlf(text: str) -> bytes:
    return re.sub(r"\r?\n", "\r\n", text).encode("utf-8")


def split_signed(raw: bytes) -> tuple[bytes, bytes]:
    """Cut a transmitted multipart/signed into (signed part bytes, signature), by hand."""
    parsed = email.message_from_bytes(raw, policy=policy.default)
    boundary = parsed.get_boundary()
    assert parsed.get_content_type() == "multipart/signed" and boundary
    delimiter = b"\r\n--" + boundary.encode() + b"\r\n"
    body = raw[raw.index(b"\r\n\r\n") + 2 :]
    first = body.index(delimiter)
    second = body.index(delimiter, first + len(delimiter))
    signed = body[first + len(delimiter) : second]
    return signed, payload_bytes(children(parsed)[1])


def children(msg: Message) -> list[Message]:
    payload = msg.get_payload()
    assert isinstance(payload, list)
    return [part for part in payload if isinstance(part, Message)]


def payload_bytes(part: Message) -> bytes:
    data = part.get_payload(decode=True)
    assert isinstance(data, bytes)
    return data


# ------------------------------------------------------------------ reporter mail builders


def outer_headers(subject: str, content_type: str) -> str:
    return (
        "From: Rita Reporter <rita@reporter.example>\n"
        "To: security@gemeente.example\n"
        f"Subject: {subject}\n"
        "Date: Mon, 30 Nov 2026 10:00:00 +0100\n"
        "Message-ID: <report-1@reporter.example>\n"
        "User-Agent: Mozilla Thunderbird\n"
        "MIME-Version: 1.0\n"
        f"Content-Type: {content_type}\n"
    )


REPORT_SUBJECT = "SQL injection in /loket/zoeken"
REPORT_BODY = (
    f"Beste beveiligingsteam,\n\nIn het zoekformulier zit een SQL-injectie ({SECRET_WORD}).\n"
    "Stappen: open /loket/zoeken?q=' OR 1=1 -- en zie alle aanvragen.\n\nGroet, Rita ü\n"
)


def thunderbird_inner(subject: str = REPORT_SUBJECT, body: str = REPORT_BODY) -> bytes:
    """The MIME entity Thunderbird signs/encrypts: protected headers on a multipart/mixed."""
    encoded = quopri.encodestring(body.encode("utf-8")).decode("ascii")
    return crlf(
        'Content-Type: multipart/mixed; boundary="------------tbInner0123456789";\n'
        ' protected-headers="v1"\n'
        "From: Rita Reporter <rita@reporter.example>\n"
        "To: security@gemeente.example\n"
        "Message-ID: <report-1@reporter.example>\n"
        f"Subject: {subject}\n"
        "\n"
        "--------------tbInner0123456789\n"
        "Content-Type: text/plain; charset=UTF-8; format=flowed\n"
        "Content-Transfer-Encoding: quoted-printable\n"
        "\n"
        f"{encoded}\n"
        "--------------tbInner0123456789--\n"
    )


def pgp_mime_encrypted(armored: bytes, subject: str = "...") -> bytes:
    ctype = (
        'multipart/encrypted; protocol="application/pgp-encrypted";\n'
        ' boundary="------------tbOuter"'
    )
    return crlf(
        outer_headers(subject, ctype) + "\n"
        "This is an OpenPGP/MIME encrypted message (RFC 4880 and 3156)\n"
        "--------------tbOuter\n"
        "Content-Type: application/pgp-encrypted\n"
        "Content-Description: PGP/MIME version identification\n"
        "\n"
        "Version: 1\n"
        "\n"
        "--------------tbOuter\n"
        'Content-Type: application/octet-stream; name="encrypted.asc"\n'
        "Content-Description: OpenPGP encrypted message\n"
        'Content-Disposition: inline; filename="encrypted.asc"\n'
        "\n" + armored.decode("ascii") + "\n"
        "--------------tbOuter--\n"
    )


def pgp_mime_signed(signed_part: bytes, signature: bytes) -> bytes:
    ctype = (
        'multipart/signed; micalg=pgp-sha256;\n protocol="application/pgp-signature";\n'
        ' boundary="------------tbSig0123"'
    )
    head = crlf(
        outer_headers(REPORT_SUBJECT, ctype) + "\n"
        "This is an OpenPGP/MIME signed message (RFC 4880 and 3156)\n"
        "--------------tbSig0123\n"
    )
    tail = crlf(
        "\n--------------tbSig0123\n"
        'Content-Type: application/pgp-signature; name="OpenPGP_signature.asc"\n'
        "Content-Description: OpenPGP digital signature\n"
        'Content-Disposition: attachment; filename="OpenPGP_signature.asc"\n'
        "\n" + signature.decode("ascii") + "\n"
        "--------------tbSig0123--\n"
    )
    return head + signed_part + tail


def signed_by(home_dir: Path, passphrase: str, data: bytes) -> bytes:
    proc = gpg(home_dir, "--armor", "--detach-sign", data=data, passphrase=passphrase)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def encrypt_as_reporter(home_dir: Path, to: str, data: bytes, *, sign: bool = True) -> bytes:
    args = ["--armor", "--trust-model", "always", "--recipient", to, "--encrypt"]
    if sign:
        args.append("--sign")
    proc = gpg(home_dir, *args, data=data, passphrase=REP_PASS)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def case_mail(body: str = "Beste Rita,\n\nWe hebben uw melding ontvangen.\n") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = f"CVD Gemeente <{BOT_ADDR}>"
    msg["To"] = f"Rita Reporter <{REP_ADDR}>"
    msg["Subject"] = CASE_SUBJECT
    msg["Date"] = "Mon, 30 Nov 2026 11:00:00 +0100"
    msg["Message-ID"] = "<cvd-2026-0007-ack@gemeente.example>"
    msg["In-Reply-To"] = "<report-1@reporter.example>"
    msg["References"] = "<report-1@reporter.example>"
    msg["Auto-Submitted"] = "auto-replied"
    msg["X-CVD-Case"] = "CVD-2026-0007"
    msg.set_content(body)
    return msg


# ------------------------------------------------------------------ keys


def test_generate_key_is_fast_curve25519(home: HomeFactory) -> None:
    pgp = Pgp(home("fresh"), None, None, s2k_count=MIN_S2K_COUNT)
    started = time.perf_counter()
    fpr = pgp.generate_key("Demo Bot", "demo@gemeente.example", "demo-pass")
    elapsed = time.perf_counter() - started
    assert elapsed < 1.0
    assert re.fullmatch(r"[0-9A-F]{40}", fpr)
    summary = pgp.key_summary(fpr)
    assert summary.startswith("Demo Bot <demo@gemeente.example> ed25519 ")
    assert summary.endswith("(no expiry)")
    assert pgp.key_for_address("demo@gemeente.example") == fpr  # the cv25519 subkey encrypts


def test_s2k_count_keeps_other_agent_settings(home: HomeFactory) -> None:
    path = home("fresh")
    (path / "gpg-agent.conf").write_text("default-cache-ttl 60\ns2k-count 99999999\n")
    Pgp(path, None, None, s2k_count=MIN_S2K_COUNT)
    conf = (path / "gpg-agent.conf").read_text().splitlines()
    assert conf == ["default-cache-ttl 60", f"s2k-count {MIN_S2K_COUNT}"]
    with pytest.raises(PgpError):
        Pgp(path, None, None, s2k_count=1000)


def test_generate_key_rejects_parameter_injection(home: HomeFactory) -> None:
    pgp = Pgp(home("fresh"), None, None, s2k_count=MIN_S2K_COUNT)
    with pytest.raises(PgpError):
        pgp.generate_key("Eve\nPassphrase: x", "eve@example.org", "pw")
    with pytest.raises(PgpError):
        pgp.generate_key("Eve", "eve@example.org", "pw", key_type="dsa1024")


def test_key_summary_and_fingerprint_ok(bot: Pgp, keyset: KeySet) -> None:
    rep = keyset.fpr["reporter"]
    assert bot.key_summary(rep) == (
        f"Rita Reporter <{REP_ADDR}> ed25519 {format_fingerprint(rep)} (no expiry)"
    )
    assert bot.fingerprint_ok()
    assert not Pgp(bot.gnupg_home, rep, None).fingerprint_ok()  # public key only
    assert not Pgp(bot.gnupg_home, None, None).fingerprint_ok()
    with pytest.raises(PgpError):
        bot.key_summary(keyset.fpr["stranger"])


def test_import_key_from_pgp_keys_attachment(home: HomeFactory, keyset: KeySet) -> None:
    pgp = Pgp(home("bot"), keyset.fpr["bot"], BOT_PASS)
    assert pgp.key_for_address(REP_ADDR) is None
    attachment_name = f"OpenPGP_0x{keyset.fpr['reporter'][-16:]}.asc"
    raw = crlf(
        outer_headers(REPORT_SUBJECT, 'multipart/mixed; boundary="mix"') + "\n"
        "--mix\n"
        "Content-Type: text/plain; charset=UTF-8\n\n"
        "Mijn sleutel zit in de bijlage.\n"
        "--mix\n"
        f'Content-Type: application/pgp-keys; name="{attachment_name}"\n'
        f'Content-Disposition: attachment; filename="{attachment_name}"\n'
        "Content-Transfer-Encoding: base64\n\n"
    )
    raw += base64.encodebytes(keyset.public["reporter"].encode()).replace(b"\n", b"\r\n")
    raw += b"\r\n--mix--\r\n"
    parsed = email.message_from_bytes(raw, policy=policy.default)
    keys = [p for p in parsed.walk() if p.get_content_type() == "application/pgp-keys"]
    assert len(keys) == 1
    assert pgp.import_keys(keys[0].get_content()) == [keyset.fpr["reporter"]]
    assert pgp.key_for_address(REP_ADDR.upper()) == keyset.fpr["reporter"]
    assert pgp.key_for_address("someone@reporter.example") is None
    # Importing it again reports the same key (already known, maybe refreshed).
    assert pgp.import_keys(keyset.public["reporter"].encode()) == [keyset.fpr["reporter"]]


@pytest.mark.parametrize("armor", [True, False])
def test_importing_secret_key_is_refused(
    home: HomeFactory, reporter_home: Path, keyset: KeySet, armor: bool
) -> None:
    pgp = Pgp(home("bot"), keyset.fpr["bot"], BOT_PASS)
    args = ["--export-secret-keys", keyset.fpr["reporter"]]
    proc = gpg(reporter_home, *(["--armor"] if armor else []), *args, passphrase=REP_PASS)
    assert proc.returncode == 0 and proc.stdout
    with pytest.raises(PgpError, match="secret key"):
        pgp.import_keys(proc.stdout.decode("latin-1") if armor else proc.stdout)
    assert pgp.key_for_address(REP_ADDR) is None  # not even the public part went in
    listing = gpg(pgp.gnupg_home, "--with-colons", "--list-secret-keys").stdout.decode()
    assert keyset.fpr["reporter"] not in listing
    assert keyset.fpr["bot"] in listing


def test_key_for_address_skips_expired_and_revoked_keys(home: HomeFactory, bot: Pgp) -> None:
    other = home("other")
    # A key that expired years ago, made with gpg's clock turned back.
    past = ["--faked-system-time", "20200101T000000!", "--passphrase", ""]
    uid = "Old Key <old@reporter.example>"
    assert (
        gpg(other, *past, "--quick-generate-key", uid, "ed25519", "sign,cert", "1d").returncode == 0
    )
    old = _fingerprint_of(other, "old@reporter.example")
    assert gpg(other, *past, "--quick-add-key", old, "cv25519", "encr", "1d").returncode == 0
    # A current key that its owner has revoked (with the certificate gpg stores for that).
    uid = "Revoked Key <revoked@reporter.example>"
    proc = gpg(other, "--passphrase", "", "--quick-generate-key", uid, "ed25519", "default", "0")
    assert proc.returncode == 0
    revoked = _fingerprint_of(other, "revoked@reporter.example")
    cert = (other / "openpgp-revocs.d" / f"{revoked}.rev").read_text()
    proc = gpg(other, "--import", data=cert.replace(":-----BEGIN", "-----BEGIN").encode())
    assert proc.returncode == 0
    exported = gpg(other, "--armor", "--export", old, revoked).stdout

    imported = bot.import_keys(exported)
    assert set(imported) == {old, revoked}
    assert bot.key_for_address("old@reporter.example") is None
    assert bot.key_for_address("revoked@reporter.example") is None
    assert "(revoked)" in bot.key_summary(revoked)
    assert "(expired 2020-01-02)" in bot.key_summary(old)


def _fingerprint_of(home_dir: Path, address: str) -> str:
    out = gpg(home_dir, "--with-colons", "--list-keys", f"<{address}>").stdout.decode()
    return re.findall(r"^fpr:+([0-9A-F]{40}):", out, re.M)[0]


# ------------------------------------------------------------------ outgoing: sign


def _bodies() -> dict[str, EmailMessage]:
    plain = case_mail()
    dutch = case_mail(
        "Beste Rita,\n\nFrom now on we houden u op de hoogte.   \n"
        "Prijs: € 0,00 — geen kosten; ü, é, ß.\n"
        + "lang " * 60
        + "\n.\nTrailing tab\t\n-- \nCVD-team\n"
    )
    mixed = case_mail("Zie de bijlage.\n")
    mixed.add_attachment(b"%PDF-1.4\n\x00\xff binary", "application", "pdf", filename="rapport.pdf")
    alternative = case_mail("Tekst versie ü\n")
    alternative.add_alternative("<p>HTML versie ü</p>\n", subtype="html")
    long_refs = case_mail()
    del long_refs["References"]
    long_refs["References"] = " ".join(f"<msg-{i}-{'x' * 40}@reporter.example>" for i in range(4))
    return {
        "plain": plain,
        "dutch": dutch,
        "mixed": mixed,
        "alternative": alternative,
        "long-refs": long_refs,
    }


@pytest.mark.parametrize("name", list(_bodies()))
def test_sign_mime_verifies_with_plain_gpg(
    bot: Pgp, reporter_home: Path, keyset: KeySet, tmp_path: Path, name: str
) -> None:
    original = _bodies()[name]
    signed = bot.sign_mime(original)
    wire = signed.as_bytes(policy=policy.SMTP)

    parsed = email.message_from_bytes(wire, policy=policy.default)
    assert parsed.get_content_type() == "multipart/signed"
    assert parsed.get_param("protocol") == "application/pgp-signature"
    assert str(parsed.get_param("micalg")).startswith("pgp-sha")
    assert parsed["Subject"] == CASE_SUBJECT
    assert parsed["X-CVD-Case"] == "CVD-2026-0007"
    assert parsed["Auto-Submitted"] == "auto-replied"
    assert parsed["In-Reply-To"] == "<report-1@reporter.example>"

    part, signature = split_signed(wire)
    (tmp_path / "part").write_bytes(part)
    (tmp_path / "part.asc").write_bytes(signature)
    proc = gpg(reporter_home, "--verify", str(tmp_path / "part.asc"), str(tmp_path / "part"))
    status = proc.stderr.decode()
    assert proc.returncode == 0, status
    assert f"[GNUPG:] VALIDSIG {keyset.fpr['bot']}" in status
    assert "[GNUPG:] GOODSIG" in status

    # What an MTA may do must not matter: the part is 7-bit, short-lined, no trailing
    # whitespace, no "From " lines.
    for line in part.split(b"\r\n"):
        assert len(line) <= 78 and max(line, default=0) < 128
        assert not line.endswith((b" ", b"\t")) and not line.startswith(b"From ")

    inner = email.message_from_bytes(part, policy=policy.default)
    assert inner.get_param("protected-headers") == "v1"
    assert inner["Subject"] == CASE_SUBJECT
    assert inner["From"] == original["From"]
    assert _texts(inner) == _texts(original)


def _reparsed(wire: bytes) -> EmailMessage:
    return email.message_from_bytes(wire, policy=policy.default)


# The ways the signed message may be serialised between sign_mime and the reporter's client.
TRANSMISSIONS: dict[str, Callable[[EmailMessage], bytes]] = {
    "smtp": lambda m: m.as_bytes(policy=policy.SMTP),
    # aiosmtplib uses SMTPUTF8 when the server offers it, and cte_type=7bit without 8BITMIME.
    "smtputf8": lambda m: m.as_bytes(policy=policy.SMTPUTF8),
    "smtp-7bit": lambda m: m.as_bytes(policy=policy.SMTP.clone(cte_type="7bit")),
    # Stored in the outbox with LF line endings, parsed again later and then sent.
    "outbox-roundtrip": lambda m: _reparsed(m.as_bytes()).as_bytes(policy=policy.SMTP),
    # Delivered to the reporter through a pipe transport: CRLF became LF.
    "lf-delivery": lambda m: m.as_bytes(policy=policy.SMTP).replace(b"\r\n", b"\n"),
}


@pytest.mark.parametrize("transmission", list(TRANSMISSIONS))
def test_signed_mail_survives_transmission(
    bot: Pgp, reporter_home: Path, keyset: KeySet, tmp_path: Path, transmission: str
) -> None:
    delivered = TRANSMISSIONS[transmission](bot.sign_mime(_bodies()["dutch"]))
    # A verifier canonicalises the received part to CRLF (RFC 3156 5) before checking.
    part, signature = split_signed(re.sub(rb"\r?\n", b"\r\n", delivered))
    (tmp_path / "part").write_bytes(part)
    (tmp_path / "part.asc").write_bytes(signature)
    proc = gpg(reporter_home, "--verify", str(tmp_path / "part.asc"), str(tmp_path / "part"))
    assert proc.returncode == 0, proc.stderr
    reporter = Pgp(reporter_home, keyset.fpr["reporter"], REP_PASS)
    result = reporter.decrypt_raw(delivered)
    assert result.signature is not None and result.signature.status == "good"
    assert result.signature.fingerprint == keyset.fpr["bot"]
    assert result.protected_subject == CASE_SUBJECT
    assert not result.encrypted and result.error is None


def test_sign_mime_requires_bot_key(home: HomeFactory, keyset: KeySet) -> None:
    pgp = Pgp(home("bot"), None, BOT_PASS)
    with pytest.raises(PgpError):
        pgp.sign_mime(case_mail())
    wrong = Pgp(pgp.gnupg_home, keyset.fpr["bot"], "wrong passphrase")
    with pytest.raises(PgpError, match="signing failed"):
        wrong.sign_mime(case_mail())


# ------------------------------------------------------------------ outgoing: encrypt


def test_encrypt_mime_decrypts_with_plain_gpg(
    bot: Pgp, reporter_home: Path, keyset: KeySet
) -> None:
    original = _bodies()["dutch"]
    wire = bot.encrypt_mime(original, [keyset.fpr["reporter"]]).as_bytes(policy=policy.SMTP)

    parsed = email.message_from_bytes(wire, policy=policy.default)
    assert parsed.get_content_type() == "multipart/encrypted"
    assert parsed.get_param("protocol") == "application/pgp-encrypted"
    assert parsed["Subject"] == CASE_SUBJECT  # the case tag stays visible
    assert "[CVD-2026-0007]" in parsed["Subject"]
    assert parsed["References"] == "<report-1@reporter.example>"
    version, data = children(parsed)
    assert version.get_content_type() == "application/pgp-encrypted"
    assert payload_bytes(version).strip() == b"Version: 1"
    assert data.get_content_type() == "application/octet-stream"
    assert SECRET_WORD.encode() not in wire and b"Prijs" not in wire

    proc = gpg(reporter_home, "--decrypt", data=payload_bytes(data), passphrase=REP_PASS)
    status = proc.stderr.decode()
    assert proc.returncode == 0, status
    assert "[GNUPG:] DECRYPTION_OKAY" in status
    assert f"[GNUPG:] VALIDSIG {keyset.fpr['bot']}" in status  # signed by the bot
    inner = email.message_from_bytes(proc.stdout, policy=policy.default)
    assert inner.get_param("protected-headers") == "v1"
    assert inner["Subject"] == CASE_SUBJECT
    assert _texts(inner) == _texts(original)


def test_encrypt_mime_is_readable_by_the_team(bot: Pgp, keyset: KeySet) -> None:
    wire = bot.encrypt_mime(case_mail(), [keyset.fpr["reporter"]]).as_bytes(policy=policy.SMTP)
    result = bot.decrypt_raw(wire)
    assert result.encrypted and result.decrypted
    assert result.signature is not None and result.signature.status == "good"
    assert result.signature.fingerprint == keyset.fpr["bot"]
    assert result.protected_subject == CASE_SUBJECT
    assert result.message is not None
    assert "We hebben uw melding ontvangen." in _texts(result.message)[0]


def test_encrypt_mime_hide_subject_and_unsigned(
    bot: Pgp, reporter_home: Path, keyset: KeySet
) -> None:
    msg = bot.encrypt_mime(case_mail(), [keyset.fpr["reporter"]], sign=False, hide_subject=True)
    wire = msg.as_bytes(policy=policy.SMTP)
    parsed = email.message_from_bytes(wire, policy=policy.default)
    assert parsed["Subject"] == "..."
    reporter = Pgp(reporter_home, keyset.fpr["reporter"], REP_PASS)
    result = reporter.decrypt_raw(wire)
    assert result.decrypted and result.signature is None
    assert result.protected_subject == CASE_SUBJECT


def test_encrypt_mime_to_unknown_key_fails(bot: Pgp, keyset: KeySet) -> None:
    with pytest.raises(PgpError, match="encryption failed"):
        bot.encrypt_mime(case_mail(), [keyset.fpr["stranger"]])


# ------------------------------------------------------------------ incoming


def test_pgp_mime_encrypted_and_signed_by_reporter(
    bot: Pgp, reporter_home: Path, keyset: KeySet
) -> None:
    armored = encrypt_as_reporter(reporter_home, keyset.fpr["bot"], thunderbird_inner())
    # Thunderbird hides the real subject by default; delivered by an MTA pipe (bare LF).
    raw = pgp_mime_encrypted(armored).replace(b"\r\n", b"\n")
    result = bot.decrypt_raw(raw)
    assert result.encrypted and result.decrypted and result.error is None
    assert result.signature is not None
    assert result.signature.status == "good"
    assert result.signature.fingerprint == keyset.fpr["reporter"]
    assert result.signature.signer == f"Rita Reporter <{REP_ADDR}>"
    assert result.signature.describe().startswith(f"good signature by Rita Reporter <{REP_ADDR}>")
    assert result.protected_subject == REPORT_SUBJECT
    assert result.message is not None
    assert _texts(result.message) == [REPORT_BODY]


def test_pgp_mime_signed_then_encrypted(bot: Pgp, reporter_home: Path, keyset: KeySet) -> None:
    """RFC 3156 6.1 (Mutt style): a multipart/signed inside the encryption."""
    part = thunderbird_inner()
    signed = pgp_mime_signed(part, signed_by(reporter_home, REP_PASS, part))
    entity = signed[signed.index(b"Content-Type: multipart/signed") :]
    armored = encrypt_as_reporter(reporter_home, keyset.fpr["bot"], entity, sign=False)
    result = bot.decrypt_raw(pgp_mime_encrypted(armored))
    assert result.decrypted
    assert result.signature is not None and result.signature.status == "good"
    assert result.signature.fingerprint == keyset.fpr["reporter"]
    assert result.protected_subject == REPORT_SUBJECT
    assert result.message is not None and _texts(result.message) == [REPORT_BODY]


def test_pgp_mime_signed_only(bot: Pgp, reporter_home: Path, keyset: KeySet) -> None:
    part = thunderbird_inner()
    raw = pgp_mime_signed(part, signed_by(reporter_home, REP_PASS, part))
    for delivered in (raw, raw.replace(b"\r\n", b"\n")):
        result = bot.decrypt_raw(delivered)
        assert not result.encrypted and not result.decrypted and result.error is None
        assert result.signature is not None and result.signature.status == "good"
        assert result.signature.fingerprint == keyset.fpr["reporter"]
        assert result.protected_subject == REPORT_SUBJECT
        assert result.message is not None and _texts(result.message) == [REPORT_BODY]
    # Without the raw bytes the parsed message is re-serialised; for this mail that works.
    parsed = email.message_from_bytes(raw, policy=policy.default)
    result = bot.decrypt_mime(parsed)
    assert result.signature is not None and result.signature.status == "good"


def test_pgp_mime_signed_tampered_is_bad(bot: Pgp, reporter_home: Path, keyset: KeySet) -> None:
    part = thunderbird_inner()
    raw = pgp_mime_signed(part, signed_by(reporter_home, REP_PASS, part))
    tampered = raw.replace(b"zoekformulier", b"zoekformuliEr")
    assert tampered != raw
    result = bot.decrypt_raw(tampered)
    assert result.signature is not None and result.signature.status == "bad"
    assert result.signature.describe().startswith("BAD signature")


def test_pgp_mime_signed_by_unknown_key(bot: Pgp, home: HomeFactory, keyset: KeySet) -> None:
    stranger = home("stranger")
    part = thunderbird_inner()
    raw = pgp_mime_signed(part, signed_by(stranger, STRANGER_PASS, part))
    result = bot.decrypt_raw(raw)
    assert result.signature is not None and result.signature.status == "unknown_key"
    assert result.signature.fingerprint == keyset.fpr["stranger"]
    assert "do not have" in result.signature.describe()
    assert result.message is not None  # the content is still readable, just unverified


def test_inline_pgp_encrypted_in_alternative(bot: Pgp, reporter_home: Path, keyset: KeySet) -> None:
    armored = encrypt_as_reporter(reporter_home, keyset.fpr["bot"], REPORT_BODY.encode())
    text = "Zie hieronder.\n\n" + armored.decode("ascii")
    html = "<pre>" + text.replace("\n", "<br>") + "</pre>"
    raw = crlf(
        outer_headers(REPORT_SUBJECT, 'multipart/alternative; boundary="alt"') + "\n"
        "--alt\nContent-Type: text/plain; charset=UTF-8\n\n" + text + "\n"
        "--alt\nContent-Type: text/html; charset=UTF-8\n\n" + html + "\n--alt--\n"
    )
    result = bot.decrypt_raw(raw)
    assert result.encrypted and result.decrypted and result.error is None
    assert result.signature is not None and result.signature.status == "good"
    assert result.signature.fingerprint == keyset.fpr["reporter"]
    assert result.protected_subject is None
    # Issue 10 item 8: the text around the block is kept, the block shown in place.
    assert result.message is not None
    assert result.message.get_content() == "Zie hieronder.\n\n" + REPORT_BODY


def test_every_inline_block_is_shown_in_place_and_attachments_stay_attachments(
    bot: Pgp, reporter_home: Path, keyset: KeySet
) -> None:
    """Issue 10 item 8: two encrypted blocks with text before, between and after them;
    a text/plain attachment with a block of its own does not replace the report text."""
    first = encrypt_as_reporter(reporter_home, keyset.fpr["bot"], b"First secret part.\n")
    second = encrypt_as_reporter(reporter_home, keyset.fpr["bot"], b"Second secret part.\n")
    stray = encrypt_as_reporter(reporter_home, keyset.fpr["bot"], b"Attached log.\n")
    text = (
        "Intro in clear.\n"
        + first.decode("ascii")
        + "Between the blocks.\n"
        + second.decode("ascii")
        + "Signed off in clear.\n"
    )
    raw = crlf(
        outer_headers(REPORT_SUBJECT, 'multipart/mixed; boundary="mx"') + "\n"
        "--mx\nContent-Type: text/plain; charset=UTF-8\n\n" + text + "\n"
        '--mx\nContent-Type: text/plain; name="log.txt"\n'
        'Content-Disposition: attachment; filename="log.txt"\n\n'
        + stray.decode("ascii")
        + "\n--mx--\n"
    )
    result = bot.decrypt_raw(raw)
    assert result.encrypted and result.decrypted and result.error is None
    assert result.message is not None
    assert result.message.get_content() == (
        "Intro in clear.\nFirst secret part.\nBetween the blocks.\nSecond secret part.\n"
        "Signed off in clear.\n"
    )
    assert "Attached log." not in result.message.get_content()


def test_armored_attachment_from_webmail(bot: Pgp, reporter_home: Path, keyset: KeySet) -> None:
    """Some webmail extensions send the armored message as an "encrypted.asc" attachment."""
    armored = encrypt_as_reporter(reporter_home, keyset.fpr["bot"], REPORT_BODY.encode())
    raw = crlf(
        outer_headers(REPORT_SUBJECT, 'multipart/mixed; boundary="wm"') + "\n"
        "--wm\nContent-Type: text/plain; charset=UTF-8\n\nDit bericht is versleuteld.\n"
        '--wm\nContent-Type: application/pgp-encrypted; name="encrypted.asc"\n'
        'Content-Disposition: attachment; filename="encrypted.asc"\n\n'
        + armored.decode("ascii")
        + "\n--wm--\n"
    )
    result = bot.decrypt_raw(raw)
    assert result.decrypted and result.message is not None
    assert result.message.get_content() == REPORT_BODY


def test_inline_clearsigned(bot: Pgp, reporter_home: Path, keyset: KeySet) -> None:
    proc = gpg(reporter_home, "--clearsign", data=REPORT_BODY.encode(), passphrase=REP_PASS)
    assert proc.returncode == 0
    raw = crlf(
        outer_headers(REPORT_SUBJECT, "text/plain; charset=UTF-8")
        + "Content-Transfer-Encoding: 8bit\n\n"
        + proc.stdout.decode("utf-8")
    )
    result = bot.decrypt_raw(raw)
    assert not result.encrypted and not result.decrypted
    assert result.signature is not None and result.signature.status == "good"
    assert result.signature.fingerprint == keyset.fpr["reporter"]
    assert result.message is not None and result.message.get_content() == REPORT_BODY

    tampered = bot.decrypt_raw(raw.replace(b"SQL-injectie", b"XSS-injectie"))
    assert tampered.signature is not None and tampered.signature.status == "bad"


def test_encrypted_to_a_key_we_do_not_hold(bot: Pgp, reporter_home: Path, keyset: KeySet) -> None:
    gpg(reporter_home, "--import", data=keyset.public["stranger"].encode())
    armored = encrypt_as_reporter(reporter_home, keyset.fpr["stranger"], thunderbird_inner())
    result = bot.decrypt_raw(pgp_mime_encrypted(armored, REPORT_SUBJECT))
    assert result.encrypted and not result.decrypted
    assert result.message is None and result.signature is None
    assert result.error is not None and "encrypted to a key we do not hold" in result.error
    stranger_keys = gpg(reporter_home, "--with-colons", "--list-keys", keyset.fpr["stranger"])
    subkey_ids = re.findall(
        r"^sub:[^:]*:[^:]*:[^:]*:([0-9A-F]{16}):", stranger_keys.stdout.decode(), re.M
    )
    assert any(key_id in result.error for key_id in subkey_ids)
    assert SECRET_WORD not in result.error


def test_wrong_passphrase_is_reported_not_raised(
    reporter_home: Path, home: HomeFactory, keyset: KeySet
) -> None:
    armored = encrypt_as_reporter(reporter_home, keyset.fpr["bot"], thunderbird_inner())
    for passphrase in ("not the passphrase", None):
        locked = Pgp(home("bot", f"bot-{passphrase is None}"), keyset.fpr["bot"], passphrase)
        result = locked.decrypt_raw(pgp_mime_encrypted(armored))
        assert result.encrypted and not result.decrypted and result.message is None
        assert result.error is not None and "passphrase" in result.error


def test_plain_mail_is_nothing(bot: Pgp) -> None:
    raw = crlf(outer_headers(REPORT_SUBJECT, "text/plain; charset=UTF-8") + "\n" + REPORT_BODY)
    result = bot.decrypt_raw(raw)
    assert result.message is None and result.signature is None
    assert not result.encrypted and not result.decrypted
    assert result.protected_subject is None and result.error is None


def test_forwarded_signed_mail_is_not_the_reports_signature(bot: Pgp, reporter_home: Path) -> None:
    part = thunderbird_inner()
    forwarded = pgp_mime_signed(part, signed_by(reporter_home, REP_PASS, part))
    raw = (
        crlf(
            outer_headers("Fwd: melding", 'multipart/mixed; boundary="fwd"') + "\n"
            "--fwd\nContent-Type: text/plain\n\nDoorgestuurd.\n"
            "--fwd\nContent-Type: message/rfc822\n\n"
        )
        + forwarded
        + b"\r\n--fwd--\r\n"
    )
    result = bot.decrypt_raw(raw)
    assert result.signature is None and result.message is None


def test_enigmail_legacy_protected_headers(bot: Pgp, reporter_home: Path, keyset: KeySet) -> None:
    inner = crlf(
        'Content-Type: multipart/mixed; boundary="enig"; protected-headers="v1"\n\n'
        "--enig\n"
        'Content-Type: text/rfc822-headers; protected-headers="v1"\n'
        "Content-Disposition: inline\n\n"
        f"Subject: {REPORT_SUBJECT}\n"
        "From: Rita Reporter <rita@reporter.example>\n\n"
        "--enig\nContent-Type: text/plain; charset=UTF-8\n\nZie onderwerp.\n"
        "--enig--\n"
    )
    armored = encrypt_as_reporter(reporter_home, keyset.fpr["bot"], inner)
    result = bot.decrypt_raw(pgp_mime_encrypted(armored))
    assert result.decrypted and result.protected_subject == REPORT_SUBJECT


def test_verify_detached(bot: Pgp, reporter_home: Path, keyset: KeySet) -> None:
    data = b"exact bytes\r\n"
    signature = signed_by(reporter_home, REP_PASS, data)
    good = bot.verify_detached(data, signature)
    assert good.status == "good" and good.fingerprint == keyset.fpr["reporter"]
    assert bot.verify_detached(data + b"x", signature).status == "bad"
    assert bot.verify_detached(data, b"not a signature").status == "error"


# ------------------------------------------------------------------ helpers


def _texts(msg: EmailMessage) -> list[str]:
    """The text of every text/plain and text/html leaf, normalised to LF."""
    out = []
    for part in msg.walk():
        if part.get_content_maintype() == "text" and not part.is_multipart():
            if part.get_content_type() in ("text/plain", "text/html"):
                out.append(part.get_content().replace("\r\n", "\n"))
    return out


def test_a_leaf_with_a_hostile_charset_does_not_stop_decryption(bot: Pgp) -> None:
    # Found by the intake fuzz test: reading a leaf declared charset=idna raised.
    raw = crlf(
        outer_headers(REPORT_SUBJECT, 'multipart/mixed; boundary="b"')
        + "\n--b\nContent-Type: text/plain; charset=idna\n\nxn--\u00e9\n--b--\n"
    )
    result = bot.decrypt_raw(raw)
    assert not result.encrypted and result.error is None


def test_signing_a_reply_to_a_long_message_id_still_verifies(
    bot: Pgp, reporter_home: Path, tmp_path: Path
) -> None:
    # A reporter's long Message-ID made Python fold the threading headers differently on the
    # second serialisation, and the signed bytes no longer matched what went out.
    long_id = "<179603474068.22912.13130710752118482176.163aa3b5@researcher.example>"
    message = case_mail()
    message.replace_header("In-Reply-To", long_id)
    message.replace_header("References", long_id)
    wire = bot.sign_mime(message).as_bytes(policy=policy.SMTP)
    part, signature = split_signed(wire)
    (tmp_path / "part").write_bytes(part)
    (tmp_path / "part.asc").write_bytes(signature)
    proc = gpg(reporter_home, "--verify", str(tmp_path / "part.asc"), str(tmp_path / "part"))
    assert "[GNUPG:] GOODSIG" in proc.stderr.decode() or "[GNUPG:] GOODSIG" in proc.stdout.decode()


def test_a_clearsigned_block_is_shown_in_place_and_a_log_txt_with_a_block_stays_attached(
    bot: Pgp, reporter_home: Path, keyset: KeySet
) -> None:
    """Issue 10 item 8: a clear-signed block with text before and after it is verified in
    place, the text around it kept; the PGP block of a text/plain attachment log.txt is
    neither opened nor put into the body."""
    signed = gpg(reporter_home, "--clearsign", data=b"Signed finding.\n", passphrase=REP_PASS)
    assert signed.returncode == 0
    log_block = encrypt_as_reporter(reporter_home, keyset.fpr["bot"], b"Attached log.\n")
    log_text = "gpg output of the scan:\n" + log_block.decode("ascii")
    text = "Before the signature.\n" + signed.stdout.decode("utf-8") + "After the signature.\n"
    raw = crlf(
        outer_headers(REPORT_SUBJECT, 'multipart/mixed; boundary="cs"') + "\n"
        "--cs\nContent-Type: text/plain; charset=UTF-8\n\n" + text + "\n"
        '--cs\nContent-Type: text/plain; name="log.txt"\n'
        'Content-Disposition: attachment; filename="log.txt"\n\n' + log_text + "\n--cs--\n"
    )
    result = bot.decrypt_raw(raw)
    assert not result.encrypted
    assert result.signature is not None and result.signature.status == "good"
    assert result.signature.fingerprint == keyset.fpr["reporter"]
    assert result.message is not None
    body = result.message.get_body(preferencelist=("plain",))
    assert body is not None
    assert body.get_content() == "Before the signature.\nSigned finding.\nAfter the signature.\n"
    # What replaces the body is the body alone: the attachment stays the mail's own
    # (the intake lists it from the mail as received; tests/unit/test_mail_intake.py).
    assert not result.message.is_multipart()
    assert "Attached log." not in body.get_content() and "BEGIN PGP" not in body.get_content()
