"""The MIME structure of a mail: which part is the body and which are attachments, their
decoded bytes, safe file names and checksums, and the body as readable text."""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from email import policy
from email.errors import MessageDefect
from email.message import EmailMessage, Message
from typing import Any

from pydantic import BaseModel

from bot.mailin.decoding import clean_body, decode_text, one_line, safe, unflow
from bot.mailin.header_fields import raw_items
from bot.mailin.html_text import html_to_text

_log = logging.getLogger(__name__)

# Beyond this length a file name is not a real one but an attack on whatever shows it.
_MAX_FILENAME = 200


class AttachmentInfo(BaseModel):
    """One non-body part; the decoded bytes come from `attachment_payloads`."""

    filename: str | None = None
    content_type: str
    size: int
    sha256: str


def part_content_type(part: Message) -> str:
    return safe(lambda: part.get_content_type(), "application/octet-stream")


def _is_attachment(part: Message) -> bool:
    return safe(lambda: part.get_content_disposition() == "attachment", False)


@dataclass(frozen=True, eq=False)
class MimeNode:
    """One MIME part with what we need to know about it, read once: every header access
    into the email package re-parses the field."""

    number: int
    part: Message
    content_type: str
    # Whether the part holds sub-parts (a list payload), even when we do not descend.
    has_subparts: bool
    ancestors: tuple[MimeNode, ...]

    @property
    def is_message(self) -> bool:
        return self.content_type.startswith("message/")

    @property
    def is_broken_multipart(self) -> bool:
        """A multipart that lost its structure (no or wrong boundary)."""
        return self.content_type.startswith("multipart/") and not self.has_subparts


def mime_nodes(msg: Message, max_parts: int | None = None) -> list[MimeNode]:
    """Every part in document order, numbered from 1. message/* parts are not descended
    into, so a forwarded mail counts as one attachment and its text never becomes ours.

    Iterative, because a hostile mail may nest parts deeper than Python's recursion limit.
    With `max_parts`, the walk stops after that many parts.
    """
    nodes: list[MimeNode] = []
    stack: list[tuple[Message, tuple[MimeNode, ...]]] = [(msg, ())]
    while stack and (max_parts is None or len(nodes) < max_parts):
        part, ancestors = stack.pop()
        payload = safe(part.get_payload, None)
        node = MimeNode(
            number=len(nodes) + 1,
            part=part,
            content_type=part_content_type(part),
            has_subparts=isinstance(payload, list),
            ancestors=ancestors,
        )
        nodes.append(node)
        if isinstance(payload, list) and not node.is_message:
            children = [child for child in payload if isinstance(child, Message)]
            stack.extend((child, (*ancestors, node)) for child in reversed(children))
    return nodes


def _find_body(msg: Message, nodes: list[MimeNode], problems: list[str]) -> Message | None:
    if isinstance(msg, EmailMessage):
        try:
            return msg.get_body(preferencelist=("plain", "html"))
        except Exception as exc:  # same reason as in safe
            _log.debug("get_body raised %s", type(exc).__name__)
            problems.append("malformed MIME structure; body found by a simpler search")
    # A message parsed with another policy, or one that broke get_body: the first inline
    # text/plain, else the first inline text/html.
    for wanted in ("text/plain", "text/html"):
        for node in nodes:
            if node.content_type == wanted and not _is_attachment(node.part):
                return node.part
    return None


def split_parts(
    msg: Message, problems: list[str], max_parts: int | None = None
) -> tuple[MimeNode | None, list[MimeNode]]:
    """(body part, attachments) of a message; the root of a broken multipart is neither.

    Only the first `max_parts` parts are read (noted in `problems` when there are more)."""
    nodes = mime_nodes(msg, None if max_parts is None else max_parts + 1)
    if max_parts is not None and len(nodes) > max_parts:
        nodes = nodes[:max_parts]
        problems.append(
            f"more than {max_parts} MIME parts; only the first {max_parts} were read "
            "(limits.max_mime_parts)"
        )
    body_part = _find_body(msg, nodes, problems)
    body = next((node for node in nodes if node.part is body_part), None)
    alternatives: set[int] = set()
    if body is not None:
        alternatives = {
            ancestor.number
            for ancestor in body.ancestors
            if ancestor.content_type == "multipart/alternative"
        }
    attachments: list[MimeNode] = []
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


