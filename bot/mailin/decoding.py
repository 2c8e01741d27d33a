"""Text from hostile mail made safe: charset decoding with honest fallbacks, undecoded bytes
and control characters removed, format=flowed joined, and a guard for the email package."""

from __future__ import annotations

import codecs
import logging
import re
from collections.abc import Callable
from typing import TypeVar

_log = logging.getLogger(__name__)

_T = TypeVar("_T")

FALLBACK_CHARSET = "windows-1252"
# Python text codecs that are no character set: they would interpret backslash escapes or
# domain-name syntax in a stranger's bytes (charset=unicode_escape turns "\\u202e" into the
# character itself), so a mail that declares one is read as if its charset were unknown.
_NOT_CHARSETS = frozenset({"unicode-escape", "raw-unicode-escape", "punycode", "idna", "undefined"})

# Senders that say iso-8859-1 almost always mean its superset windows-1252 (browsers
# decode it that way for the same reason).
_CHARSET_ALIASES = {
    "iso-8859-1": "windows-1252",
    "iso_8859-1": "windows-1252",
    "iso8859-1": "windows-1252",
    "latin1": "windows-1252",
    "latin-1": "windows-1252",
    "l1": "windows-1252",
}

SURROGATE_RE = re.compile("[\ud800-\udfff]")
# C0/C1 controls except tab and newline, plus the bidirectional overrides and isolates
# that can make a subject or file name display as something it is not.
_BODY_CONTROL_RE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ufeff]")
LINE_CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ufeff]")
WHITESPACE_RE = re.compile(r"\s+")


def fix_surrogates(value: str) -> str:
    """Real text from a str that may carry undecoded bytes as surrogate escapes."""
    return decode_escaped(value)[0]


def decode_escaped(value: str) -> tuple[str, bool]:
    """`fix_surrogates`, and whether the bytes were not UTF-8 and were read as windows-1252."""
    if not SURROGATE_RE.search(value):
        return value, False
    try:
        data = value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        # Lone surrogates that are not escaped bytes (from exotic codecs) cannot be
        # stored or sent as JSON; they carry no meaning either.
        return SURROGATE_RE.sub("\ufffd", value), False
    try:
        return data.decode("utf-8"), False
    except UnicodeDecodeError:
        return data.decode(FALLBACK_CHARSET, "replace"), True


def one_line(value: str) -> str:
    """Header text for display: one line, no control characters, single spaces."""
    value = LINE_CONTROL_RE.sub(" ", fix_surrogates(value))
    return WHITESPACE_RE.sub(" ", value).strip()


def safe(action: Callable[[], _T], fallback: _T) -> _T:
    """Run one access into the email package, which raises assorted exceptions (not only
    HeaderParseError: IndexError, ValueError, AttributeError...) on hostile input."""
    try:
        return action()
    except Exception as exc:
        _log.debug("email package raised %s", type(exc).__name__)
        return fallback


def guess_decode(data: bytes) -> tuple[str, str]:
    """(text, charset used) for bytes of unknown encoding."""
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return data.decode(FALLBACK_CHARSET, "replace"), FALLBACK_CHARSET


def decode_text(data: bytes, declared: str | None, number: int, problems: list[str]) -> str:
    """Part `number`'s bytes as text in its `declared` charset, or the best guess (noted)."""
    if not declared:
        if data.isascii():
            return data.decode("ascii")
        text, used = guess_decode(data)
        problems.append(f"no charset declared for 8-bit text in part {number}; shown as {used}")
        return text
    codec = _CHARSET_ALIASES.get(declared, declared)
    try:
        if codecs.lookup(codec).name in _NOT_CHARSETS:
            raise LookupError(codec)
        return data.decode(codec)
    except LookupError:
        text, used = guess_decode(data)
        problems.append(f"undecodable charset {declared!r} in part {number}; shown as {used}")
        return text
    except (UnicodeError, ValueError, TypeError):
        # UnicodeError rather than UnicodeDecodeError: codecs such as idna raise the base
        # class; and windows-1252 itself leaves five bytes undefined.
        if codec == FALLBACK_CHARSET:
            return data.decode("latin-1")
        text, used = guess_decode(data)
        problems.append(f"text in part {number} is not valid {declared}; shown as {used}")
        return text


def clean_body(text: str) -> str:
    """Body text with newline line ends and no control characters but tab and newline."""
    text = fix_surrogates(text).replace("\r\n", "\n").replace("\r", "\n")
    return _BODY_CONTROL_RE.sub("", text)


def unflow(text: str, delsp: bool) -> str:
    """Join the soft line breaks of format=flowed text (RFC 3676) back into paragraphs."""
    out: list[str] = []
    pending: str | None = None
    pending_depth = 0
    for line in text.split("\n"):
        depth = len(line) - len(line.lstrip(">"))
        content = line[depth:]
        if content.startswith(" "):
            content = content[1:]  # space-stuffing
        is_signature = content == "-- "
        if pending is not None and depth == pending_depth and not is_signature:
            content = pending + content
        elif pending is not None:
            out.append(">" * pending_depth + (" " if pending_depth else "") + pending.rstrip())
        pending = None
        if content.endswith(" ") and not is_signature:
            pending = content[:-1] if delsp else content
            pending_depth = depth
            continue
        out.append(">" * depth + (" " if depth and content else "") + content)
    if pending is not None:
        out.append(">" * pending_depth + (" " if pending_depth else "") + pending.rstrip())
    return "\n".join(out)
