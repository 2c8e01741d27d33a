"""Turn raw RFC 5322 bytes from strangers into a `ParsedMail` the rest of the bot can trust.

Reports arrive from every mail client, sometimes malformed or hostile. Parsing never fails
on anything that looks like mail: what could not be read is described in `problems`. Only
input that is not a mail message at all raises `NotAMailError`.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.errors import MessageDefect
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime
from typing import Any, TypeVar

from pydantic import BaseModel, Field

from bot.mailin.html_text import html_to_text

__all__ = [
    "CASE_ID_RE",
    "AttachmentInfo",
    "NotAMailError",
    "ParsedMail",
    "attachment_payloads",
    "extract_message_ids",
    "find_case_ids",
    "normalise_message_id",
    "parse_mail",
    "parse_message",
]

_log = logging.getLogger(__name__)

_T = TypeVar("_T")

CASE_ID_RE: re.Pattern[str] = re.compile(r"\bCVD-[0-9]{4}-[0-9]{4,}\b", re.IGNORECASE)

# Header fields that make a header section recognisably a mail's; a text file whose first
# line happens to look like "Note: ..." is not a mail.
_KNOWN_FIELDS = frozenset(
    {
        "from",
        "sender",
        "reply-to",
        "to",
        "cc",
        "bcc",
        "subject",
        "date",
        "message-id",
        "in-reply-to",
        "references",
        "received",
        "return-path",
        "delivered-to",
        "x-original-to",
        "envelope-to",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
        "dkim-signature",
        "arc-seal",
        "authentication-results",
        "x-mailer",
        "user-agent",
        "auto-submitted",
        "list-id",
        "resent-from",
        "resent-date",
        "thread-topic",
        "thread-index",
    }
)

# Beyond these lengths an identifier is not a real one but an attack on whatever later
# stores it or copies it into the References of an outgoing mail.
_MAX_MESSAGE_ID = 250
_MAX_REFERENCES = 100
_MAX_FILENAME = 200
_MAX_ADDRESS = 254

_SYNTHETIC_DOMAIN = "cvdbot.invalid"
_FALLBACK_CHARSET = "windows-1252"
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

_SURROGATE_RE = re.compile("[\ud800-\udfff]")
# C0/C1 controls except tab and newline, plus the bidirectional overrides and isolates
# that can make a subject or file name display as something it is not.
_BODY_CONTROL_RE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ufeff]")
_LINE_CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ufeff]")
_WHITESPACE_RE = re.compile(r"\s+")
_ANGLE_ID_RE = re.compile(r"<([^<>]*)>")
_FOLD_RE = re.compile(r"\r?\n")

_AUTO_SUBJECT_RE = re.compile(
    r"^\s*(?:out of (?:the )?office|automatic reply|auto[- ]?reply|autoreply"
    r"|automatisch antwoord|automatische reactie|afwezigheidsbericht|afwezig"
    r"|undeliverable|undelivered mail returned to sender|onbestelbaar|niet bezorgd"
    r"|delivery status notification|delivery failure|mail delivery failed"
    r"|returned mail|failure notice)\b\s*(?::|\(|$)",
    re.IGNORECASE,
)
_AUTO_PRECEDENCE = frozenset({"bulk", "junk", "list", "auto_reply"})


class NotAMailError(ValueError):
    """The input is not a mail message at all (empty, binary, or no header section)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class AttachmentInfo(BaseModel):
    """One non-body part; the decoded bytes come from `attachment_payloads`."""

    filename: str | None = None
    content_type: str
    size: int
    sha256: str


class ParsedMail(BaseModel):
    """Everything the bot uses from an incoming mail, decoded and made safe to display.

    Strings hold no control characters (except newline and tab in `text`) and no lone
    surrogates; `date` is in UTC; addresses are lower-case addr-specs.
    """

    message_id: str
    subject: str
    from_address: str | None = None
    from_name: str | None = None
    reply_to: str | None = None
    to: list[str] = Field(default_factory=list)
    cc: list[str] = Field(default_factory=list)
    date: datetime | None = None
    in_reply_to: list[str] = Field(default_factory=list)
    references: list[str] = Field(default_factory=list)
    text: str = ""
    text_was_html: bool = False
    attachments: list[AttachmentInfo] = Field(default_factory=list)
    auto_submitted: str | None = None
    is_automatic: bool = False
    automatic_reason: str | None = None
    problems: list[str] = Field(default_factory=list)
    size: int = 0


