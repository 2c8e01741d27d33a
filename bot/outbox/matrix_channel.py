"""The outbox's Matrix channel: turns a queued post into an event (the thread relation is
known only now) and sends it; attachments and the digest chart are uploaded encrypted."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime
from typing import Any

import aiosqlite

from bot.config import Config
from bot.mailin.attachments import AttachmentSource, AttachmentUnavailable, media_content
from bot.matrix.client import MatrixAdapter, MatrixSendError
from bot.matrix.posts import Post, message_content, post_to_case, txn_id_for
from bot.outbox.payloads import (
    FilePost,
    ImagePost,
    MediaPost,
    Payload,
    Redaction,
    RoomPost,
    RootPost,
    ThreadPost,
    UnsortedPost,
)
from bot.outbox.worker import DeliveryError
from storage import cases, sync_state
from storage.db import Database
from storage.outbox import OutboxItem

log = logging.getLogger(__name__)

# Where the "unsorted" thread is: its first event, and its latest (sync_state keys).
UNSORTED_ROOT = "unsorted_thread_root"
UNSORTED_LAST = "unsorted_thread_last"
UNSORTED_TITLE = (
    "📥 Unsorted mail: automatic or list mail that matched no case. Each one is posted in "
    "this thread; !open <mail-id> turns one into a case."
)

# With the back-off of retry_delay, about ten minutes of trying before an attachment is
# given up.
MEDIA_ATTEMPTS = 15


class MatrixHandler:
    def __init__(
        self,
        config: Config,
        db: Database,
        matrix: MatrixAdapter,
        attachments: AttachmentSource | None = None,
    ) -> None:
        self._config = config
        self._db = db
        self._matrix = matrix
        self._attachments = attachments

    def ready(self) -> bool:
        # Posts for other rooms (the managers' alert in digest_room) go out while the case
        # room is outside the trust boundary; the case room's own wait in send().
        return self._matrix.synced.is_set()

    async def prepare(self, item: OutboxItem, payload: Payload) -> Payload:
        return payload

    async def send(self, item: OutboxItem, payload: Payload) -> str:
        if isinstance(payload, Redaction):
            # Carries no content, so it needs no encrypted room (redactions are never
            # encrypted in Matrix).
            try:
                return await self._matrix.redact(
                    payload.room_id, payload.event_id, payload.reason, txn_id_for(item.idem_key)
                )
            except MatrixSendError as exc:
                raise DeliveryError(str(exc), retryable=exc.retryable) from exc
        thread_root = last = None
        if isinstance(payload, RootPost | ThreadPost | MediaPost | FilePost):
            room_id = self._config.matrix.case_room
            assert item.case_id is not None
            async with self._db.transaction() as conn:
                case = await cases.get_case(conn, item.case_id)
            if case is None:
                raise DeliveryError(f"case {item.case_id} does not exist", retryable=False)
            if not isinstance(payload, RootPost):
                if case.thread_root_event_id is None:
                    raise DeliveryError("the case thread is not posted yet", retryable=True)
                thread_root, last = case.thread_root_event_id, case.thread_last_event_id
        elif isinstance(payload, UnsortedPost):
            room_id = self._config.matrix.case_room
            async with self._db.transaction() as conn:
                thread_root = await sync_state.get_value(conn, UNSORTED_ROOT)
                last = await sync_state.get_value(conn, UNSORTED_LAST)
            if thread_root is None:
                payload = UnsortedPost(
                    f"{UNSORTED_TITLE}\n\n{payload.body}",
                    f"<p><strong>{UNSORTED_TITLE}</strong></p>{payload.html}",
                )
        elif isinstance(payload, RoomPost | ImagePost):
            room_id = payload.room_id
            thread_root = payload.thread_root if isinstance(payload, RoomPost) else None
        else:
            raise DeliveryError(f"a {type(payload).__name__} is not a Matrix post", retryable=False)
        if room_id == self._config.matrix.case_room and not self._matrix.case_room_ready.is_set():
            # Kicked, or the room opened up (bot/policy/room_trust.py): the post waits, and
            # is made due at once when the room is safe again (bot/matrix/case_room_guard.py).
            raise DeliveryError("the case room is not safe now: waiting", retryable=True)
        if not self._matrix.room_is_encrypted(room_id):
            payload = self._for_unencrypted_room(room_id, payload)
        if isinstance(payload, ImagePost):
            return await self._send_image(room_id, payload, item.idem_key)
        if isinstance(payload, MediaPost):
            return await self._send_media(room_id, item, payload, thread_root, last)
        if isinstance(payload, FilePost):
            return await self._send_file(room_id, item, payload, thread_root, last)
        reply_to = None if isinstance(payload, RootPost | UnsortedPost) else payload.reply_to
        mentions = [] if isinstance(payload, RootPost | UnsortedPost) else list(payload.mentions)
        content = message_content(
            payload.body,
            payload.html,
            thread_root=thread_root,
            reply_to=reply_to,
            last_in_thread=last,
            mentions=mentions,
        )
        try:
            return await self._matrix.send(room_id, content, txn_id_for(item.idem_key))
        except MatrixSendError as exc:
            raise DeliveryError(str(exc), retryable=exc.retryable) from exc

    def _for_unencrypted_room(
        self,
        room_id: str,
        payload: RootPost | ThreadPost | MediaPost | RoomPost | ImagePost | FilePost | UnsortedPost,
    ) -> RoomPost:
        """Posts for digest_room carry a variant without report content (deadline warnings,
        the digest) that may go into a joined room that is not end-to-end encrypted; a
        chart is never sent there; everything else waits for an encrypted room."""
        joined = self._matrix.is_joined(room_id)
        if joined and isinstance(payload, ImagePost):
            raise DeliveryError(
                f"{room_id} is not end-to-end encrypted: the chart is not sent", retryable=False
            )
        plain = payload.unencrypted if isinstance(payload, RoomPost) else None
        if not joined or plain is None or not isinstance(payload, RoomPost):
            raise DeliveryError(f"{room_id} is not an encrypted room I am in", retryable=True)
        return replace(payload, body=plain.body, html=plain.html)

    async def _send_image(self, room_id: str, image: ImagePost, idem_key: str) -> str:
        """Upload the image encrypted, then send the m.image event that carries its key."""
        try:
            file = await self._matrix.upload_encrypted(image.data, image.mimetype, image.filename)
            content = {
                "msgtype": "m.image",
                "body": image.body,
                "filename": image.filename,
                "info": {
                    "mimetype": image.mimetype,
                    "size": len(image.data),
                    "w": image.width,
                    "h": image.height,
                },
                "file": file,
                "m.mentions": {},
            }
            # A crash between upload and send uploads again on retry: an orphaned blob of
            # ciphertext on the media server, never a second message (same txn_id).
            return await self._matrix.send(room_id, content, txn_id_for(idem_key))
        except MatrixSendError as exc:
            raise DeliveryError(str(exc), retryable=exc.retryable) from exc

    async def _send_media(
        self,
        room_id: str,
        item: OutboxItem,
        media: MediaPost,
        thread_root: str | None,
        last: str | None,
    ) -> str:
        """A report's attachment, read back from the stored mail (bot/mailin/attachments.py),
        uploaded encrypted and sent into the case thread.

        Unlike a text post, an attachment that keeps failing is given up (and the thread
        told): the case's later posts wait behind it, and the mail is stored anyway.
        """
        if self._attachments is None:
            raise DeliveryError("no attachment source configured", retryable=False)
        try:
            data = await self._attachments.load(media)
        except AttachmentUnavailable as exc:
            raise DeliveryError(str(exc), retryable=False) from exc
        relation = message_content(
            "", "", thread_root=thread_root, reply_to=None, last_in_thread=last, mentions=[]
        )["m.relates_to"]
        try:
            # Uploaded again on a retry (an orphaned blob of ciphertext); the same txn_id
            # keeps the event single.
            file = await self._matrix.upload_encrypted(
                data, "application/octet-stream", media.filename
            )
            content: dict[str, Any] = {**media_content(media, file), "m.relates_to": relation}
            return await self._matrix.send(room_id, content, txn_id_for(item.idem_key))
        except MatrixSendError as exc:
            too_large = "M_TOO_LARGE" in str(exc)
            retryable = exc.retryable and not too_large and item.attempts < MEDIA_ATTEMPTS
            raise DeliveryError(str(exc), retryable=retryable) from exc

    async def _send_file(
        self,
        room_id: str,
        item: OutboxItem,
        file_post: FilePost,
        thread_root: str | None,
        last: str | None,
    ) -> str:
        """A file the bot made, uploaded encrypted and sent into the case thread."""
        relation = message_content(
            "", "", thread_root=thread_root, reply_to=None, last_in_thread=last, mentions=[]
        )["m.relates_to"]
        try:
            file = await self._matrix.upload_encrypted(
                file_post.data, file_post.mimetype, file_post.filename
            )
            content: dict[str, Any] = {
                "msgtype": "m.file",
                "body": file_post.filename,
                "filename": file_post.filename,
                "info": {"mimetype": file_post.mimetype, "size": len(file_post.data)},
                "file": file,
                "m.mentions": {},
                "m.relates_to": relation,
            }
            return await self._matrix.send(room_id, content, txn_id_for(item.idem_key))
        except MatrixSendError as exc:
            raise DeliveryError(str(exc), retryable=exc.retryable) from exc

    async def after_sent(
        self,
        conn: aiosqlite.Connection,
        item: OutboxItem,
        payload: Payload,
        result: str,
        now: datetime,
    ) -> None:
        if isinstance(payload, UnsortedPost):
            if await sync_state.get_value(conn, UNSORTED_ROOT) is None:
                await sync_state.set_value(conn, UNSORTED_ROOT, result)
            await sync_state.set_value(conn, UNSORTED_LAST, result)
        if item.case_id is not None and isinstance(
            payload, RootPost | ThreadPost | MediaPost | FilePost
        ):
            root = result if isinstance(payload, RootPost) else None
            await cases.set_thread_events(conn, item.case_id, last=result, root=root)

    async def after_failure(
        self,
        conn: aiosqlite.Connection,
        item: OutboxItem,
        payload: Payload,
        error: DeliveryError,
        now: datetime,
    ) -> None:
        log.warning("Matrix post %s failed: %s", item.id, error)
        if isinstance(payload, MediaPost) and item.case_id is not None and not error.retryable:
            text = f"❌ The attachment {payload.filename} could not be posted: {error}"
            await post_to_case(
                conn, item.case_id, Post.text(text), idem_key=f"media-failed:{item.id}", now=now
            )
