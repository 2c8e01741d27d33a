"""What the outbox holds: one type per kind of queued item, and the one place they are turned
into the stored JSON and back (the worker dispatches on the type, never on a string).

The JSON keeps the shape rows have had since the first schema, so a database written by an
older version still parses; `decode` refuses anything else with a `PayloadError`.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import aiosqlite

from bot.mailout.compose import KINDS, ComposedMail
from bot.mailout.sealing import Sealed
from storage import outbox
from storage.outbox import Channel

# "digest" is the managers' mail, "ibd" the share with the IBD (bot/mailout/ibd.py), "alert"
# the managers' mail when the case room is no longer safe (bot/matrix/case_room_guard.py); the
# others are the reporter mail templates.
MAIL_KINDS: tuple[str, ...] = (*KINDS, "digest", "ibd", "alert")


class PayloadError(ValueError):
    """A stored payload that is not one of the kinds below (or not JSON at all)."""


@dataclass(frozen=True)
class PlainVariant:
    """What may go into a room that turns out not to be end-to-end encrypted."""

    body: str
    html: str


@dataclass(frozen=True)
class RootPost:
    """A case's thread root in case_room."""

    body: str
    html: str


@dataclass(frozen=True)
class ThreadPost:
    """A message in a case's thread; `reply_to`: the command event it answers."""

    body: str
    html: str
    reply_to: str | None = None
    mentions: tuple[str, ...] = ()


@dataclass(frozen=True)
class RoomPost:
    """A message that belongs to no case thread (help, refusals, escalations, the digest)."""

    room_id: str
    body: str
    html: str
    thread_root: str | None = None
    reply_to: str | None = None
    mentions: tuple[str, ...] = ()
    unencrypted: PlainVariant | None = None


@dataclass(frozen=True)
class MediaPost:
    """A report's attachment, read back from the stored mail when it is sent."""

    mail_id: int
    layer: str  # "outer" or "decrypted": which layer of the stored mail holds it
    index: int
    sha256: str
    filename: str
    content_type: str
    size: int


@dataclass(frozen=True)
class ImagePost:
    """An image carried in the payload itself (the digest's chart), uploaded encrypted."""

    room_id: str
    body: str
    filename: str
    mimetype: str
    data: bytes
    width: int
    height: int


@dataclass(frozen=True)
class Redaction:
    """Redact one of the bot's own events (a deleted case's thread): sent once, with a
    stable txn_id like every post."""

    room_id: str
    event_id: str
    reason: str


@dataclass(frozen=True)
class FilePost:
    """A file the bot made (an advisory), carried in the payload itself, uploaded encrypted
    and posted into the case's thread."""

    body: str  # what the thread shows for it
    filename: str
    mimetype: str
    data: bytes


@dataclass(frozen=True)
class Mail:
    """One mail. Queued either unsealed (`composed`: signed, and encrypted when a key is
    known, by the outbox worker before the first send) or already sealed; once sealed the
    same bytes are sent on every attempt."""

    kind: str  # one of MAIL_KINDS
    label: str  # how the thread names it: "receipt confirmation", "digest", ...
    from_address: str
    to_address: str
    message_id: str
    composed: ComposedMail | None = None
    sealed: Sealed | None = None
    # The fingerprint the mail must be encrypted to (the IBD's key): never sent signed only.
    encrypt_to: str | None = None
    # The Subject outside the encryption, when the real one must not travel in clear
    # (bot/mailout/sealing.py, outer_subject); None: the real one.
    hidden_subject: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in MAIL_KINDS:
            raise PayloadError(f"unknown mail kind {self.kind!r}")
        if (self.composed is None) == (self.sealed is None):
            raise PayloadError("a mail is queued either unsealed or sealed")

    def with_sealed(self, sealed: Sealed) -> Mail:
        return replace(self, composed=None, sealed=sealed, hidden_subject=None)


@dataclass(frozen=True)
class UnsortedPost:
    """A mail that matched no case and looked automatic, in the one "unsorted" thread of
    case_room: the first such post starts that thread, every later one joins it."""

    body: str
    html: str


MatrixPayload = (
    RootPost | ThreadPost | RoomPost | MediaPost | ImagePost | Redaction | FilePost | UnsortedPost
)
Payload = MatrixPayload | Mail


