"""Bytes on the wire for PGP/MIME: serialising, parsing and cutting out a signed part.

RFC 3156 signatures cover exact bytes, so every conversion between a message object and its
bytes goes through these few functions, shared by the builder and the reader.
"""

from __future__ import annotations

import io
import re
from email import policy
from email.generator import BytesGenerator
from email.header import Header
from email.message import EmailMessage, Message
from email.parser import BytesParser

from bot.pgp.verdicts import PgpError


class _WirePolicy(policy.EmailPolicy):
    """policy.SMTP, except that a Subject is folded with its first words on the Subject line.

    The standard folder sometimes breaks a long subject right after "Subject:" (a subject
    with quotes or brackets), and some mail readers then show it with a leading space.
    """

    def fold(self, name: str, value: str) -> str:
        if name.lower() == "subject":
            return _fold_subject(name, str(value), self)
        return super().fold(name, value)

    def fold_binary(self, name: str, value: str) -> bytes:
        if name.lower() == "subject":
            return _fold_subject(name, str(value), self).encode("ascii")
        return super().fold_binary(name, value)


def _fold_subject(name: str, value: str, pol: policy.EmailPolicy) -> str:
    words = value.split()
    # The leading ASCII words (the case tag) stay readable; the rest is encoded if it must be.
    plain = 0
    while plain < len(words) and words[plain].isascii():
        plain += 1
    header = Header(header_name=name, maxlinelen=pol.max_line_length or 78)
    if plain:
        header.append(" ".join(words[:plain]), "us-ascii")
    if plain < len(words):
        header.append(" ".join(words[plain:]), "utf-8")
    folded = header.encode(linesep=pol.linesep)
    return f"{name}: {folded}{pol.linesep}"


# Outgoing messages are serialised exactly like this before signing, so the signed bytes are
# the transmitted bytes: CRLF line endings, RFC 2047 encoded headers, lines of at most 78.
WIRE = _WirePolicy(linesep="\r\n")
# Re-serialising a parsed message to recover signed bytes (when no raw bytes were given):
# never refold a header that came from the source, since refolding changes the bytes.
REGEN = policy.SMTP.clone(refold_source="none")


def to_wire(part: Message) -> bytes:
    return to_bytes(part, WIRE)


def stable_wire(part: Message) -> bytes:
    """The part's wire bytes in the form that survives being parsed and generated again.

    Python's header folding is not always idempotent (a folded header may gain a space after
    the colon on its second generation); signing the settled form keeps the signature valid
    whatever serialises the message later.
    """
    data = to_wire(part)
    for _ in range(3):
        again = to_wire(parse(data))
        if again == data:
            return data
        data = again
    raise PgpError("internal error: the signed part does not settle into one serialisation")


def to_bytes(part: Message, pol: policy.Policy) -> bytes:
    buf = io.BytesIO()
    BytesGenerator(buf, mangle_from_=False, policy=pol).flatten(part, unixfrom=False)
    return buf.getvalue()


def parse(raw: bytes) -> EmailMessage:
    return BytesParser(policy=policy.default).parsebytes(raw)


def crlf(data: bytes) -> bytes:
    return re.sub(rb"\r?\n", b"\r\n", data)


def first_part_bytes(raw: bytes, boundary: str) -> bytes | None:
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