# -- small text helpers -------------------------------------------------------------------


def _fix_surrogates(value: str) -> str:
    """Real text from a str that may carry undecoded bytes as surrogate escapes."""
    if not _SURROGATE_RE.search(value):
        return value
    try:
        data = value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        # Lone surrogates that are not escaped bytes (from exotic codecs) cannot be
        # stored or sent as JSON; they carry no meaning either.
        return _SURROGATE_RE.sub("\ufffd", value)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode(_FALLBACK_CHARSET, "replace")


def _one_line(value: str) -> str:
    """Header text for display: one line, no control characters, single spaces."""
    value = _LINE_CONTROL_RE.sub(" ", _fix_surrogates(value))
    return _WHITESPACE_RE.sub(" ", value).strip()


def _unfold(value: str) -> str:
    return _FOLD_RE.sub("", value)


def _safe(action: Callable[[], _T], fallback: _T) -> _T:
    """Run one access into the email package, which raises assorted exceptions (not only
    HeaderParseError: IndexError, ValueError, AttributeError...) on hostile input."""
    try:
        return action()
    except Exception as exc:
        _log.debug("email package raised %s", type(exc).__name__)
        return fallback


# -- message ids and case ids -------------------------------------------------------------


def _valid_id_body(body: str) -> bool:
    return (
        0 < len(body) <= _MAX_MESSAGE_ID
        and not _LINE_CONTROL_RE.search(body)
        and not any(char.isspace() for char in body)
    )


def extract_message_ids(value: str) -> list[str]:
    """Message ids "<...>" from an In-Reply-To or References value, in order, de-duplicated.

    Tolerates garbage: comments, missing angle brackets (then only tokens with an "@"
    count), folded lines and over-long ids (dropped).
    """
    value = _fix_surrogates(value)
    bodies = [_WHITESPACE_RE.sub("", match) for match in _ANGLE_ID_RE.findall(value)]
    if not bodies:
        bodies = [token.strip("<>,;\"'()") for token in re.split(r"[\s,;]+", value) if "@" in token]
    seen: set[str] = set()
    ids: list[str] = []
    for body in bodies:
        if not _valid_id_body(body):
            continue
        message_id = f"<{body}>"
        if message_id not in seen:
            seen.add(message_id)
            ids.append(message_id)
    return ids


def normalise_message_id(value: str) -> str | None:
    """The first message id in `value` as "<...>", or None when there is no usable one."""
    ids = extract_message_ids(value)
    return ids[0] if ids else None


def find_case_ids(subject: str) -> list[str]:
    """Case ids named in a subject, upper-cased, in order, without repeats."""
    found: list[str] = []
    for match in CASE_ID_RE.findall(subject):
        case_id = match.upper()
        if case_id not in found:
            found.append(case_id)
    return found


# -- headers ------------------------------------------------------------------------------


def _raw_items(msg: Message) -> list[tuple[str, str]]:
    """The header fields as they were in the mail (values may hold surrogate escapes)."""

    def read() -> list[tuple[str, str]]:
        return [(str(key), str(value)) for key, value in msg.raw_items()]

    return _safe(read, [])


def _raw_header(msg: Message, name: str) -> str | None:
    """The first field `name` as it was in the mail (unfolded), before any decoding."""
    wanted = name.lower()
    for key, value in _raw_items(msg):
        if key.lower() == wanted:
            return _unfold(str(value))
    return None


