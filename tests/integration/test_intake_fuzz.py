"""Fuzzing the intake: more than 10,000 different generated and mutated MIME messages fed to
`MailIntake.ingest`, wired as `bot.app.make_intake` wires it (real SQLite, real gpg home with
the bot's key).

Every input must end in one of two ways: stored (a `mails` row, as a new case, follow-up,
automatic or own mail, or recognised as a duplicate of a stored one), or rejected with
`NotAMailError` and a stated reason. Anything else escaping is a failure. Inputs are
mutations of the corpus (tests/corpus, PGP variants included) and generated structures:
random headers, charsets, transfer encodings, nesting, boundaries, truncation, byte flips.

Failures are collected rather than raised, so one run shows all of them; each failing input
is written to the test's tmp directory for replay.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os
import quopri
import re
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from bot.app import make_intake
from bot.config import Config
from bot.failpoints import Failpoints
from bot.mailin.intake import IntakeOutcome, MailIntake
from bot.mailin.parse import NotAMailError
from bot.pgp.gpg import Pgp
from bot.policy.clock import SystemClock
from storage.db import Database
from tests.corpus.build import OutsideWorld, fill_cases, load_manifest, needs_key
from tests.harness.bot import make_bot_key

FUZZ_INPUTS = 10_000
# Each example is a batch of inputs fed one after the other: hypothesis's bookkeeping per
# example then costs a quarter as much per input. The margin covers the inputs that come
# out byte-for-byte equal to earlier ones (about one in thirty): FUZZ_INPUTS must differ.
BATCH = 4
MAX_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "2650"))
SLOW_INPUT_SECONDS = 5.0
INPUT_TIMEOUT_SECONDS = 60.0

Draw = Callable[[st.SearchStrategy[Any]], Any]

# -- building blocks ------------------------------------------------------------------------

HEADER_NAMES = [
    "From",
    "To",
    "Cc",
    "Reply-To",
    "Sender",
    "Subject",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "Content-Disposition",
    "Auto-Submitted",
    "Precedence",
    "X-Autoreply",
    "List-Id",
    "List-Unsubscribe",
    "Return-Path",
    "X-Failed-Recipients",
    "Resent-From",
    "Received",
    "X-Mailer",
]
INTERESTING_VALUES = [
    b"",
    b" ",
    b"<>",
    b"<@>",
    b"undisclosed-recipients:;",
    b"=?utf-8?b?QGF0dGFja2Vy?= <a@b.example>",
    b"=?utf-8?q?=E2=80=AE=E2=80=AD?= <a@b.example>",
    b"=?x-unknown?q?abc?=",
    b"=?utf-8?b?!!!not-base64?=",
    b"=?iso-2022-jp?b?GyRCJEgkcxsoQg==?=",
    b'"@room" <room@matrix.example>',
    b"<a@b.example> <c@d.example> <e@f.example>",
    b"[CVD-2026-0001] Re: your report",
    b"Re: [cvd-2026-0001] [CVD-9999-99999]",
    b'multipart/mixed; boundary=""',
    b"multipart/mixed",
    b'multipart/signed; protocol="application/pgp-signature"; boundary=x',
    b'multipart/encrypted; protocol="application/pgp-encrypted"; boundary=y',
    b'text/plain; charset="utf-8"; format=flowed; delsp=yes',
    b"text/html; charset=utf-7",
    b"message/rfc822",
    b"auto-replied",
    b"no",
    b"bulk",
    b"Thu, 31 Feb 2026 25:61:61 +9999",
    b"Mon, 1 Jan 0001 00:00:00 +0000",
    b"yesterday",
    b"\xff\xfe\x00H\x00i",
    b"caf\xe9 \x80 \xe2\x82",
    b"x" * 2000,
    b" ".join(b"<id%d@x.example>" % i for i in range(300)),
]
CHARSETS = [
    "utf-8",
    "us-ascii",
    "iso-8859-1",
    "windows-1252",
    "iso-8859-15",
    "utf-16",
    "utf-7",
    "koi8-r",
    "gb2312",
    "iso-2022-jp",
    "shift_jis",
    "x-unknown",
    "",
    '"',
    "utf-8'en'",
    "idna",
    "rot13",
    "unicode-escape",
]
ENCODINGS = ["7bit", "8bit", "binary", "base64", "quoted-printable", "x-uuencode", "bogus", ""]
LEAF_TYPES = [
    "text/plain",
    "text/plain",
    "text/html",
    "text/enriched",
    "application/octet-stream",
    "image/png",
    "application/pdf",
    "application/pgp-keys",
    "application/pgp-encrypted",
    "application/pgp-signature",
    "message/delivery-status",
    "text/rfc822-headers",
    "application/ms-tnef",
    "x-weird/thing",
    "text",
    "",
]
MULTIPART_SUBTYPES = ["mixed", "alternative", "related", "signed", "encrypted", "report", "digest"]
BODY_SNIPPETS = [
    b"Hello,\n\nXSS on https://www.haaksbergen.example/zoeken?q=<script>alert(1)</script>\n",
    b"<html><body><p class=MsoNormal>Lek<o:p></o:p></p><script>alert(1)</script></body>",
    b'<a href="javascript:alert(1)">click</a><img src=x onerror=alert(1)>',
    b"@room please look, @alice:localhost\n!fixed\n",
    b"-----BEGIN PGP MESSAGE-----\n\nhQEMA0xxxxxxxxxxAQf/garbage\n-----END PGP MESSAGE-----\n",
    b"-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\ntext\n-----BEGIN PGP SIGNATURE-----\n"
    b"\niQEzBAEBCAAdFiEE\n-----END PGP SIGNATURE-----\n",
    b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmDMEZxxxx\n-----END PGP PUBLIC KEY BLOCK-----\n",
    b"-------- Forwarded Message --------\nSubject: x\nFrom: A <a@b.example>\n\nreport",
    b"---------- Forwarded message ---------\nFrom: B <b@c.example>\nDate: now\n\nbody",
    b"Van: C <c@d.example>\nVerzonden: maandag\nAan: x\nOnderwerp: y\n\nmelding",
    b"________________________________\nFrom: D <d@e.example>\nSent: Monday\nTo: x\n",
    b"On Mon, 1 Jan 2026, X <x@y.example> wrote:\n> quoted\n> more\n",
    b"Op 1 jan. 2026 schreef X:\n> geciteerd\n",
    b"=?utf-8?q?encoded?= in a body\n",
    "\x00\x01\x02\x1b[31mred\x1b[0m\u202e".encode(),
    b"a" * 5000,
    b"line\r\n.\r\nFrom the start\r\n",
    b"\xef\xbb\xbfBOM text",
]


def encode_body(data: bytes, cte: str, broken: bool) -> bytes:
    """The body in its transfer encoding; `broken` makes the encoding invalid."""
    if cte == "base64":
        encoded = base64.encodebytes(data)
        return encoded[: len(encoded) // 2] + b"!!*" if broken else encoded
    if cte == "quoted-printable":
        encoded = quopri.encodestring(data)
        return encoded + b"=Z=\n=" if broken else encoded
    return data


# Strategies are built once, here, and text is drawn as bytes and decoded: hypothesis pays
# per choice, and st.text makes one per character, which cost more than the intake itself.


def _wide_text(data: bytes) -> str:
    """Any code points (the BMP, lone surrogates replaced) from raw bytes."""
    return data.decode("utf-16-le", "replace")


def _alphabet(letters: str) -> Callable[[bytes], str]:
    def spell(data: bytes) -> str:
        return "".join(letters[byte % len(letters)] for byte in data)

    spell.__name__ = f"spell_{len(letters)}"
    return spell


TEXT = st.binary(max_size=400).map(_wide_text)
TEXT_WORD = st.binary(max_size=30).map(_alphabet("ABCDEFabcdef0123456789=_+/?!"))
FOLD_PIECE = st.binary(max_size=20).map(_alphabet('abcxyz <>@.;:"'))


def _encoded_word(charset: str, kind: str, payload: str) -> bytes:
    return f"=?{charset or 'utf-8'}?{kind}?{payload}?=".encode("utf-8", "replace")


def _folded(pieces: list[str], joiner: str) -> bytes:
    # Folded over several lines, sometimes with a bad continuation.
    return joiner.join(pieces).encode()


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _header(name: str, value: bytes) -> bytes:
    return name.encode("utf-8", "surrogatepass") + b": " + value + b"\r\n"


KNOWN_NAME = st.sampled_from(HEADER_NAMES)
HEADER_NAME = st.one_of(
    KNOWN_NAME, KNOWN_NAME, KNOWN_NAME, st.binary(max_size=12).map(_alphabet("abcXYZ-: "))
)
HEADER_VALUE = st.one_of(
    st.binary(max_size=120).map(_wide_text).map(_utf8),
    st.binary(max_size=60),
    st.builds(_encoded_word, st.sampled_from(CHARSETS), st.sampled_from("BQbX"), TEXT_WORD),
    st.builds(_folded, st.lists(FOLD_PIECE, max_size=4), st.sampled_from(["\r\n ", "\n\t", "\n"])),
    st.sampled_from(INTERESTING_VALUES),
    st.sampled_from(INTERESTING_VALUES),
)
HEADER_LINE = st.builds(_header, HEADER_NAME, HEADER_VALUE)


def _encode_text(text: str, codec: str) -> bytes:
    return text.encode(codec, "replace")


BODY = st.one_of(
    st.sampled_from(BODY_SNIPPETS),
    st.binary(max_size=300),
    st.builds(_encode_text, TEXT, st.sampled_from(["utf-8", "cp1252", "utf-16"])),
)
DISPOSITION = st.none() | st.tuples(
    st.sampled_from(["../../etc/passwd", "report.pdf", "a" * 300, "", "x.png"]),
    st.sampled_from(["attachment", "inline", "bogus"]),
    st.booleans(),
)


def _leaf(
    ctype: str,
    charset: str,
    cte: str,
    disposition: tuple[str, str, bool] | None,
    body: bytes,
    broken: bool,
) -> bytes:
    lines = [f"Content-Type: {ctype}" + (f'; charset="{charset}"' if charset else "")]
    if cte:
        lines.append(f"Content-Transfer-Encoding: {cte}")
    if disposition is not None:
        name, kind, rfc2231 = disposition
        if rfc2231:
            lines.append(f"Content-Disposition: {kind}; filename*=utf-8''{name}%E2%80%AE")
        else:
            lines.append(f'Content-Disposition: {kind}; filename="{name}"')
    return "\r\n".join(lines).encode() + b"\r\n\r\n" + encode_body(body, cte, broken)


LEAF = st.builds(
    _leaf,
    st.sampled_from(LEAF_TYPES),
    st.sampled_from(CHARSETS),
    st.sampled_from(ENCODINGS),
    DISPOSITION,
    BODY,
    st.booleans(),
)
BOUNDARIES = ["b1", "", "=_x", "-", "a" * 200, "Apple-Mail=_5E3C", "b1 b2"]


def _multipart(
    subtype: str, boundary: str, parts: list[bytes], preamble: int, closed: bool, epilogue: bool
) -> bytes:
    params = f'; boundary="{boundary}"'
    if subtype == "signed":
        params += '; protocol="application/pgp-signature"; micalg=pgp-sha256'
    if subtype == "encrypted":
        params += '; protocol="application/pgp-encrypted"'
    delimiter = b"\r\n--" + boundary.encode()
    body = [b"", b"preamble text", b"--" + boundary.encode()][preamble]
    for part in parts:
        body += delimiter + b"\r\n" + part
    if closed:
        body += delimiter + b"--\r\n" + (b"epilogue" if epilogue else b"")
    return f"Content-Type: multipart/{subtype}{params}\r\n\r\n".encode() + body


def _nested(headers: list[bytes], inner: bytes) -> bytes:
    return b"Content-Type: message/rfc822\r\n\r\n" + b"".join(headers) + inner


def _extend(children: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.builds(
            _multipart,
            st.sampled_from(MULTIPART_SUBTYPES),
            st.sampled_from(BOUNDARIES),
            st.lists(children, max_size=4),
            st.integers(0, 2),
            st.booleans(),
            st.booleans(),
        ),
        st.builds(_nested, st.lists(HEADER_LINE, max_size=5), children),
    )


def _message(headers: list[bytes], entity: bytes) -> bytes:
    return b"".join(headers) + entity


MIME_ENTITY = st.recursive(LEAF, _extend, max_leaves=6)
# A message built from random header lines around a random MIME tree.
GENERATED = st.builds(_message, st.lists(HEADER_LINE, max_size=10), MIME_ENTITY)

# -- mutations of real-shaped mail ------------------------------------------------------

POSITION = st.integers(0, 1 << 20)
XOR = st.integers(1, 255)
SMALL = st.integers(1, 8)
SPAN = st.integers(1, 400)
REPEAT = st.integers(2, 5)
INSERTED = st.one_of(st.binary(max_size=40), st.sampled_from(BODY_SNIPPETS))
BOOL = st.booleans()
CHOICE = st.integers(0, 2)
CHARSET = st.sampled_from(CHARSETS)
ENCODING = st.sampled_from(ENCODINGS)


def _position(draw: Draw, data: bytes) -> int:
    return int(draw(POSITION)) % (len(data) + 1)


def flip_bytes(draw: Draw, data: bytes) -> bytes:
    if not data:
        return data
    out = bytearray(data)
    for _ in range(draw(SMALL)):
        out[_position(draw, data) % len(out)] ^= draw(XOR)
    return bytes(out)


def truncate(draw: Draw, data: bytes) -> bytes:
    return data[: _position(draw, data)]


def delete_range(draw: Draw, data: bytes) -> bytes:
    start = _position(draw, data)
    return data[:start] + data[start + draw(SPAN) :]


def insert_bytes(draw: Draw, data: bytes) -> bytes:
    at = _position(draw, data)
    return data[:at] + bytes(draw(INSERTED)) + data[at:]


def duplicate_range(draw: Draw, data: bytes) -> bytes:
    start = _position(draw, data)
    piece = data[start : start + draw(SPAN)]
    return data[:start] + piece * draw(REPEAT) + data[start:]


def add_header(draw: Draw, data: bytes) -> bytes:
    line = draw(HEADER_LINE)
    return line + data if draw(BOOL) else data.replace(b"\n\n", b"\n" + line + b"\n", 1)


_HEADER_RE = re.compile(rb"(?im)^([A-Za-z-]+):")


def drop_header(draw: Draw, data: bytes) -> bytes:
    names = sorted({m.group(1).lower() for m in _HEADER_RE.finditer(data[:4000])})
    if not names:
        return data
    name = re.escape(names[_position(draw, data) % len(names)])
    return re.sub(rb"(?im)^" + name + rb":[^\n]*\n(?:[ \t][^\n]*\n)*", b"", data, count=1)


def change_charset(draw: Draw, data: bytes) -> bytes:
    new = draw(CHARSET).encode()
    return re.sub(rb"(?i)charset=\"?[A-Za-z0-9_.:-]*\"?", b"charset=" + new, data, count=1)


def change_encoding(draw: Draw, data: bytes) -> bytes:
    new = draw(ENCODING).encode()
    return re.sub(
        rb"(?i)content-transfer-encoding:[ \t]*[A-Za-z0-9-]*",
        b"Content-Transfer-Encoding: " + new,
        data,
        count=1,
    )


_BOUNDARY_RE = re.compile(rb"(?i)boundary=\"?([^\";\r\n]+)\"?")


def change_boundary(draw: Draw, data: bytes) -> bytes:
    match = _BOUNDARY_RE.search(data)
    if match is None:
        return data
    old = match.group(1)
    new = [b"", b"x", old[:-1], old + b"-", b"-" * 70, b'"'][_position(draw, data) % 6]
    if draw(BOOL):
        return data.replace(old, new)  # consistently: a different but valid structure
    return data[: match.start(1)] + new + data[match.end(1) :]  # declared only: parts lost


def nest_in_forward(draw: Draw, data: bytes) -> bytes:
    for _ in range(draw(CHOICE) + 1):
        data = (
            b"From: Kees Brouwer <k.brouwer@haaksbergen.example>\r\n"
            b"To: security@haaksbergen.example\r\nSubject: Fwd: report\r\n"
            b'Content-Type: multipart/mixed; boundary="fw"\r\n\r\n'
            b"--fw\r\nContent-Type: text/plain\r\n\r\nZie bijlage.\r\n"
            b"--fw\r\nContent-Type: message/rfc822\r\n\r\n" + data + b"\r\n--fw--\r\n"
        )
    return data


def change_line_endings(draw: Draw, data: bytes) -> bytes:
    choice = draw(CHOICE)
    if choice == 0:
        return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if choice == 1:
        return data.replace(b"\r\n", b"\n")
    return data.replace(b"\n", b"\r")


MUTATIONS: list[Callable[[Draw, bytes], bytes]] = [
    flip_bytes,
    truncate,
    delete_range,
    insert_bytes,
    duplicate_range,
    add_header,
    drop_header,
    change_charset,
    change_encoding,
    change_boundary,
    nest_in_forward,
    change_line_endings,
]
MUTATION_LIST = st.lists(st.sampled_from(MUTATIONS), max_size=4)


def mutated(seeds: list[bytes]) -> st.SearchStrategy[bytes]:
    seed = st.sampled_from(seeds)

    @st.composite
    def build(draw: Draw) -> bytes:
        data = bytes(draw(seed))
        for mutation in draw(MUTATION_LIST):
            data = mutation(draw, data)
        return data

    return build()


NOISE = st.one_of(st.binary(min_size=1, max_size=200), TEXT.map(_utf8))
# Inputs that are not mail at all, fed once each (as hypothesis's explicit example).
NOT_MAIL = [b"", b"\r\n\r\n", b"Subject only\n", b"Note: not a mail\n\nbody", b":\n"]
KIND = st.integers(0, 9)
# One input in twenty keeps its Message-ID, so the duplicate path is fuzzed too.
FRESH_ID = st.integers(0, 19)


def fuzz_inputs(seeds: list[bytes]) -> st.SearchStrategy[tuple[bytes, bool]]:
    """(raw input, whether to give it a fresh Message-ID): half mutated corpus messages,
    two in five generated structures, one in ten noise that is not mail at all."""
    mutated_seed = mutated(seeds)

    @st.composite
    def build(draw: Draw) -> tuple[bytes, bool]:
        kind = draw(KIND)
        if kind < 5:
            raw = draw(mutated_seed)
        elif kind < 9:
            raw = draw(GENERATED)
        else:
            raw = draw(NOISE)
        # Mostly unique: a repeated Message-ID makes the intake stop at the duplicate check.
        return bytes(raw), draw(FRESH_ID) > 0

    return build()


# -- the harness ----------------------------------------------------------------------------

_MESSAGE_ID_RE = re.compile(rb"(?im)^message-id:[^\r\n]*")
_PGP_MARKER = re.compile(rb"(?i)-----BEGIN PGP|application/pgp-")


@dataclass
class FuzzHarness:
    """A MailIntake as `cvdbot run` builds it, on a private database and gpg home."""

    intake: MailIntake
    db: Database
    failure_dir: Path
    fed: int = 0
    distinct: set[bytes] = field(default_factory=set)  # SHA-256 of every input fed
    rejected: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    slow: list[tuple[float, str]] = field(default_factory=list)
    # Time in ingest and count, for inputs with and without PGP markers (where gpg runs).
    seconds: dict[str, float] = field(default_factory=lambda: {"pgp": 0.0, "plain": 0.0})
    counts: dict[str, int] = field(default_factory=lambda: {"pgp": 0, "plain": 0})
    # Seconds in ingest per block of 2,000 inputs: shows whether it slows as the store grows.
    blocks: list[float] = field(default_factory=list)

    async def feed_all(self, batch: list[tuple[bytes, bool]]) -> None:
        for raw, fresh_id in batch:
            await self.feed(raw, fresh_id)

    async def feed(self, raw: bytes, fresh_id: bool) -> None:
        self.fed += 1
        if fresh_id:
            raw = _MESSAGE_ID_RE.sub(b"Message-ID: <fuzz-%d@fuzz.example>" % self.fed, raw, 1)
        self.distinct.add(hashlib.sha256(raw).digest())
        started = time.perf_counter()
        try:
            result = await asyncio.wait_for(
                self.intake.ingest(raw, source="pipe"), INPUT_TIMEOUT_SECONDS
            )
        except NotAMailError as exc:
            self.rejected += 1
            if not str(exc).strip():
                self.fail(raw, "NotAMailError without a reason")
            return
        except Exception:
            self.fail(raw, traceback.format_exc(limit=6))
            return
        finally:
            took = time.perf_counter() - started
            kind = "pgp" if _PGP_MARKER.search(raw) else "plain"
            self.seconds[kind] += took
            if (self.fed - 1) % 2000 == 0:
                self.blocks.append(0.0)
            self.blocks[-1] += took
            self.counts[kind] += 1
            if took > SLOW_INPUT_SECONDS:
                self.slow.append((took, self.save(raw)))
        self.outcomes[result.outcome.value] = self.outcomes.get(result.outcome.value, 0) + 1
        problem = await self.stored_problem(result.outcome, result.case_id, result.mail_id)
        if problem:
            self.fail(raw, problem)

    async def stored_problem(
        self, outcome: IntakeOutcome, case_id: str | None, mail_id: int | None
    ) -> str | None:
        """Why the outcome is not backed by what is in the database, or None."""
        if mail_id is None:
            return f"{outcome.value} without a mail row id"
        async with self.db.transaction() as conn:
            async with conn.execute(
                "SELECT case_id FROM mails WHERE id = ? AND direction = 'in'", (mail_id,)
            ) as cursor:
                row = await cursor.fetchone()
            async with conn.execute("SELECT 1 FROM cases WHERE id = ?", (case_id,)) as cursor:
                case_exists = await cursor.fetchone() is not None
        if row is None:
            return f"{outcome.value}: no stored mail row {mail_id}"
        stored_case = row[0]
        if outcome in (IntakeOutcome.NEW_CASE, IntakeOutcome.FOLLOW_UP, IntakeOutcome.AUTOMATIC):
            if case_id is None or not case_exists or stored_case != case_id:
                return f"{outcome.value}: case {case_id!r}, mail row filed under {stored_case!r}"
        if outcome is IntakeOutcome.UNMATCHED_AUTOMATIC and stored_case is not None:
            return f"unmatched automatic mail filed under {stored_case}"
        return None

    def save(self, raw: bytes) -> str:
        path = self.failure_dir / f"input-{self.fed:05d}.eml"
        path.write_bytes(raw)
        return str(path)

    def fail(self, raw: bytes, why: str) -> None:
        self.failures.append(f"input {self.fed} ({self.save(raw)}): {why.strip()}")


class WarningCounter(logging.Handler):
    """Counts the bot's warnings by message template: the fallbacks hostile input reached."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: dict[str, int] = {}

    def emit(self, record: logging.LogRecord) -> None:
        key = f"{record.name}: {record.msg}"
        self.counts[key] = self.counts.get(key, 0) + 1


