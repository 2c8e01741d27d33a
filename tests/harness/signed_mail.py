"""A reporter's (or the IBD's) client opening a mail of the bot: decrypted with their own
gpg home, the signature checked against the bot's key. Every mail-sending step's test goes
through `assert_signed`, so "signed, and encrypted when a key is known" is proven per mail,
not by the shape of the MIME tree."""

from __future__ import annotations

from email.message import EmailMessage

from bot.pgp.gpg import Pgp
from bot.pgp.verdicts import DecryptResult
from tests.harness.bot import CvdDeployment
from tests.harness.reporter_pgp import PASSPHRASE, ReporterGpg
from tests.harness.smtp import ReceivedMail


def bot_public_key(d: CvdDeployment) -> str:
    """The bot's public key, for a reader's keyring (to check the bot's signatures)."""
    return Pgp(d.workdir / "data" / "gnupg", None, None).export_public_key(d.key_fingerprint)


def opened(reader: ReporterGpg, mail: ReceivedMail) -> DecryptResult:
    """The reader's client opening the mail with their own gpg home."""
    return Pgp(reader.home, reader.fingerprint, PASSPHRASE).decrypt_raw(mail.raw)


def text_of(message: EmailMessage | None) -> str:
    assert message is not None
    body = message.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


def assert_signed(result: DecryptResult, d: CvdDeployment, *, encrypted: bool) -> str:
    """A good signature by the bot's key, encrypted or signed only as expected; the text."""
    assert result.error is None, result.error
    assert result.encrypted is encrypted and result.decrypted is encrypted
    assert result.signature is not None and result.signature.status == "good"
    assert result.signature.fingerprint == d.key_fingerprint
    return text_of(result.message).replace("\r\n", "\n")