def _header_text_source(name: str, raw: str, problems: list[str]) -> str:
    """The raw field value with undeclared 8-bit bytes decoded (utf-8, else windows-1252)."""
    if not _SURROGATE_RE.search(raw):
        return raw
    try:
        data = raw.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return _SURROGATE_RE.sub("\ufffd", raw)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        problems.append(f"undeclared 8-bit text in the {name} header; shown as windows-1252")
        return data.decode(_FALLBACK_CHARSET, "replace")


def _parsed_header(msg: Message, name: str, problems: list[str]) -> Any | None:
    """The field parsed by `policy.default`'s header registry, or None when absent.

    Parsing from the raw value (rather than `msg[name]`) gives one path for every
    message, whatever policy it was parsed with, and lets us fix 8-bit bytes first.
    """
    raw = _raw_header(msg, name)
    if raw is None:
        return None
    value = _header_text_source(name, raw, problems)
    header = _safe(lambda: policy.default.header_factory(name, value), None)
    if header is None:
        problems.append(f"unparseable {name} header")
    return header


def _header_text(msg: Message, name: str, problems: list[str]) -> str | None:
    """An unstructured field decoded (RFC 2047) to one clean line; None when absent."""
    raw = _raw_header(msg, name)
    if raw is None:
        return None
    header = _parsed_header(msg, name, problems)
    if header is None:
        return _one_line(raw)
    return _one_line(_safe(lambda: str(header), raw))


def _valid_address(address: str) -> bool:
    local, at, domain = address.rpartition("@")
    return (
        bool(at and local and domain)
        and len(address) <= _MAX_ADDRESS
        and not _LINE_CONTROL_RE.search(address)
        and not any(char.isspace() or char in '<>()[],;:"\\@' for char in domain)
        and not any(char.isspace() or char in "<>" for char in local)
    )


def _address_pair(address: Any) -> tuple[str, str]:
    return str(address.addr_spec), str(address.display_name)


def _addresses(
    msg: Message, name: str, problems: list[str]
) -> tuple[list[tuple[str, str | None]], bool]:
    """(address, display name) pairs of an address field, and whether the field exists."""
    raw = _raw_header(msg, name)
    if raw is None:
        return [], False
    pairs: list[tuple[str, str | None]] = []
    header = _parsed_header(msg, name, problems)
    candidates: list[tuple[str, str]] = []
    parsed = _safe(lambda: list(header.addresses), None) if header is not None else None
    if parsed is not None:
        for address in parsed:
            pair = _safe(lambda: _address_pair(address), None)  # noqa: B023 - called at once
            if pair is not None:
                candidates.append(pair)
    if not candidates:
        # The registry's strict grammar gave nothing usable; the lenient compat parser
        # still finds the address in many hand-written or broken fields.
        text = _header_text_source(name, raw, [])
        lenient: list[tuple[str, str]] = _safe(lambda: getaddresses([text]), [])
        candidates = [(spec, display) for display, spec in lenient]
    for spec, display in candidates:
        spec = _fix_surrogates(spec).strip().lower()
        if not _valid_address(spec):
            continue
        display_name = _one_line(display) or None
        if display_name is not None and display_name.lower() == spec:
            display_name = None
        pairs.append((spec, display_name))
    return pairs, True


def _parse_date(msg: Message, problems: list[str]) -> datetime | None:
    raw = _raw_header(msg, "Date")
    if raw is None:
        problems.append("no Date header")
        return None
    header = _parsed_header(msg, "Date", problems)
    when = _safe(lambda: header.datetime, None) if header is not None else None
    if when is None:
        when = _safe(lambda: parsedate_to_datetime(_fix_surrogates(raw)), None)
    if not isinstance(when, datetime):
        problems.append("unparseable Date header")
        return None
    if when.tzinfo is None:
        # "-0000" (or no zone at all) means the sender did not know its offset.
        when = when.replace(tzinfo=UTC)
    converted = _safe(lambda: when.astimezone(UTC), None)
    if converted is None:
        problems.append("unparseable Date header")
    return converted


# -- MIME structure -----------------------------------------------------------------------


def _content_type(part: Message) -> str:
    return _safe(lambda: part.get_content_type(), "application/octet-stream")


