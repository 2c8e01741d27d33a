"""Turn raw RFC 5322 bytes from strangers into a `ParsedMail` the rest of the bot can trust.

Reports arrive from every mail client, sometimes malformed or hostile. Parsing never fails
on anything that looks like mail: what could not be read is described in `problems`. Only
input that is not a mail message at all raises `NotAMailError`. The header fields are read
in `header_fields`, the MIME parts in `mime_parts`, both with `decoding`'s safe text.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser

from pydantic import BaseModel, Field

from bot.mailin.bounds import DEFAULT_BOUNDS, MailBounds, bound_header_section
from bot.mailin.decoding import clean_body, decode_text, fix_surrogates, one_line
from bot.mailin.header_fields import (
    BOT_HEADER,
    CASE_ID_RE,
    addresses,
    automatic_reason,
    extract_message_ids,
    find_case_ids,
    find_case_tags,
    header_text,
    normalise_message_id,
    parse_date,
    raw_header,
    raw_items,
)
from bot.mailin.mime_parts import (
    AttachmentInfo,
    attachment_info,
    body_text,
    defect_names,
    part_content_type,
    payload_bytes,
    serialise,
    split_parts,
)

__all__ = [
    "CASE_ID_RE",
    "AttachmentInfo",
    "NotAMailError",
    "ParsedMail",
    "attachment_payloads",
    "extract_message_ids",
    "find_case_ids",
    "find_case_tags",
    "normalise_message_id",
    "parse_mail",
    "parse_message",
    "peek_sender_and_subject",
]

_log = logging.getLogger(__name__)


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

# More References than this are an attack on whatever copies them into a reply's header.
_MAX_REFERENCES = 100

_SYNTHETIC_DOMAIN = "cvdbot.invalid"

_PARSE_POLICY = policy.compat32


class NotAMailError(ValueError):
    """The input is not a mail message at all (empty, binary, or no header section)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


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
    bot_header: bool = False  # carries the header the bot sets on its own mail
    problems: list[str] = Field(default_factory=list)
    size: int = 0


def _synthetic_message_id(raw: bytes) -> str:
    return f"<{hashlib.sha256(raw).hexdigest()}@{_SYNTHETIC_DOMAIN}>"


