"""The header fields of a mail read defensively: addresses, dates, decoded text, Message-IDs
and case IDs, and whether a machine sent it (auto-reply, bounce, list)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email import policy
from email.message import Message
from email.utils import getaddresses, parsedate_to_datetime
from typing import Any

from bot.mailin.decoding import (
    LINE_CONTROL_RE,
    WHITESPACE_RE,
    decode_escaped,
    fix_surrogates,
    one_line,
    safe,
)

CASE_ID_RE: re.Pattern[str] = re.compile(r"\bCVD-[0-9]{4}-[0-9]{4,}\b", re.IGNORECASE)

# Beyond these lengths an identifier is not a real one but an attack on whatever later
# stores it or copies it into the References of an outgoing mail.
_MAX_MESSAGE_ID = 250
_MAX_ADDRESS = 254
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


def _unfold(value: str) -> str:
    return _FOLD_RE.sub("", value)


def _valid_id_body(body: str) -> bool:
    return (
        0 < len(body) <= _MAX_MESSAGE_ID
        and not LINE_CONTROL_RE.search(body)
        and not any(char.isspace() for char in body)
    )


def extract_message_ids(value: str) -> list[str]:
    """Message ids "<...>" from an In-Reply-To or References value, in order, de-duplicated.

    Tolerates garbage: comments, missing angle brackets (then only tokens with an "@"
    count), folded lines and over-long ids (dropped).
    """
    value = fix_surrogates(value)
    bodies = [WHITESPACE_RE.sub("", match) for match in _ANGLE_ID_RE.findall(value)]
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


#: Set on every mail the bot sends (reporter mail, the digest): with the bot's From address
#: it marks the bot's own mail come back. From alone does not: a web form may send a report
#: From the security address with Reply-To set to the reporter.
BOT_HEADER = "X-CVDBot"

# The tag the bot's own mail carries in its subject: the only case-ID form that matches a
# follow-up (a bare ID is a mention, e.g. "Bypass of the fix for CVD-2026-0003").
CASE_TAG_RE: re.Pattern[str] = re.compile(r"\[\s*(CVD-[0-9]{4}-[0-9]{4,})\s*\]", re.IGNORECASE)


def find_case_tags(subject: str) -> list[str]:
    """Case ids in the tag form ``[CVD-YYYY-NNNN]`` in a subject, upper-cased, no repeats."""
    return list(dict.fromkeys(match.upper() for match in CASE_TAG_RE.findall(subject)))


def raw_items(msg: Message) -> list[tuple[str, str]]:
    """The header fields as they were in the mail (values may hold surrogate escapes)."""

    def read() -> list[tuple[str, str]]:
        return [(str(key), str(value)) for key, value in msg.raw_items()]

    return safe(read, [])


def raw_header(msg: Message, name: str) -> str | None:
    """The first field `name` as it was in the mail (unfolded), before any decoding."""
    wanted = name.lower()
    for key, value in raw_items(msg):
        if key.lower() == wanted:
            return _unfold(str(value))
    return None


def _header_text_source(name: str, raw: str, problems: list[str]) -> str:
    """The raw field value with undeclared 8-bit bytes decoded (utf-8, else windows-1252)."""
    text, fell_back = decode_escaped(raw)
    if fell_back:
        problems.append(f"undeclared 8-bit text in the {name} header; shown as windows-1252")
    return text


def _parsed_header(msg: Message, name: str, problems: list[str]) -> Any | None:
    """The field parsed by `policy.default`'s header registry, or None when absent.

    Parsing from the raw value (rather than `msg[name]`) gives one path for every
    message, whatever policy it was parsed with, and lets us fix 8-bit bytes first.
    """
    raw = raw_header(msg, name)
    if raw is None:
        return None
    value = _header_text_source(name, raw, problems)
    header = safe(lambda: policy.default.header_factory(name, value), None)
    if header is None:
        problems.append(f"unparseable {name} header")
    return header


def header_text(msg: Message, name: str, problems: list[str]) -> str | None:
    """An unstructured field decoded (RFC 2047) to one clean line; None when absent."""
    raw = raw_header(msg, name)
    if raw is None:
        return None
    header = _parsed_header(msg, name, problems)
    if header is None:
        return one_line(raw)
    return one_line(safe(lambda: str(header), raw))


def _valid_address(address: str) -> bool:
    local, at, domain = address.rpartition("@")
    return (
        bool(at and local and domain)
        and len(address) <= _MAX_ADDRESS
        and not LINE_CONTROL_RE.search(address)
        and not any(char.isspace() or char in '<>()[],;:"\\@' for char in domain)
        and not any(char.isspace() or char in "<>" for char in local)
    )


def _address_pair(address: Any) -> tuple[str, str]:
    return str(address.addr_spec), str(address.display_name)


def addresses(
    msg: Message, name: str, problems: list[str]
) -> tuple[list[tuple[str, str | None]], bool]:
    """(address, display name) pairs of an address field, and whether the field exists."""
    raw = raw_header(msg, name)
    if raw is None:
        return [], False
    pairs: list[tuple[str, str | None]] = []
    header = _parsed_header(msg, name, problems)
    candidates: list[tuple[str, str]] = []
    parsed = safe(lambda: list(header.addresses), None) if header is not None else None
    if parsed is not None:
        for address in parsed:
            pair = safe(lambda: _address_pair(address), None)  # noqa: B023 - called at once
            if pair is not None:
                candidates.append(pair)
    if not candidates:
        # The registry's strict grammar gave nothing usable; the lenient compat parser
        # still finds the address in many hand-written or broken fields.
        text = _header_text_source(name, raw, [])
        lenient: list[tuple[str, str]] = safe(lambda: getaddresses([text]), [])
        candidates = [(spec, display) for display, spec in lenient]
    for spec, display in candidates:
        spec = fix_surrogates(spec).strip().lower()
        if not _valid_address(spec):
            continue
        display_name = one_line(display) or None
        if display_name is not None and display_name.lower() == spec:
            display_name = None
        pairs.append((spec, display_name))
    return pairs, True


def parse_date(msg: Message, problems: list[str]) -> datetime | None:
    raw = raw_header(msg, "Date")
    if raw is None:
        problems.append("no Date header")
        return None
    header = _parsed_header(msg, "Date", problems)
    when = safe(lambda: header.datetime, None) if header is not None else None
    if when is None:
        when = safe(lambda: parsedate_to_datetime(fix_surrogates(raw)), None)
    if not isinstance(when, datetime):
        problems.append("unparseable Date header")
        return None
    if when.tzinfo is None:
        # "-0000" (or no zone at all) means the sender did not know its offset.
        when = when.replace(tzinfo=UTC)
    converted = safe(lambda: when.astimezone(UTC), None)
    if converted is None:
        problems.append("unparseable Date header")
    return converted


def automatic_reason(
    msg: Message,
    subject: str,
    auto_submitted: str | None,
    content_type: str,
    problems: list[str],
) -> str | None:
    """Why this mail was sent by a machine (auto-reply, bounce, list), or None.

    `content_type` is the top-level MIME type (a delivery report is recognised by it)."""
    if auto_submitted and auto_submitted.split(";")[0].strip().lower() not in ("", "no"):
        return f"Auto-Submitted: {auto_submitted}"
    for name in ("X-Autoreply", "X-Autorespond"):
        value = raw_header(msg, name)
        if value is not None and value.strip().lower() not in ("no", "false", "0"):
            return f"{name} header"
    precedence = (header_text(msg, "Precedence", problems) or "").lower()
    if precedence in _AUTO_PRECEDENCE:
        return f"Precedence: {precedence}"
    if content_type == "multipart/report":
        return "delivery or read report (multipart/report)"
    return_path = raw_header(msg, "Return-Path")
    if return_path is not None and WHITESPACE_RE.sub("", return_path) == "<>":
        return "bounce (empty Return-Path)"
    if "mailer-daemon" in (raw_header(msg, "From") or "").lower():
        return "bounce (From MAILER-DAEMON)"
    if raw_header(msg, "X-Failed-Recipients") is not None:
        return "bounce (X-Failed-Recipients)"
    for name in ("List-Id", "List-Unsubscribe"):
        if raw_header(msg, name) is not None:
            return f"mailing list mail ({name})"
    if _AUTO_SUBJECT_RE.match(subject):
        return "automatic reply or bounce (subject)"
    return None
