"""Report attachments in the case thread: which part of a mail they come from, which are
posted, how the outbox worker gets their bytes back, and the encrypted media event.

Nothing is copied out of the stored mail: an outbox item names the mail, the layer (the
mail as received, or its decrypted PGP/MIME content) and the attachment's index, and the
worker reads the bytes from the stored raw mail when it sends, checking the SHA-256.
"""

from __future__ import annotations

import asyncio
import logging
import re
from email import policy
from email.message import EmailMessage
from typing import Any, Literal

from bot.mailin.bounds import DEFAULT_BOUNDS, MailBounds
from bot.mailin.parse import AttachmentInfo, NotAMailError, ParsedMail, attachment_payloads
from bot.matrix.posts import defuse_mentions
from bot.outbox.payloads import MediaPost
from bot.pgp.gpg import DecryptResult, Pgp
from storage import mails
from storage.db import Database

__all__ = [
    "AttachmentSource",
    "AttachmentUnavailable",
    "Layer",
    "layer_payloads",
    "media_content",
    "postable",
    "readable_layer",
    "size_text",
]

log = logging.getLogger(__name__)

Layer = Literal["outer", "decrypted"]

# The PGP/MIME machinery, not something the reporter attached.
_PGP_PARTS = frozenset({"application/pgp-signature", "application/pgp-encrypted"})
_KEY_PARTS = frozenset({"application/pgp-keys"})
# Shown inline by clients; anything else (SVG included: it can carry script) is a file.
_RASTER_IMAGES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
# Types a client might render as a document: they go out as plain bytes to download.
_ACTIVE_TYPES = frozenset(
    {
        "text/html",
        "application/xhtml+xml",
        "image/svg+xml",
        "text/xml",
        "application/xml",
        "text/javascript",
        "application/javascript",
        "application/x-javascript",
    }
)
_MIME_TYPE = re.compile(r"[a-z0-9][a-z0-9.+-]{0,63}/[a-z0-9][a-z0-9.+-]{0,126}")


class AttachmentUnavailable(Exception):
    """The stored mail no longer yields the attachment an outbox item names."""


def is_pgp_mime_encrypted(parsed: ParsedMail) -> bool:
    return any(info.content_type == "application/pgp-encrypted" for info in parsed.attachments)


def _serialise(message: EmailMessage) -> bytes | None:
    try:
        return message.as_bytes(policy=policy.default)
    except Exception as exc:  # the generator gives up on some hostile structures
        log.info("decrypted message could not be serialised (%s)", type(exc).__name__)
        return None


def readable_layer(
    raw: bytes, parsed: ParsedMail, result: DecryptResult | None
) -> tuple[Layer, bytes]:
    """The layer whose attachments the team should see, and its bytes.

    A decrypted PGP/MIME mail carries its attachments inside the encryption; any other mail
    (inline PGP included, whose attachments sit beside the encrypted text) outside.
    """
    if (
        result is not None
        and result.decrypted
        and result.message is not None
        and is_pgp_mime_encrypted(parsed)
    ):
        data = _serialise(result.message)
        if data is not None:
            return "decrypted", data
    return "outer", raw


def layer_payloads(
    data: bytes, bounds: MailBounds = DEFAULT_BOUNDS
) -> list[tuple[AttachmentInfo, bytes]]:
    try:
        return attachment_payloads(data, bounds)
    except NotAMailError:
        return []


def postable(info: AttachmentInfo) -> bool:
    """Whether an attachment is the reporter's (not PGP machinery, not a key)."""
    return info.content_type not in _PGP_PARTS | _KEY_PARTS


def listable(info: AttachmentInfo) -> bool:
    return info.content_type not in _PGP_PARTS


def size_text(size: int) -> str:
    if size < 1024:
        return f"{size} bytes"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KiB"
    return f"{size / (1024 * 1024):.1f} MiB"


def display_name(info: AttachmentInfo, index: int) -> str:
    """The name shown and sent as the media event's body: mentions defused, and never
    starting with "!", so not even a file name reads like a command."""
    name = defuse_mentions(info.filename or f"attachment-{index + 1}")
    return "_" + name if name.lstrip().startswith("!") else name


def _safe_type(content_type: str) -> str:
    value = content_type.strip().lower()
    if value in _ACTIVE_TYPES or not _MIME_TYPE.fullmatch(value):
        return "application/octet-stream"
    return value


def media_content(media: MediaPost, file: dict[str, Any]) -> dict[str, Any]:
    """The `m.file`/`m.image` content of an uploaded attachment (without the thread
    relation); `file` is the encrypted file object (url, key, iv, hashes, v)."""
    mimetype = _safe_type(media.content_type)
    name = media.filename
    return {
        "msgtype": "m.image" if mimetype in _RASTER_IMAGES else "m.file",
        "body": name,
        "filename": name,
        "info": {"mimetype": mimetype, "size": media.size},
        "file": {**file, "mimetype": mimetype},
        "m.mentions": {},
    }


class AttachmentSource:
    """Reads an attachment back from the stored mail for the outbox worker."""

    def __init__(self, db: Database, pgp: Pgp, bounds: MailBounds = DEFAULT_BOUNDS) -> None:
        self._db = db
        self._pgp = pgp
        self._bounds = bounds

    async def load(self, media: MediaPost) -> bytes:
        mail_id, index = media.mail_id, media.index
        async with self._db.transaction() as conn:
            raw = await mails.raw_mail(conn, mail_id)
        if raw is None:
            raise AttachmentUnavailable(f"mail {mail_id} is not stored")
        try:
            return await asyncio.to_thread(self._extract, raw, media)
        except AttachmentUnavailable:
            raise
        except Exception as exc:  # gpg or the parser failing on the stored mail
            # Only the type: an exception from the parser may quote the mail.
            name = type(exc).__name__
            log.warning("attachment %d of mail %d unreadable: %s", index, mail_id, name)
            raise AttachmentUnavailable(f"the stored mail could not be read ({name})") from exc

    def _extract(self, raw: bytes, media: MediaPost) -> bytes:
        data = raw
        if media.layer == "decrypted":
            result = self._pgp.decrypt_raw(raw)
            message = result.message if result.decrypted else None
            serialised = _serialise(message) if message is not None else None
            if serialised is None:
                raise AttachmentUnavailable("the stored mail could not be decrypted again")
            data = serialised
        payloads = layer_payloads(data, self._bounds)
        if media.index >= len(payloads):
            raise AttachmentUnavailable(f"the stored mail has no attachment {media.index + 1}")
        info, content = payloads[media.index]
        if info.sha256 != media.sha256:
            raise AttachmentUnavailable("the stored attachment does not match its checksum")
        return content