def channel_of(payload: Payload) -> Channel:
    return "mail" if isinstance(payload, Mail) else "matrix"


async def enqueue(
    conn: aiosqlite.Connection,
    payload: Payload,
    *,
    idem_key: str,
    case_id: str | None,
    now: datetime,
    priority: int = 1,
) -> bool:
    """Queue a typed payload (see storage.outbox.enqueue); True when it was new."""
    return await outbox.enqueue(
        conn,
        idem_key=idem_key,
        channel=channel_of(payload),
        case_id=case_id,
        payload=encode(payload),
        now=now,
        priority=priority,
    )


# ------------------------------------------------------------------------------ encoding


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def to_json(payload: Payload) -> dict[str, Any]:
    """The stored JSON object of a payload."""
    match payload:
        case RootPost(body, html):
            return {"kind": "root", "body": body, "html": html, "mentions": []}
        case ThreadPost(body, html, reply_to, mentions):
            return {
                "kind": "thread",
                "body": body,
                "html": html,
                "reply_to": reply_to,
                "mentions": list(mentions),
            }
        case RoomPost(room_id, body, html, thread_root, reply_to, mentions, unencrypted):
            data: dict[str, Any] = {
                "kind": "room",
                "room_id": room_id,
                "body": body,
                "html": html,
                "thread_root": thread_root,
                "reply_to": reply_to,
                "mentions": list(mentions),
            }
            if unencrypted is not None:
                data["unencrypted"] = {"body": unencrypted.body, "html": unencrypted.html}
            return data
        case UnsortedPost(body, html):
            return {"kind": "unsorted", "body": body, "html": html}
        case MediaPost():
            return {
                "kind": "media",
                "mail_id": payload.mail_id,
                "layer": payload.layer,
                "index": payload.index,
                "sha256": payload.sha256,
                "filename": payload.filename,
                "content_type": payload.content_type,
                "size": payload.size,
            }
        case ImagePost():
            return {
                "kind": "image",
                "room_id": payload.room_id,
                "body": payload.body,
                "filename": payload.filename,
                "mimetype": payload.mimetype,
                "data": _b64(payload.data),
                "width": payload.width,
                "height": payload.height,
                "thread_root": None,
                "reply_to": None,
                "mentions": [],
            }
        case Redaction(room_id, event_id, reason):
            return {
                "kind": "redaction",
                "room_id": room_id,
                "event_id": event_id,
                "reason": reason,
            }
        case FilePost():
            return {
                "kind": "file",
                "body": payload.body,
                "filename": payload.filename,
                "mimetype": payload.mimetype,
                "data": _b64(payload.data),
            }
        case Mail():
            data = {
                "kind": payload.kind,
                "label": payload.label,
                "from": payload.from_address,
                "to": payload.to_address,
                "message_id": payload.message_id,
            }
            if payload.sealed is not None:
                data["raw"] = _b64(payload.sealed.raw)
                data["protection"] = payload.sealed.protection
            elif payload.composed is not None:
                data["unsealed"] = {
                    "headers": [list(header) for header in payload.composed.headers],
                    "body": payload.composed.body,
                }
                if payload.hidden_subject is not None:
                    data["hidden_subject"] = payload.hidden_subject
            if payload.encrypt_to is not None:
                data["encrypt_to"] = payload.encrypt_to
            return data


def encode(payload: Payload) -> str:
    return json.dumps(to_json(payload))


#: What stays of a sent item's payload once its case's data is deleted
#: (storage/retention.py): no kind the worker can send, should the row ever be read again.
DELETED_PAYLOAD = json.dumps({"kind": "deleted"})


# ------------------------------------------------------------------------------ decoding


