"""Reading incoming PGP: PGP/MIME (RFC 3156) encrypted or signed mail, and inline PGP.

Finds the protected part of a reporter's mail, hands the armored data to gpg (through the
two operations it is given) and turns the result into a DecryptResult.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from email import policy
from email.message import EmailMessage, Message
from email.parser import HeaderParser

from bot.pgp.mime_wire import REGEN, crlf, first_part_bytes, parse, to_bytes
from bot.pgp.verdicts import DecryptResult, Opened, SignatureInfo

_BEGIN = re.compile(rb"^-----BEGIN PGP (MESSAGE|SIGNED MESSAGE)-----[ \t]*\r?$", re.M)
_END_MESSAGE = re.compile(rb"^-----END PGP MESSAGE-----[ \t]*\r?$", re.M)
_END_SIGNED = re.compile(rb"^-----END PGP SIGNATURE-----[ \t]*\r?$", re.M)
# More inline blocks than this in one body are left as they are (each is one gpg run).
_MAX_BLOCKS = 20


class MimeReader:
    """Interprets one incoming message with the given gpg operations.

    ``open_armored`` runs ``gpg --decrypt`` on OpenPGP data (decrypts and/or verifies);
    ``verify`` checks a detached signature over exact bytes.
    """

    def __init__(
        self,
        open_armored: Callable[[bytes], Opened],
        verify: Callable[[bytes, bytes], SignatureInfo],
    ) -> None:
        self._open_armored = open_armored
        self._verify = verify

    def examine(self, msg: EmailMessage, raw: bytes | None) -> DecryptResult:
        """Find the protected content of ``msg`` (``raw``: its bytes as received, if known).

        PGP/MIME encryption wins over a PGP/MIME signature, which wins over inline PGP.
        """
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
        opened = self._open_armored(ciphertext)
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
        signed_bytes = first_part_bytes(raw, boundary) if raw is not None else None
        if signed_bytes is None:
            signed_bytes = first_part_bytes(to_bytes(part, REGEN), boundary)
        if signed_bytes is None or not isinstance(signature, bytes):
            info = SignatureInfo("error", None, None, None, "could not locate the signed part")
            return DecryptResult(None, False, False, info, None, None)
        info = self._verify_mime_part(signed_bytes, signature)
        message = parse(crlf(signed_bytes))
        return DecryptResult(message, False, False, info, _protected_subject(message), None)

    def _verify_mime_part(self, signed_bytes: bytes, signature: bytes) -> SignatureInfo:
        # RFC 3156 5: the signature is over the part in canonical form (CRLF line endings);
        # mail delivered through an MTA pipe arrives with bare LF and must be converted back.
        canonical = crlf(signed_bytes)
        info = self._verify(canonical, signature)
        if info.status == "bad" and canonical != signed_bytes:
            # Some clients sign the bytes as they are on their disk (bare LF); accept their
            # signature over the bytes exactly as received as well.
            exact = self._verify(signed_bytes, signature)
            if exact.status == "good":
                return exact
        return info

    def _inline(self, msg: EmailMessage) -> DecryptResult:
        """Inline PGP: every armored block of the body text in place, the text around it kept.

        Only the body text (inline text/plain) is read this way: a PGP block inside a
        text/plain attachment is the attachment's, not the report's. When the body has no
        block, an armored attachment (the "encrypted.asc" some webmail extensions send)
        stands in for the body, as before.
        """
        texts, armored = _inline_candidates(msg)
        for part in texts:
            body = part.get_payload(decode=True)
            if isinstance(body, bytes):
                blocks = _armored_blocks(body)
                if blocks:
                    return self._blocks_in_place(body, blocks, part.get_content_charset())
        for part in armored:
            body = part.get_payload(decode=True)
            if isinstance(body, bytes):
                blocks = _armored_blocks(body)[:1]
                if blocks:
                    start, end = blocks[0]
                    return self._blocks_in_place(body[start:end], [(0, end - start)], None)
        return DecryptResult(None, False, False, None, None, None)

    def _blocks_in_place(
        self, body: bytes, blocks: list[tuple[int, int]], charset: str | None
    ) -> DecryptResult:
        pieces: list[str] = []
        encrypted = False
        signature: SignatureInfo | None = None
        position = 0
        for start, end in blocks:
            pieces.append(_decode_text(body[position:start], charset))
            opened = self._open_armored(body[start:end])
            if opened.encrypted and opened.plaintext is None:
                # One block that cannot be decrypted: the mail counts as undecryptable, and
                # the intake shows its text with each encrypted block replaced by a note.
                return DecryptResult(None, True, False, None, None, opened.error)
            encrypted = encrypted or opened.encrypted
            block_signature = opened.signature
            if block_signature is None and not opened.encrypted:
                block_signature = SignatureInfo(
                    "error", None, None, None, opened.error or "no signature found"
                )
            # The first verdict, unless a later block's signature is bad: a bad one wins.
            if block_signature is not None and (
                signature is None or (block_signature.status == "bad" != signature.status)
            ):
                signature = block_signature
            shown = _decode_text(opened.plaintext or b"", charset)
            if end < len(body) and not shown.endswith("\n"):
                shown += "\n"
            pieces.append(shown)
            position = end
        pieces.append(_decode_text(body[position:], charset))
        text = "".join(pieces)
        return DecryptResult(_text_message(text), encrypted, encrypted, signature, None, None)


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


def _inline_candidates(msg: Message) -> tuple[list[Message], list[Message]]:
    """(inline text/plain parts, armored attachments such as "encrypted.asc")."""
    parts = list(_walk_no_messages(msg))
    texts = [
        p
        for p in parts
        if p.get_content_type() == "text/plain" and p.get_content_disposition() != "attachment"
    ]
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
    return texts, armored


def _armored_blocks(body: bytes) -> list[tuple[int, int]]:
    """(start, end) of each armored message or clearsigned block, in order, at most
    _MAX_BLOCKS. Linear: a BEGIN line without its END line ends the search, since no later
    block can be complete either."""
    blocks: list[tuple[int, int]] = []
    position = 0
    while len(blocks) < _MAX_BLOCKS:
        begin = _BEGIN.search(body, position)
        if begin is None:
            break
        end_line = _END_MESSAGE if begin.group(1) == b"MESSAGE" else _END_SIGNED
        end = end_line.search(body, begin.end())
        if end is None:
            break
        # The END line's own line break belongs to the block.
        stop = end.end() + (2 if body[end.end() : end.end() + 2] == b"\r\n" else 0)
        if stop == end.end() and body[stop : stop + 1] == b"\n":
            stop += 1
        blocks.append((begin.start(), stop))
        position = stop
    return blocks


def _parse_plaintext(plaintext: bytes) -> EmailMessage:
    # RFC 3156 requires a MIME entity, but some clients encrypt bare text in PGP/MIME.
    if re.match(rb"[A-Za-z0-9-]+:", plaintext):
        return parse(plaintext)
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
