"""Reports a colleague forwarded: who really reported, what they wrote, and who forwarded it.

Two shapes arrive. "Forward as attachment" puts the original mail in a `message/rfc822`
part. An inline forward puts the original's header block into the text, as each client
writes it:

* Gmail: "---------- Forwarded message ---------" / "---------- Doorgestuurd bericht ---------"
  then From/Van, Date, Subject, To;
* Thunderbird: "-------- Forwarded Message --------" / "-------- Doorgestuurd bericht --------"
  then Subject/Onderwerp, Date/Datum, From/Van, To/Aan (label and value separated by a tab);
* Outlook: a line of underscores or "-----Original Message-----" /
  "-----Oorspronkelijk bericht-----", then From/Van, Sent/Verzonden, To/Aan, Subject/Onderwerp;
* Apple Mail: "Begin forwarded message:" / "Begin doorgestuurd bericht:".

Outlook writes the same block above the quoted history of a reply, so its forms (and an
attached message) count as a forward only when the subject says so (FW:, Fwd:, Doorst:, WG:)
or, for an attachment, when the subject is empty or the original's. Pure, no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.utils import getaddresses

from bot.mailin.parse import AttachmentInfo, NotAMailError, parse_mail

__all__ = ["ForwardedReport", "detect_forward", "has_forward_prefix"]

_MAX_DEPTH = 5

_FORWARD_PREFIX = re.compile(r"^\s*(?:fwd?|fw|doorst|wg|tr|wtr|rv|enc)\s*(?:\[\d+\])?\s*:", re.I)
_REPLY_PREFIX = re.compile(
    r"^\s*(?:re|antw|aw|sv|fwd?|fw|doorst|wg|tr|wtr)\s*(?:\[\d+\])?\s*:\s*", re.I
)

# (pattern, client, explicit): an explicit marker says "forwarded" by itself.
_MARKERS: list[tuple[re.Pattern[str], str, bool]] = [
    (
        re.compile(r"^-{10,}\s*(?:forwarded message|doorgestuurd bericht)\s*-{8,}$", re.I),
        "Gmail",
        True,
    ),
    (
        re.compile(
            r"^-{2,}\s*(?:forwarded message|doorgestuurd bericht|weitergeleitete nachricht"
            r"|message transféré)\s*-{2,}$",
            re.I,
        ),
        "Thunderbird",
        True,
    ),
    (
        re.compile(r"^begin (?:forwarded message|doorgestuurd bericht)\s*:$", re.I),
        "Apple Mail",
        True,
    ),
    (
        re.compile(r"^-{3,}\s*(?:original message|oorspronkelijk bericht)\s*-{3,}$", re.I),
        "Outlook",
        False,
    ),
    (re.compile(r"^_{10,}$"), "Outlook", False),
]

_LABELS: dict[str, str] = {
    "from": "from",
    "van": "from",
    "von": "from",
    "de": "from",
    "sender": "from",
    "afzender": "from",
    "date": "date",
    "datum": "date",
    "sent": "date",
    "verzonden": "date",
    "verstuurd": "date",
    "gesendet": "date",
    "subject": "subject",
    "onderwerp": "subject",
    "betreff": "subject",
    "objet": "subject",
    "to": "to",
    "aan": "to",
    "an": "to",
    "cc": "cc",
    "reply-to": "reply-to",
    "antwoord aan": "reply-to",
}
_HEADER_LINE = re.compile(r"^\s*\*?([A-Za-z][A-Za-z -]{0,20}?)\s*:\*?\s*(.*)$")
_EMAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_MAILTO = re.compile(r"(?:\[mailto:|<mailto:)[^\]>]*[\]>]", re.I)


@dataclass(frozen=True)
class ForwardedReport:
    """The original report inside a forward."""

    style: str  # "attached message", "Gmail", "Thunderbird", "Outlook", "Apple Mail"
    reporter_address: str | None
    reporter_name: str | None
    subject: str | None
    date: str | None  # as the forward wrote it
    text: str  # the original report
    note: str  # what the forwarder wrote above it


def has_forward_prefix(subject: str) -> bool:
    return _FORWARD_PREFIX.match(subject) is not None


def _bare_subject(subject: str) -> str:
    previous = None
    while previous != subject:
        previous = subject
        subject = _REPLY_PREFIX.sub("", subject).strip()
    return subject.casefold()


def _unquote(lines: list[str]) -> list[str]:
    """Lines with one level of "> " removed, when every non-blank line is quoted."""
    content = [line for line in lines if line.strip()]
    if not content or not all(line.lstrip().startswith(">") for line in content):
        return lines
    out = []
    for line in lines:
        stripped = line.lstrip()
        if stripped.startswith(">"):
            stripped = stripped[1:]
            if stripped.startswith(" "):
                stripped = stripped[1:]
        out.append(stripped)
    return out


def _parse_address(value: str) -> tuple[str | None, str | None]:
    """(address, display name) from a forward's "From:" value in any client's form.

    Seen: `Sam Finder <sam@x>`, `*Sam Finder* <sam@x>` (Gmail's plain-text bold),
    `Sam Finder [mailto:sam@x]` (old Outlook), `Sam Finder <sam@x<mailto:sam@x>>` (Outlook's
    text part of an HTML mail), `sam@x`, and `Sam Finder` without any address.
    """
    value = value.replace("*", "").strip()
    cleaned = _MAILTO.sub("", value).strip()
    pairs = getaddresses([cleaned])
    address = None
    name = None
    for display, spec in pairs:
        if _EMAIL.fullmatch(spec or ""):
            address = spec.lower()
            name = display.strip().strip("\"'") or None
            break
    if address is None:
        found = _EMAIL.search(value)
        if found:
            address = found.group(0).lower()
        name = cleaned.split("<")[0].split("[")[0].strip().strip("\"'") or None
        if name and address and name.lower() == address:
            name = None
    if name is not None and _EMAIL.fullmatch(name):
        name = None
    return address, name


def _header_block(lines: list[str], start: int) -> tuple[dict[str, str], int] | None:
    """The forward's header fields starting at `start` (blank lines before it skipped), and
    the index of the first line after the block; None when there is no usable block."""
    index = start
    while index < len(lines) and not lines[index].strip() and index < start + 3:
        index += 1
    fields: dict[str, str] = {}
    last: str | None = None
    while index < len(lines):
        line = lines[index]
        if not line.strip():
            break
        match = _HEADER_LINE.match(line)
        label = _LABELS.get(match.group(1).strip().lower()) if match else None
        if match and label:
            fields.setdefault(label, match.group(2).strip())
            last = label
        elif last is not None and line[:1] in (" ", "\t"):
            fields[last] = f"{fields[last]} {line.strip()}"  # a folded value
        else:
            break
        index += 1
    if "from" not in fields or not ({"subject", "date"} & fields.keys()):
        return None
    return fields, index


def _inline(subject: str, text: str, depth: int) -> ForwardedReport | None:
    lines = text.replace("\r\n", "\n").split("\n")
    forward_subject = has_forward_prefix(subject)
    for index, raw_line in enumerate(lines):
        line = raw_line.strip().lstrip(">").strip()
        for pattern, client, explicit in _MARKERS:
            if not pattern.match(line):
                continue
            if not explicit and not forward_subject:
                continue
            block = _header_block([part.lstrip(">").lstrip() for part in lines], index + 1)
            if block is None:
                continue
            return _from_block(client, lines, index, block, depth)
        # Outlook without a separator line: the header block itself, right in the text.
        if forward_subject and _LABELS.get(line.split(":", 1)[0].strip("* ").lower()) == "from":
            block = _header_block(lines, index)
            if block is not None and {"date", "subject"} <= block[0].keys():
                return _from_block("Outlook", lines, index, block, depth)
    return None


def _from_block(
    client: str,
    lines: list[str],
    marker: int,
    block: tuple[dict[str, str], int],
    depth: int,
) -> ForwardedReport:
    fields, end = block
    address, name = _parse_address(fields["from"])
    reply_to = _parse_address(fields["reply-to"])[0] if "reply-to" in fields else None
    body = "\n".join(_unquote(lines[end:])).strip("\n")
    note = "\n".join(lines[:marker]).strip()
    found = ForwardedReport(
        style=client,
        reporter_address=reply_to or address,
        reporter_name=name,
        subject=fields.get("subject"),
        date=fields.get("date"),
        text=body,
        note=note,
    )
    return _deeper(found, depth)


def _deeper(found: ForwardedReport, depth: int) -> ForwardedReport:
    """A forward of a forward: the innermost original is the report; the outer note stays."""
    if depth >= _MAX_DEPTH:
        return found
    inner = _inline(found.subject or "", found.text, depth + 1)
    if inner is None:
        return found
    return ForwardedReport(
        style=found.style,
        reporter_address=inner.reporter_address,
        reporter_name=inner.reporter_name,
        subject=inner.subject,
        date=inner.date,
        text=inner.text,
        note="\n\n".join(part for part in (found.note, inner.note) if part),
    )


def _attached(
    subject: str, text: str, attachments: list[tuple[AttachmentInfo, bytes]]
) -> ForwardedReport | None:
    messages = [data for info, data in attachments if info.content_type == "message/rfc822"]
    if len(messages) != 1:
        return None
    try:
        original = parse_mail(messages[0])
    except NotAMailError:
        return None
    same_subject = bool(subject.strip()) and _bare_subject(subject) == _bare_subject(
        original.subject
    )
    if not (has_forward_prefix(subject) or not subject.strip() or same_subject):
        return None
    return ForwardedReport(
        style="attached message",
        reporter_address=original.reply_to or original.from_address,
        reporter_name=original.from_name,
        subject=original.subject or None,
        date=original.date.isoformat() if original.date else None,
        text=original.text,
        note=text.strip(),
    )


def detect_forward(
    subject: str, text: str, attachments: list[tuple[AttachmentInfo, bytes]]
) -> ForwardedReport | None:
    """The original report when this mail forwards one, else None."""
    return _attached(subject, text, attachments) or _inline(subject, text, 0)
