"""Mails built to exhaust a reader: huge header fields, thousands of parts, deep nesting and
a compressed OpenPGP message that expands far beyond its size (issue 10). Used by the tests
and by `bench/input_sizes.py`."""

from __future__ import annotations

import uuid

from tests.harness.reporter_pgp import ReporterGpg

TO = "security@haaksbergen.example"
MIME = "MIME-Version: 1.0\r\n"


def _head(subject: str, extra: str = "", sender: str = "x@hostile.example") -> bytes:
    message_id = f"<{uuid.uuid4().hex}@hostile.example>"
    return (
        f"From: {sender}\r\nTo: {TO}\r\nSubject: {subject}\r\n"
        f"Date: Tue, 03 Feb 2026 09:00:00 +0000\r\nMessage-ID: {message_id}\r\n{extra}"
    ).encode()


def long_subject(chars: int) -> bytes:
    """`From: x@y` / `Subject: AAAA…` as in the issue."""
    return _head("A" * chars) + b"\r\nThe subject says it all.\r\n"


def long_header(size: int, name: str = "X-Long") -> bytes:
    """A single-line header field of `size` bytes besides a short report."""
    return _head("Long header", f"{name}: {'B' * size}\r\n") + b"\r\nSee the header.\r\n"


def many_header_fields(count: int, last: str) -> bytes:
    """A report with `count` filler header fields of 60 bytes each and then `last` (one more
    field), before a short body."""
    filler = "".join(f"X-Filler-{n:05d}: {'C' * 44}\r\n" for n in range(count))
    return _head("Many header fields", filler + last) + b"\r\nSee the header.\r\n"


def body_of(size: int) -> bytes:
    """A report whose plain-text body has `size` bytes, in lines of prose."""
    line = b"The login form at https://portal.haaksbergen.example/login is injectable.\r\n"
    body = (line * (size // len(line) + 1))[:size]
    return _head("Big body", "Content-Type: text/plain; charset=utf-8\r\n") + b"\r\n" + body


def many_parts(count: int) -> bytes:
    """A multipart/mixed of a text body and `count - 1` small attachments."""
    boundary = "part-boundary-" + uuid.uuid4().hex
    pieces = [
        _head("Many parts", f"{MIME}Content-Type: multipart/mixed; boundary={boundary}\r\n"),
        b"\r\n",
        f"--{boundary}\r\nContent-Type: text/plain\r\n\r\nReport with many parts.\r\n".encode(),
    ]
    for number in range(1, count):
        pieces.append(
            f"--{boundary}\r\nContent-Type: application/octet-stream\r\n"
            f'Content-Disposition: attachment; filename="part{number}.bin"\r\n\r\n'
            f"data {number}\r\n".encode()
        )
    pieces.append(f"--{boundary}--\r\n".encode())
    return b"".join(pieces)


def nested_messages(depth: int) -> bytes:
    """A mail with a forwarded mail inside a forwarded mail, `depth` levels deep."""
    inner = b"From: deep@hostile.example\r\nSubject: level 0\r\n\r\nThe innermost text.\r\n"
    for level in range(1, depth + 1):
        boundary = f"nest-{level}"
        inner = (
            (
                f"From: level{level}@hostile.example\r\nSubject: level {level}\r\n"
                f'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n'
                f"--{boundary}\r\nContent-Type: text/plain\r\n\r\nForwarded once more.\r\n"
                f"--{boundary}\r\nContent-Type: message/rfc822\r\n\r\n"
            ).encode()
            + inner
            + f"\r\n--{boundary}--\r\n".encode()
        )
    head = _head("Nested", f"{MIME}Content-Type: message/rfc822\r\n")
    return head + b"\r\n" + inner


def compression_bomb(reporter: ReporterGpg, recipient: str, expanded: int) -> bytes:
    """PGP/MIME encrypted to `recipient`: a few hundred KB that decompress to `expanded`
    bytes (zeros, zlib level 9)."""
    inner = b"Content-Type: text/plain\r\n\r\n" + b"\0" * expanded
    args = ["--armor", "--trust-model", "always", "--recipient", recipient]
    args += ["--compress-algo", "zlib", "-z", "9", "--encrypt"]
    armored = reporter.gpg(*args, data=inner).decode("ascii")
    boundary = "bomb-" + uuid.uuid4().hex
    head = _head(
        "Encrypted report",
        "MIME-Version: 1.0\r\nContent-Type: multipart/encrypted; "
        f'protocol="application/pgp-encrypted"; boundary="{boundary}"\r\n',
        sender=reporter.sender,
    )
    body = (
        f"--{boundary}\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n\r\n"
        f"--{boundary}\r\nContent-Type: application/octet-stream\r\n\r\n"
        f"{armored}\r\n--{boundary}--\r\n"
    )
    return head + b"\r\n" + body.encode("ascii")