def _is_attachment(part: Message) -> bool:
    return _safe(lambda: part.get_content_disposition() == "attachment", False)


@dataclass(frozen=True, eq=False)
class _Node:
    """One MIME part with what we need to know about it, read once: every header access
    into the email package re-parses the field."""

    number: int
    part: Message
    content_type: str
    # Whether the part holds sub-parts (a list payload), even when we do not descend.
    has_subparts: bool
    ancestors: tuple[_Node, ...]

    @property
    def is_message(self) -> bool:
        return self.content_type.startswith("message/")

    @property
    def is_broken_multipart(self) -> bool:
        """A multipart that lost its structure (no or wrong boundary)."""
        return self.content_type.startswith("multipart/") and not self.has_subparts


def _nodes(msg: Message) -> list[_Node]:
    """Every part in document order, numbered from 1. message/* parts are not descended
    into, so a forwarded mail counts as one attachment and its text never becomes ours.

    Iterative, because a hostile mail may nest parts deeper than Python's recursion limit.
    """
    nodes: list[_Node] = []
    stack: list[tuple[Message, tuple[_Node, ...]]] = [(msg, ())]
    while stack:
        part, ancestors = stack.pop()
        payload = _safe(part.get_payload, None)
        node = _Node(
            number=len(nodes) + 1,
            part=part,
            content_type=_content_type(part),
            has_subparts=isinstance(payload, list),
            ancestors=ancestors,
        )
        nodes.append(node)
        if isinstance(payload, list) and not node.is_message:
            children = [child for child in payload if isinstance(child, Message)]
            stack.extend((child, (*ancestors, node)) for child in reversed(children))
    return nodes


def _find_body(msg: Message, nodes: list[_Node], problems: list[str]) -> Message | None:
    if isinstance(msg, EmailMessage):
        try:
            return msg.get_body(preferencelist=("plain", "html"))
        except Exception as exc:  # same reason as in _safe
            _log.debug("get_body raised %s", type(exc).__name__)
            problems.append("malformed MIME structure; body found by a simpler search")
    # A message parsed with another policy, or one that broke get_body: the first inline
    # text/plain, else the first inline text/html.
    for wanted in ("text/plain", "text/html"):
        for node in nodes:
            if node.content_type == wanted and not _is_attachment(node.part):
                return node.part
    return None


def _split_parts(msg: Message, problems: list[str]) -> tuple[_Node | None, list[_Node]]:
    """(body part, attachments) of a message; the root of a broken multipart is neither."""
    nodes = _nodes(msg)
    body_part = _find_body(msg, nodes, problems)
    body = next((node for node in nodes if node.part is body_part), None)
    alternatives: set[int] = set()
    if body is not None:
        alternatives = {
            ancestor.number
            for ancestor in body.ancestors
            if ancestor.content_type == "multipart/alternative"
        }
    attachments: list[_Node] = []
    for node in nodes:
        if node is body or (node.has_subparts and not node.is_message):
            continue
        if node.number == 1 and node.is_broken_multipart:
            # Shown as the body text instead (see _parse).
            continue
        if (
            any(ancestor.number in alternatives for ancestor in node.ancestors)
            and node.content_type.startswith("text/")
            and not _is_attachment(node.part)
        ):
            # The other rendering (usually HTML) of the body we already show.
            continue
        attachments.append(node)
    return body, attachments


def _payload_bytes(part: Message, problems: list[str], number: int) -> bytes:
    """The decoded content of a leaf part; a message/* part serialised as a .eml."""
    payload = _safe(part.get_payload, None)
    if isinstance(payload, list):
        chunks = [_serialise(child) for child in payload if isinstance(child, Message)]
        return b"\n".join(chunks)
    data = _safe(lambda: part.get_payload(decode=True), None)
    if isinstance(data, bytes):
        return data
    problems.append(f"could not decode the content of part {number}")
    return b""


# Re-serialise a forwarded mail the way it arrived: no refolding of long header lines.
_SERIALISE_POLICY = policy.compat32.clone(max_line_length=0)