def _raw(example: tuple[bytes, bool]) -> bytes:
    return example[0]


def fuzz_config(workdir: Path, fingerprint: str) -> Config:
    return Config.model_validate(
        {
            "matrix": {
                "homeserver": "http://127.0.0.1:9",
                "user_id": "@cvdbot:localhost",
                "password": "unused",
                "store_path": str(workdir / "matrix-store"),
                "case_room": "!cases:localhost",
                "team": ["@alice:localhost"],
            },
            "imap": {
                "host": "127.0.0.1",
                "port": 9,
                "security": "none",
                "username": "security@haaksbergen.example",
                "password": "unused",
            },
            "smtp": {
                "host": "127.0.0.1",
                "port": 9,
                "security": "none",
                "from_address": "security@haaksbergen.example",
            },
            "pgp": {
                "gnupg_home": str(workdir / "gnupg"),
                "key_fingerprint": fingerprint,
                "passphrase": "bot-passphrase",
            },
            "storage": {"path": str(workdir / "cvdbot.sqlite3")},
        }
    )


def corpus_seeds(world: OutsideWorld) -> list[bytes]:
    """Every corpus message as sent (PGP variants built for this bot key), placeholders
    filled with a case ID that the fuzzed database may or may not have."""
    entries = load_manifest()
    world.make_keys(entry.cleartext() for entry in entries if needs_key(entry))
    cases = {entry.file: "CVD-2026-0001" for entry in entries}
    seeds = []
    for entry in entries:
        raw = fill_cases(entry.cleartext(), cases)
        seeds.append(raw)
        if needs_key(entry):
            seeds.append(world.build(raw, entry.pgp))
    return seeds