def _parse(
    msg: Message,
    raw_size: int,
    raw: bytes | None,
    problems: list[str],
    bounds: MailBounds = DEFAULT_BOUNDS,
) -> ParsedMail:
    message_id_raw = raw_header(msg, "Message-ID")
    message_id = normalise_message_id(message_id_raw) if message_id_raw is not None else None
    if message_id is None:
        problems.append(
            "no Message-ID header" if message_id_raw is None else "unusable Message-ID header"
        )
        message_id = _synthetic_message_id(raw if raw is not None else serialise(msg))

    subject = header_text(msg, "Subject", problems)
    if subject is None:
        problems.append("no Subject header")
        subject = ""

    senders, has_from = addresses(msg, "From", problems)
    if not has_from:
        problems.append("no From header")
    elif not senders:
        problems.append("no usable address in the From header")
    elif len(senders) > 1:
        problems.append("several addresses in the From header; using the first")
    from_address, from_name = senders[0] if senders else (None, None)
    reply_to_pairs, _ = addresses(msg, "Reply-To", problems)
    to = [address for address, _ in addresses(msg, "To", problems)[0]]
    cc = [address for address, _ in addresses(msg, "Cc", problems)[0]]

    date = parse_date(msg, problems)

    in_reply_to = extract_message_ids(raw_header(msg, "In-Reply-To") or "")
    references = extract_message_ids(raw_header(msg, "References") or "")
    if len(references) > _MAX_REFERENCES:
        problems.append(f"{len(references)} References; kept the first and the latest")
        references = references[:1] + references[-(_MAX_REFERENCES - 1) :]

    body, attachment_nodes = split_parts(msg, problems, bounds.max_mime_parts)
    text, text_was_html = "", False
    if body is not None:
        text, text_was_html = body_text(body, problems)
    elif part_content_type(msg).startswith("multipart/") and not msg.is_multipart():
        # A multipart without a usable boundary: the standard library keeps the whole
        # body as one string; showing it raw beats showing nothing.
        text = clean_body(decode_text(payload_bytes(msg, problems, 1), None, 1, problems))
        problems.append("multipart body without usable boundaries; shown as plain text")
    else:
        problems.append("no readable text body")

    attachments: list[AttachmentInfo] = []
    for node in attachment_nodes:
        attachments.append(attachment_info(node, payload_bytes(node.part, problems, node.number)))

    auto_submitted = header_text(msg, "Auto-Submitted", problems) or None
    reason = automatic_reason(msg, subject, auto_submitted, part_content_type(msg), problems)

    # Defects are collected last: decoding payloads above adds base64 defects to parts.
    defects = defect_names(msg)
    if defects:
        problems.append("malformed MIME: " + ", ".join(defects))

    return ParsedMail(
        message_id=fix_surrogates(message_id),
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
        bot_header=raw_header(msg, BOT_HEADER) is not None,
        problems=[one_line(problem) for problem in _dedupe(problems)],
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
    # The compat32 policy with the modern message class: header fields stay strings until
    # `header_fields` reads them (with `policy.default`'s registry, once each). With
    # `policy.default` every Content-Type lookup re-parses the field; a mail of 3,000 parts
    # took 20 s to read that way, and takes a fifth of a second like this.
    parser = BytesParser(_class=EmailMessage, policy=_PARSE_POLICY)
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
    names = {key.lower() for key, _ in raw_items(msg)}
    if not names:
        raise NotAMailError("no header section")
    if not names & _KNOWN_FIELDS:
        raise NotAMailError("no recognisable mail header fields")
    return msg, problems


def parse_mail(raw: bytes, bounds: MailBounds = DEFAULT_BOUNDS) -> ParsedMail:
    """Parse raw RFC 5322 bytes; raises only NotAMailError (for input that is not mail).

    The header section is cut to `bounds` first (what was cut is among the problems)."""
    bounded, cut = bound_header_section(raw, bounds)
    msg, problems = _parse_bytes(bounded)
    return _parse(msg, len(raw), raw, cut + problems, bounds)


def parse_message(
    msg: EmailMessage, raw_size: int, problems_prefix: list[str] | None = None
) -> ParsedMail:
    """Parse an already parsed message, e.g. the decrypted inner message of a PGP mail.

    `problems_prefix` carries the outer layer's problems, which come first. Without the
    original bytes, a missing Message-ID is synthesised from the re-serialised message.
    """
    return _parse(msg, raw_size, None, list(problems_prefix or []))


def peek_sender_and_subject(
    raw: bytes, bounds: MailBounds = DEFAULT_BOUNDS
) -> tuple[str | None, str | None]:
    """(From address, Subject) read from the bounded header section alone, for a notice
    about a mail that is not read otherwise; (None, None) when even that fails."""
    head = bound_header_section(raw[: bounds.max_header_bytes * 2], bounds)[0]
    try:
        msg = BytesParser(_class=EmailMessage, policy=_PARSE_POLICY).parsebytes(
            head, headersonly=True
        )
        problems: list[str] = []
        senders, _ = addresses(msg, "From", problems)
        return (senders[0][0] if senders else None), header_text(msg, "Subject", problems)
    except Exception as exc:  # a notice must not fail on the mail it is about
        _log.debug("header peek failed with %s", type(exc).__name__)
        return None, None


def attachment_payloads(
    raw: bytes, bounds: MailBounds = DEFAULT_BOUNDS
) -> list[tuple[AttachmentInfo, bytes]]:
    """The decoded bytes of each attachment, in the order of `ParsedMail.attachments`."""
    msg, problems = _parse_bytes(bound_header_section(raw, bounds)[0])
    _, nodes = split_parts(msg, problems, bounds.max_mime_parts)
    result: list[tuple[AttachmentInfo, bytes]] = []
    for node in nodes:
        data = payload_bytes(node.part, problems, node.number)
        result.append((attachment_info(node, data), data))
    return result
