"""What a bounce or delivery report says: which of our mails came back, and why.

A bounce rarely names the case in its own headers; the returned message (a `message/rfc822`
or `text/rfc822-headers` part of a RFC 3464 report, or quoted headers in the text of older
MTAs) carries the Message-ID and subject of the mail the bot sent. Pure, no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email import policy
from email.parser import BytesHeaderParser

from bot.mailin.parse import AttachmentInfo, extract_message_ids, find_case_ids

__all__ = ["ReturnedMail", "delivery_summary", "returned_mail"]

_RETURNED_TYPES = frozenset({"message/rfc822", "text/rfc822-headers", "message/rfc822-headers"})
_TEXT_MESSAGE_ID = re.compile(r"^\s*>?\s*message-id:\s*(.+)$", re.I | re.M)
_TEXT_SUBJECT = re.compile(r"^\s*>?\s*subject:\s*(.+)$", re.I | re.M)
_FIELD = re.compile(rb"^([A-Za-z-]+):[ \t]*(.*(?:\r?\n[ \t].*)*)", re.M)
_MAX_SUMMARY = 300


@dataclass(frozen=True)
class ReturnedMail:
    message_ids: list[str]
    case_ids: list[str]


def _headers(data: bytes) -> tuple[list[str], list[str]]:
    try:
        headers = BytesHeaderParser(policy=policy.compat32).parsebytes(data)
        message_id = str(headers.get("Message-ID") or "")
        subject = str(headers.get("Subject") or "")
    except Exception:  # hostile bytes in a returned header block; nothing to learn then
        return [], []
    return extract_message_ids(message_id), find_case_ids(subject)


def returned_mail(text: str, attachments: list[tuple[AttachmentInfo, bytes]]) -> ReturnedMail:
    """Message-IDs and case IDs of the mail a bounce returns (from parts, else the text)."""
    message_ids: list[str] = []
    case_ids: list[str] = []
    for info, data in attachments:
        if info.content_type in _RETURNED_TYPES:
            ids, cases = _headers(data)
            message_ids += ids
            case_ids += cases
    for match in _TEXT_MESSAGE_ID.finditer(text):
        message_ids += extract_message_ids(match.group(1))
    for match in _TEXT_SUBJECT.finditer(text):
        case_ids += find_case_ids(match.group(1))
    return ReturnedMail(list(dict.fromkeys(message_ids)), list(dict.fromkeys(case_ids)))


def delivery_summary(attachments: list[tuple[AttachmentInfo, bytes]]) -> str | None:
    """E.g. "delivery to sam@x failed: 5.1.1 (smtp; 550 5.1.1 user unknown)", from the
    machine-readable part of a delivery status notification."""
    for info, data in attachments:
        if info.content_type != "message/delivery-status":
            continue
        fields: dict[str, str] = {}
        for match in _FIELD.finditer(data):
            name = match.group(1).decode("ascii", "replace").lower()
            value = re.sub(r"\s+", " ", match.group(2).decode("utf-8", "replace")).strip()
            fields.setdefault(name, value)
        recipient = fields.get("final-recipient") or fields.get("original-recipient") or ""
        recipient = recipient.split(";", 1)[-1].strip() or "the recipient"
        action = fields.get("action", "failed").lower()
        detail = ", ".join(
            part for part in (fields.get("status"), fields.get("diagnostic-code")) if part
        )
        summary = f"delivery to {recipient}: {action}" + (f" ({detail})" if detail else "")
        return summary[:_MAX_SUMMARY]
    return None