def _serialise(msg: Message) -> bytes:
    data = _safe(lambda: msg.as_bytes(policy=_SERIALISE_POLICY), None)
    if data is not None:
        return data
    # The generator gave up on something; keep the header fields and whatever text the
    # payload has, which is still useful to a human.
    headers = "".join(f"{key}: {value}\n" for key, value in _raw_items(msg))
    payload = _safe(lambda: msg.get_payload(), None)
    body = payload if isinstance(payload, str) else ""
    return (headers + "\n" + body).encode("utf-8", "surrogateescape")


def _clean_filename(name: str | None) -> str | None:
    if not name:
        return None
    name = _one_line(name)
    # Only the last path component: a name like "../../etc/passwd" must not escape
    # whatever directory a later feature saves attachments to.
    name = re.split(r"[/\\]", name)[-1].strip().lstrip(".").strip()
    if not name:
        return None
    if len(name) > _MAX_FILENAME:
        stem, dot, extension = name.rpartition(".")
        if dot and 0 < len(extension) <= 10:
            name = stem[: _MAX_FILENAME - len(extension) - 1] + "." + extension
        else:
            name = name[:_MAX_FILENAME]
    return name


def _attachment_info(node: _Node, data: bytes) -> AttachmentInfo:
    content_type = node.content_type
    filename = _clean_filename(_safe(node.part.get_filename, None))
    if filename is None and content_type == "message/rfc822":
        filename = "forwarded.eml"
    return AttachmentInfo(
        filename=filename,
        content_type=_one_line(content_type),
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )


# -- body text ----------------------------------------------------------------------------


def _guess_decode(data: bytes) -> tuple[str, str]:
    """(text, charset used) for bytes of unknown encoding."""
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return data.decode(_FALLBACK_CHARSET, "replace"), _FALLBACK_CHARSET


def _decode_text(data: bytes, declared: str | None, number: int, problems: list[str]) -> str:
    if not declared:
        if data.isascii():
            return data.decode("ascii")
        text, used = _guess_decode(data)
        problems.append(f"no charset declared for 8-bit text in part {number}; shown as {used}")
        return text
    codec = _CHARSET_ALIASES.get(declared, declared)
    try:
        return data.decode(codec)
    except LookupError:
        text, used = _guess_decode(data)
        problems.append(f"undecodable charset {declared!r} in part {number}; shown as {used}")
        return text
    except (UnicodeError, ValueError, TypeError):
        # UnicodeError rather than UnicodeDecodeError: codecs such as idna raise the base
        # class; and windows-1252 itself leaves five bytes undefined.
        if codec == _FALLBACK_CHARSET:
            return data.decode("latin-1")
        text, used = _guess_decode(data)
        problems.append(f"text in part {number} is not valid {declared}; shown as {used}")
        return text


def _clean_body(text: str) -> str:
    text = _fix_surrogates(text).replace("\r\n", "\n").replace("\r", "\n")
    return _BODY_CONTROL_RE.sub("", text)


def _unflow(text: str, delsp: bool) -> str:
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


def _body_text(node: _Node, problems: list[str]) -> tuple[str, bool]:
    """(readable text, was HTML) of the body part."""
    part, number = node.part, node.number
    data = _payload_bytes(part, problems, number)
    charset = _safe(lambda: part.get_content_charset(), None)
    declared = _one_line(str(charset)).strip("\"' ").lower() if charset else None
    text = _clean_body(_decode_text(data, declared, number, problems))
    if node.content_type == "text/html":
        return html_to_text(text), True
    raw_params: list[tuple[str, Any]] = _safe(lambda: part.get_params(failobj=[]) or [], [])
    params = {str(key).lower(): str(value).lower() for key, value in raw_params}
    # Inline PGP keeps its lines as sent: the signature covers the trailing spaces that
    # unflowing would remove.
    if params.get("format") == "flowed" and "-----BEGIN PGP" not in text:
        text = _unflow(text, params.get("delsp") == "yes")
    return text, False


# -- automatic mail -----------------------------------------------------------------------