@pytest.fixture
def fast_dir(tmp_path: Path) -> Iterator[Path]:
    """A private directory in memory (/dev/shm) when there is one, else tmp_path.

    Still a real SQLite database and gpg home: only the disk's fsync per commit is gone,
    which would otherwise be a third of the run and says nothing about the intake.
    """
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path
        return
    path = Path(tempfile.mkdtemp(prefix="cvdbot-fuzz-", dir=shm))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_intake_survives_ten_thousand_hostile_messages(tmp_path: Path, fast_dir: Path) -> None:
    workdir = fast_dir / "bot"
    workdir.mkdir()
    fingerprint = make_bot_key(workdir / "gnupg")
    bot_pgp = Pgp(workdir / "gnupg", fingerprint, "bot-passphrase")
    bot_key = bot_pgp.export_public_key(fingerprint)
    world = OutsideWorld(fast_dir / "reporters", bot_key)
    failure_dir = tmp_path / "failures"
    failure_dir.mkdir()
    # Its own loop, not pytest-asyncio's: hypothesis drives a synchronous test function.
    with asyncio.Runner(loop_factory=asyncio.new_event_loop) as runner:
        try:
            seeds = corpus_seeds(world)
            config = fuzz_config(workdir, fingerprint)
            db = runner.run(Database.open(config.storage.path))
            harness = FuzzHarness(
                make_intake(db, config, SystemClock(), Failpoints({})), db, failure_dir
            )

            @settings(
                max_examples=MAX_EXAMPLES,
                deadline=None,
                derandomize=True,
                database=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @example([(raw, False) for raw in NOT_MAIL])
            @given(st.lists(fuzz_inputs(seeds), min_size=BATCH, max_size=BATCH, unique_by=_raw))
            def feed(batch: list[tuple[bytes, bool]]) -> None:
                runner.run(harness.feed_all(batch))

            warnings = WarningCounter()
            logging.getLogger("bot").addHandler(warnings)
            started = time.perf_counter()
            try:
                feed()
            finally:
                logging.getLogger("bot").removeHandler(warnings)
            elapsed = time.perf_counter() - started
            runner.run(db.close())
        finally:
            world.close()
            bot_pgp.close()  # the agent the intake's decryptions started
    slowest = sorted(harness.slow, reverse=True)[:5]
    per_kind = ", ".join(
        f"{kind} {harness.counts[kind]} x {seconds / max(harness.counts[kind], 1) * 1000:.1f} ms"
        for kind, seconds in harness.seconds.items()
    )
    print(
        f"fuzz: {harness.fed} inputs ({len(harness.distinct)} different) in {elapsed:.1f} s "
        f"(ingest: {per_kind}); "
        f"{harness.rejected} rejected as not mail; outcomes {harness.outcomes}; "
        f"{len(harness.slow)} slower than {SLOW_INPUT_SECONDS:.0f} s: {slowest}; "
        f"bot warnings: {warnings.counts}; "
        f"ingest seconds per 2,000 inputs: {[round(block, 1) for block in harness.blocks]}"
    )
    assert not harness.failures, f"{len(harness.failures)} inputs failed:\n" + "\n\n".join(
        harness.failures[:20]
    )
    assert len(harness.distinct) >= FUZZ_INPUTS, (
        f"only {len(harness.distinct)} different inputs were fed ({harness.fed} in all)"
    )