def payload_bytes(part: Message, problems: list[str], number: int) -> bytes:
    """The decoded content of a leaf part; a message/* part serialised as a .eml."""
    payload = safe(part.get_payload, None)
    if isinstance(payload, list):
        chunks = [serialise(child) for child in payload if isinstance(child, Message)]
        return b"\n".join(chunks)
    data = safe(lambda: part.get_payload(decode=True), None)
    if isinstance(data, bytes):
        return data
    problems.append(f"could not decode the content of part {number}")
    return b""


# Re-serialise a forwarded mail the way it arrived: no refolding of long header lines.
_SERIALISE_POLICY = policy.compat32.clone(max_line_length=0)


def serialise(msg: Message) -> bytes:
    data = safe(lambda: msg.as_bytes(policy=_SERIALISE_POLICY), None)
    if data is not None:
        return data
    # The generator gave up on something; keep the header fields and whatever text the
    # payload has, which is still useful to a human.
    headers = "".join(f"{key}: {value}\n" for key, value in raw_items(msg))
    payload = safe(lambda: msg.get_payload(), None)
    body = payload if isinstance(payload, str) else ""
    return (headers + "\n" + body).encode("utf-8", "surrogateescape")


def _clean_filename(name: str | None) -> str | None:
    if not name:
        return None
    name = one_line(name)
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


def _filename(part: Message) -> str | None:
    """The part's file name, RFC 2231 and RFC 2047 ("=?utf-8?q?...?=") decoded."""
    name = safe(part.get_filename, None)
    if name and "=?" in name:
        encoded = name
        name = safe(lambda: str(policy.default.header_factory("x-filename", encoded)), name)
    return name


def attachment_info(node: MimeNode, data: bytes) -> AttachmentInfo:
    content_type = node.content_type
    filename = _clean_filename(_filename(node.part))
    if filename is None and content_type == "message/rfc822":
        filename = "forwarded.eml"
    return AttachmentInfo(
        filename=filename,
        content_type=one_line(content_type),
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )


def body_text(node: MimeNode, problems: list[str]) -> tuple[str, bool]:
    """(readable text, was HTML) of the body part."""
    part, number = node.part, node.number
    data = payload_bytes(part, problems, number)
    charset = safe(lambda: part.get_content_charset(), None)
    declared = one_line(str(charset)).strip("\"' ").lower() if charset else None
    text = clean_body(decode_text(data, declared, number, problems))
    if node.content_type == "text/html":
        return html_to_text(text), True
    raw_params: list[tuple[str, Any]] = safe(lambda: part.get_params(failobj=[]) or [], [])
    params = {str(key).lower(): str(value).lower() for key, value in raw_params}
    # Inline PGP keeps its lines as sent: the signature covers the trailing spaces that
    # unflowing would remove.
    if params.get("format") == "flowed" and "-----BEGIN PGP" not in text:
        text = unflow(text, params.get("delsp") == "yes")
    return text, False


def defect_names(msg: Message) -> list[str]:
    names: list[str] = []
    stack = [msg]
    while stack:
        part = stack.pop()
        defects: list[MessageDefect] = safe(lambda: list(part.defects), [])  # noqa: B023
        for defect in defects:
            name = type(defect).__name__
            if name not in names:
                names.append(name)
        payload = safe(part.get_payload, None)
        if isinstance(payload, list):
            stack.extend(child for child in reversed(payload) if isinstance(child, Message))
    return names