def _automatic_reason(
    msg: Message,
    subject: str,
    auto_submitted: str | None,
    problems: list[str],
) -> str | None:
    """Why this mail was sent by a machine (auto-reply, bounce, list), or None."""
    if auto_submitted and auto_submitted.split(";")[0].strip().lower() not in ("", "no"):
        return f"Auto-Submitted: {auto_submitted}"
    for name in ("X-Autoreply", "X-Autorespond"):
        value = _raw_header(msg, name)
        if value is not None and value.strip().lower() not in ("no", "false", "0"):
            return f"{name} header"
    precedence = (_header_text(msg, "Precedence", problems) or "").lower()
    if precedence in _AUTO_PRECEDENCE:
        return f"Precedence: {precedence}"
    if _content_type(msg) == "multipart/report":
        return "delivery or read report (multipart/report)"
    return_path = _raw_header(msg, "Return-Path")
    if return_path is not None and _WHITESPACE_RE.sub("", return_path) == "<>":
        return "bounce (empty Return-Path)"
    if "mailer-daemon" in (_raw_header(msg, "From") or "").lower():
        return "bounce (From MAILER-DAEMON)"
    if _raw_header(msg, "X-Failed-Recipients") is not None:
        return "bounce (X-Failed-Recipients)"
    for name in ("List-Id", "List-Unsubscribe"):
        if _raw_header(msg, name) is not None:
            return f"mailing list mail ({name})"
    if _AUTO_SUBJECT_RE.match(subject):
        return "automatic reply or bounce (subject)"
    return None


# -- entry points -------------------------------------------------------------------------


def _defect_names(msg: Message) -> list[str]:
    names: list[str] = []
    stack = [msg]
    while stack:
        part = stack.pop()
        defects: list[MessageDefect] = _safe(lambda: list(part.defects), [])  # noqa: B023
        for defect in defects:
            name = type(defect).__name__
            if name not in names:
                names.append(name)
        payload = _safe(part.get_payload, None)
        if isinstance(payload, list):
            stack.extend(child for child in reversed(payload) if isinstance(child, Message))
    return names


def _synthetic_message_id(raw: bytes) -> str:
    return f"<{hashlib.sha256(raw).hexdigest()}@{_SYNTHETIC_DOMAIN}>"


def _parse(msg: Message, raw_size: int, raw: bytes | None, problems: list[str]) -> ParsedMail:
    message_id_raw = _raw_header(msg, "Message-ID")
    message_id = normalise_message_id(message_id_raw) if message_id_raw is not None else None
    if message_id is None:
        problems.append(
            "no Message-ID header" if message_id_raw is None else "unusable Message-ID header"
        )
        message_id = _synthetic_message_id(raw if raw is not None else _serialise(msg))

    subject = _header_text(msg, "Subject", problems)
    if subject is None:
        problems.append("no Subject header")
        subject = ""

    senders, has_from = _addresses(msg, "From", problems)
    if not has_from:
        problems.append("no From header")
    elif not senders:
        problems.append("no usable address in the From header")
    elif len(senders) > 1:
        problems.append("several addresses in the From header; using the first")
    from_address, from_name = senders[0] if senders else (None, None)
    reply_to_pairs, _ = _addresses(msg, "Reply-To", problems)
    to = [address for address, _ in _addresses(msg, "To", problems)[0]]
    cc = [address for address, _ in _addresses(msg, "Cc", problems)[0]]

    date = _parse_date(msg, problems)

    in_reply_to = extract_message_ids(_raw_header(msg, "In-Reply-To") or "")
    references = extract_message_ids(_raw_header(msg, "References") or "")
    if len(references) > _MAX_REFERENCES:
        problems.append(f"{len(references)} References; kept the first and the latest")
        references = references[:1] + references[-(_MAX_REFERENCES - 1) :]

    body, attachment_nodes = _split_parts(msg, problems)
    text, text_was_html = "", False
    if body is not None:
        text, text_was_html = _body_text(body, problems)
    elif _content_type(msg).startswith("multipart/") and not msg.is_multipart():
        # A multipart without a usable boundary: the standard library keeps the whole
        # body as one string; showing it raw beats showing nothing.
        text = _clean_body(_decode_text(_payload_bytes(msg, problems, 1), None, 1, problems))
        problems.append("multipart body without usable boundaries; shown as plain text")
    else:
        problems.append("no readable text body")

    attachments: list[AttachmentInfo] = []
    for node in attachment_nodes:
        attachments.append(_attachment_info(node, _payload_bytes(node.part, problems, node.number)))

    auto_submitted = _header_text(msg, "Auto-Submitted", problems) or None
    reason = _automatic_reason(msg, subject, auto_submitted, problems)

    # Defects are collected last: decoding payloads above adds base64 defects to parts.
    defects = _defect_names(msg)
    if defects:
        problems.append("malformed MIME: " + ", ".join(defects))

    return ParsedMail(
        message_id=_fix_surrogates(message_id),
        subject=subject,
        from_address=from_address,
        from_name=from_name,
        reply_to=reply_to_pairs[0][0] if reply_to_pairs else None,
        to=to,
        cc=cc,
        date=date,
        in_reply_to=in_reply_to,
        references=references,
        text=text,
        text_was_html=text_was_html,
        attachments=attachments,
        auto_submitted=auto_submitted,
        is_automatic=reason is not None,
        automatic_reason=reason,
        problems=[_one_line(problem) for problem in _dedupe(problems)],
        size=raw_size,
    )