class _Fields:
    """Typed access to a stored JSON object; any missing or mistyped field is a
    PayloadError naming it, never a KeyError deep in the worker."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def text(self, name: str) -> str:
        value = self._data.get(name)
        if not isinstance(value, str):
            raise PayloadError(f"field {name!r} is missing or not text")
        return value

    def optional_text(self, name: str) -> str | None:
        value = self._data.get(name)
        if value is not None and not isinstance(value, str):
            raise PayloadError(f"field {name!r} is not text")
        return value

    def number(self, name: str) -> int:
        value = self._data.get(name)
        if not isinstance(value, int) or isinstance(value, bool):
            raise PayloadError(f"field {name!r} is missing or not a whole number")
        return value

    def texts(self, name: str) -> tuple[str, ...]:
        value = self._data.get(name) or []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise PayloadError(f"field {name!r} is not a list of text")
        return tuple(value)

    def data(self, name: str) -> bytes:
        try:
            return base64.b64decode(self.text(name), validate=True)
        except binascii.Error as exc:
            raise PayloadError(f"field {name!r} is not base64") from exc

    def has(self, name: str) -> bool:
        return self._data.get(name) is not None

    def composed(self, name: str) -> ComposedMail:
        value = self._data.get(name)
        if not isinstance(value, dict):
            raise PayloadError(f"field {name!r} is missing or not an object")
        headers = value.get("headers")
        if not isinstance(headers, list) or not all(
            isinstance(h, list) and len(h) == 2 and all(isinstance(v, str) for v in h)
            for h in headers
        ):
            raise PayloadError(f"field {name!r} has no list of [name, value] headers")
        return ComposedMail(tuple((h[0], h[1]) for h in headers), _Fields(value).text("body"))

    def variant(self, name: str) -> PlainVariant | None:
        value = self._data.get(name)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise PayloadError(f"field {name!r} is not an object")
        inner = _Fields(value)
        return PlainVariant(inner.text("body"), inner.text("html"))


def from_json(data: object) -> Payload:
    """The payload a stored JSON object describes; PayloadError when it describes none."""
    if not isinstance(data, dict):
        raise PayloadError("the payload is not a JSON object")
    f = _Fields(data)
    kind = f.text("kind")
    if kind == "root":
        return RootPost(f.text("body"), f.text("html"))
    if kind == "thread":
        return ThreadPost(
            f.text("body"), f.text("html"), f.optional_text("reply_to"), f.texts("mentions")
        )
    if kind == "room":
        return RoomPost(
            room_id=f.text("room_id"),
            body=f.text("body"),
            html=f.text("html"),
            thread_root=f.optional_text("thread_root"),
            reply_to=f.optional_text("reply_to"),
            mentions=f.texts("mentions"),
            unencrypted=f.variant("unencrypted"),
        )
    if kind == "unsorted":
        return UnsortedPost(f.text("body"), f.text("html"))
    if kind == "media":
        return MediaPost(
            mail_id=f.number("mail_id"),
            layer=f.text("layer"),
            index=f.number("index"),
            sha256=f.text("sha256"),
            filename=f.text("filename"),
            content_type=f.text("content_type"),
            size=f.number("size"),
        )
    if kind == "image":
        return ImagePost(
            room_id=f.text("room_id"),
            body=f.text("body"),
            filename=f.text("filename"),
            mimetype=f.text("mimetype"),
            data=f.data("data"),
            width=f.number("width"),
            height=f.number("height"),
        )
    if kind == "redaction":
        return Redaction(f.text("room_id"), f.text("event_id"), f.text("reason"))
    if kind == "file":
        return FilePost(
            body=f.text("body"),
            filename=f.text("filename"),
            mimetype=f.text("mimetype"),
            data=f.data("data"),
        )
    if kind in MAIL_KINDS:
        # Rows queued before sealing moved to the worker carry "raw" and "protection".
        sealed = Sealed(f.data("raw"), f.text("protection")) if f.has("raw") else None
        return Mail(
            kind=kind,
            label=f.text("label"),
            from_address=f.text("from"),
            to_address=f.text("to"),
            message_id=f.text("message_id"),
            composed=None if sealed is not None else f.composed("unsealed"),
            sealed=sealed,
            encrypt_to=f.optional_text("encrypt_to"),
            hidden_subject=f.text("hidden_subject") if f.has("hidden_subject") else None,
        )
    raise PayloadError(f"unknown payload kind {kind!r}")


def decode(text: str) -> Payload:
    """Parse a stored payload; PayloadError (with a reason fit for last_error) when it is
    not one this version knows."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, TypeError) as exc:
        raise PayloadError(f"the payload is not JSON ({exc})") from exc
    return from_json(data)
