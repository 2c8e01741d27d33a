"""Building the bot's outgoing PGP/MIME (RFC 3156): multipart/signed and multipart/encrypted.

The body becomes a 7-bit clean part carrying the protected headers (RFC 9788); gpg signs or
encrypts exactly those bytes (bot/pgp/gpg.py), and the result is wrapped here.
"""

from __future__ import annotations

import base64
import copy
import secrets
from email import policy
from email.message import EmailMessage, Message

from bot.pgp.mime_wire import first_part_bytes, parse, stable_wire, to_wire
from bot.pgp.verdicts import PgpError

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


def signing_input(msg: EmailMessage) -> bytes:
    """The exact bytes gpg signs for ``msg``: its protected body in settled wire form."""
    return stable_wire(protected_body(msg))


def encryption_input(msg: EmailMessage) -> bytes:
    """The plaintext gpg encrypts for ``msg``: its protected body on the wire."""
    return to_wire(protected_body(msg))


def micalg(hash_algo: object) -> str:
    """The RFC 3156 micalg name for gpg's hash algorithm id (sha256 when unknown)."""
    return _MICALG.get(str(hash_algo), "pgp-sha256")


def signed_message(
    msg: EmailMessage, signed_bytes: bytes, signature: str, micalg_name: str
) -> EmailMessage:
    """``msg``'s envelope around the signed part and its detached ``signature`` (armored).

    The signed part is attached in re-parsed form so that any later serialisation
    reproduces exactly the bytes that were signed.
    """
    boundary = _new_boundary(signed_bytes)
    outer = _envelope(msg, hide_subject=False)
    outer["Content-Type"] = (
        f'multipart/signed; micalg="{micalg_name}"; '
        f'protocol="application/pgp-signature"; boundary="{boundary}"'
    )
    outer.preamble = "This is an OpenPGP/MIME signed message (RFC 4880 and 3156)"
    sig_part = EmailMessage(policy=policy.default)
    sig_part["Content-Type"] = 'application/pgp-signature; name="OpenPGP_signature.asc"'
    sig_part["Content-Description"] = "OpenPGP digital signature"
    sig_part["Content-Disposition"] = 'attachment; filename="OpenPGP_signature.asc"'
    sig_part.set_payload(signature)
    outer.attach(parse(signed_bytes))
    outer.attach(sig_part)

    # The one property that matters: the transmitted first part is byte-for-byte what
    # gpg signed. Check it here rather than let a reporter's client say "bad signature".
    transmitted = first_part_bytes(to_wire(outer), boundary)
    if transmitted != signed_bytes:
        raise PgpError("internal error: the signed part does not serialise to the signed bytes")
    return outer


def encrypted_message(msg: EmailMessage, armored: str, *, hide_subject: bool | str) -> EmailMessage:
    """``msg``'s envelope around gpg's ``armored`` ciphertext, as multipart/encrypted."""
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
    data.set_payload(armored)
    outer.attach(version)
    outer.attach(data)
    return outer


def protected_body(msg: EmailMessage) -> EmailMessage:
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


def _envelope(msg: EmailMessage, *, hide_subject: bool | str) -> EmailMessage:
    """A new message with the envelope (non-Content-*) headers of ``msg``, in order; with
    ``hide_subject`` the Subject is "..." or the text given instead of the real one."""
    outer = EmailMessage(policy=policy.default)
    for name, value in msg.items():
        lname = name.lower()
        if lname.startswith("content-") or lname == "mime-version":
            continue
        if lname == "subject" and hide_subject:
            continue
        outer[name] = value
    if hide_subject:
        outer["Subject"] = hide_subject if isinstance(hide_subject, str) else "..."
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