def _dedupe(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _parse_bytes(raw: bytes) -> tuple[EmailMessage, list[str]]:
    """(parsed message, problems), or NotAMailError when `raw` has no mail header section."""
    if not raw.strip():
        raise NotAMailError("empty input")
    # A pipe or a saved file may start with blank lines; they are not the header end.
    start = raw.lstrip(b"\r\n")
    problems: list[str] = []
    parser = BytesParser(policy=policy.default)
    try:
        msg = parser.parsebytes(start)
    except Exception as exc:
        # E.g. RecursionError on MIME nested thousands deep: keep the header fields and
        # leave the body as one unparsed string rather than losing the report.
        _log.debug("full parse failed with %s; parsing headers only", type(exc).__name__)
        problems.append("MIME structure too broken to parse; body kept as raw text")
        try:
            msg = parser.parsebytes(start, headersonly=True)
        except Exception as inner:
            raise NotAMailError(
                f"not parseable as a mail message ({type(inner).__name__})"
            ) from inner
    if not isinstance(msg, EmailMessage):
        raise NotAMailError("not parseable as a mail message")
    names = {key.lower() for key, _ in _raw_items(msg)}
    if not names:
        raise NotAMailError("no header section")
    if not names & _KNOWN_FIELDS:
        raise NotAMailError("no recognisable mail header fields")
    return msg, problems


def parse_mail(raw: bytes) -> ParsedMail:
    """Parse raw RFC 5322 bytes; raises only NotAMailError (for input that is not mail)."""
    msg, problems = _parse_bytes(raw)
    return _parse(msg, len(raw), raw, problems)


def parse_message(
    msg: EmailMessage, raw_size: int, problems_prefix: list[str] | None = None
) -> ParsedMail:
    """Parse an already parsed message, e.g. the decrypted inner message of a PGP mail.

    `problems_prefix` carries the outer layer's problems, which come first. Without the
    original bytes, a missing Message-ID is synthesised from the re-serialised message.
    """
    return _parse(msg, raw_size, None, list(problems_prefix or []))


def attachment_payloads(raw: bytes) -> list[tuple[AttachmentInfo, bytes]]:
    """The decoded bytes of each attachment, in the order of `ParsedMail.attachments`."""
    msg, problems = _parse_bytes(raw)
    _, nodes = _split_parts(msg, problems)
    result: list[tuple[AttachmentInfo, bytes]] = []
    for node in nodes:
        data = _payload_bytes(node.part, problems, node.number)
        result.append((_attachment_info(node, data), data))
    return result
