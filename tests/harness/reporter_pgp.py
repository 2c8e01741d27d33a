"""A reporter's own gpg: makes a key and writes PGP mail the way reporters' clients do.

PGP/MIME encrypted (and signed) like Thunderbird, with the real subject protected inside;
PGP/MIME signed only; inline PGP. Built with the plain gpg binary, independent of bot/pgp/gpg.py,
so the bot is tested against what another implementation produces.
"""

from __future__ import annotations

import re
import subprocess
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

from bot.pgp.gpg import MIN_S2K_COUNT, Pgp

PASSPHRASE = "reporter-pass"


def _crlf(data: bytes) -> bytes:
    return re.sub(rb"\r?\n", b"\r\n", data)


class ReporterGpg:
    """One reporter with a key pair in a gpg home of their own."""

    def __init__(self, home: Path, name: str, address: str, passphrase: str = PASSPHRASE) -> None:
        self.home = home
        self.name = name
        self.address = address
        self.passphrase = passphrase
        pgp = Pgp(home, None, None, s2k_count=MIN_S2K_COUNT)
        self.fingerprint = pgp.generate_key(name, address, passphrase)
        self._public = pgp.export_public_key(self.fingerprint)

    @property
    def sender(self) -> str:
        return f"{self.name} <{self.address}>"

    def public_key(self) -> str:
        return self._public

    def gpg(self, *args: str, data: bytes | None = None) -> bytes:
        cmd = ["gpg", "--homedir", str(self.home), "--batch", "--no-tty", "--yes"]
        cmd += ["--pinentry-mode", "loopback", "--passphrase", self.passphrase]
        done = subprocess.run([*cmd, *args], input=data, capture_output=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"gpg {' '.join(args)} failed: {done.stderr.decode()}")
        return done.stdout

    def import_key(self, armored: str) -> None:
        self.gpg("--import", data=armored.encode())

    def decrypt(self, armored: bytes) -> bytes:
        return self.gpg("--decrypt", data=armored)

    def open_mail(self, message: EmailMessage) -> EmailMessage:
        """This reporter's client opening a PGP/MIME mail: the decrypted part, with its
        protected headers. Fails unless the mail is PGP/MIME encrypted."""
        assert message.get_content_type() == "multipart/encrypted", message.get_content_type()
        ciphertext = list(message.iter_parts())[1].get_payload(decode=True)
        assert isinstance(ciphertext, bytes)
        inner = message_from_bytes(self.decrypt(ciphertext), policy=policy.default)
        assert isinstance(inner, EmailMessage)
        return inner

    def close(self) -> None:
        subprocess.run(["gpgconf", "--homedir", str(self.home), "--kill", "gpg-agent"], check=False)

    # -- mails ------------------------------------------------------------------------------

    def _head(
        self, subject: str, to: str, message_id: str | None, content_type: str, cte: str = ""
    ) -> bytes:
        """The outer header section, serialised by hand around a body built by hand."""
        headers = EmailMessage(policy=policy.SMTP)
        headers["From"] = self.sender
        headers["To"] = to
        headers["Subject"] = subject
        headers["Date"] = format_datetime(datetime.now(UTC))
        headers["Message-ID"] = message_id or make_msgid(
            idstring=uuid.uuid4().hex[:8], domain=self.address.split("@")[1]
        )
        headers["MIME-Version"] = "1.0"
        headers["Content-Type"] = content_type
        if cte:
            headers["Content-Transfer-Encoding"] = cte
        text = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        return text.encode("utf-8") + b"\r\n"

    def inner_part(
        self,
        body: str,
        *,
        subject: str,
        attachments: Sequence[tuple[str, str, bytes]] = (),
    ) -> bytes:
        """The MIME entity inside the encryption, with Thunderbird's protected headers."""
        part = EmailMessage(policy=policy.SMTP)
        part.set_content(body)
        for filename, content_type, data in attachments:
            maintype, subtype = content_type.split("/", 1)
            part.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
        part.set_param("protected-headers", "v1")
        part["Subject"] = subject
        del part["MIME-Version"]
        return bytes(part.as_bytes(policy=policy.SMTP))

    def pgp_mime_encrypted(
        self,
        inner: bytes,
        recipients: list[str],
        *,
        to: str = "security@haaksbergen.example",
        sign: bool = True,
        outer_subject: str = "...",
        message_id: str | None = None,
    ) -> bytes:
        args = ["--armor", "--trust-model", "always"]
        for recipient in recipients:
            args += ["--recipient", recipient]
        args += ["--sign", "--local-user", self.fingerprint] if sign else []
        armored = self.gpg(*args, "--encrypt", data=_crlf(inner)).decode("ascii")
        boundary = f"------------{uuid.uuid4().hex}"
        head = self._head(
            outer_subject,
            to,
            message_id,
            f'multipart/encrypted; protocol="application/pgp-encrypted"; boundary="{boundary}"',
        )
        body = (
            "This is an OpenPGP/MIME encrypted message (RFC 4880 and 3156)\r\n"
            f"--{boundary}\r\n"
            "Content-Type: application/pgp-encrypted\r\n"
            "Content-Description: PGP/MIME version identification\r\n\r\n"
            "Version: 1\r\n\r\n"
            f"--{boundary}\r\n"
            'Content-Type: application/octet-stream; name="encrypted.asc"\r\n'
            "Content-Description: OpenPGP encrypted message\r\n"
            'Content-Disposition: inline; filename="encrypted.asc"\r\n\r\n'
            f"{armored.replace(chr(10), chr(13) + chr(10))}\r\n"
            f"--{boundary}--\r\n"
        )
        return head + body.encode("ascii")

    def pgp_mime_signed(
        self,
        inner: bytes,
        *,
        subject: str,
        to: str = "security@haaksbergen.example",
        message_id: str | None = None,
    ) -> bytes:
        signed = _crlf(inner).rstrip(b"\r\n") + b"\r\n"
        signature = self.gpg(
            "--armor", "--detach-sign", "--local-user", self.fingerprint, data=signed
        ).decode("ascii")
        boundary = f"------------{uuid.uuid4().hex}"
        head = self._head(
            subject,
            to,
            message_id,
            'multipart/signed; micalg=pgp-sha256; protocol="application/pgp-signature"; '
            f'boundary="{boundary}"',
        )
        body = (
            b"This is an OpenPGP/MIME signed message (RFC 4880 and 3156)\r\n"
            + f"--{boundary}\r\n".encode()
            + signed
            + f"\r\n--{boundary}\r\n".encode()
            + b'Content-Type: application/pgp-signature; name="OpenPGP_signature.asc"\r\n'
            + b'Content-Disposition: attachment; filename="OpenPGP_signature.asc"\r\n\r\n'
            + signature.replace("\n", "\r\n").encode("ascii")
            + f"\r\n--{boundary}--\r\n".encode()
        )
        return head + body

    def inline(
        self,
        text: str,
        *,
        subject: str,
        recipients: list[str] | None = None,
        sign: bool = True,
        to: str = "security@haaksbergen.example",
        message_id: str | None = None,
    ) -> bytes:
        """Inline PGP: encrypted to `recipients` (and signed), or clearsigned without them."""
        if recipients:
            args = ["--armor", "--trust-model", "always"]
            for recipient in recipients:
                args += ["--recipient", recipient]
            args += ["--sign", "--local-user", self.fingerprint] if sign else []
            body = self.gpg(*args, "--encrypt", data=text.encode()).decode("ascii")
        else:
            body = self.gpg(
                "--clearsign", "--local-user", self.fingerprint, data=text.encode()
            ).decode("utf-8")
        encoded = body.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")
        head = self._head(subject, to, message_id, 'text/plain; charset="utf-8"', "8bit")
        return head + encoded
