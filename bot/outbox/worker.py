"""The outbox sender: delivers queued Matrix posts and mails, marks them sent, retries.

Each channel runs its own loop, so a mail server that is down never holds up the room.
Within a case, Matrix posts go out in the order they were queued (root first).
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

import aiosqlite

from bot.config import Config
from bot.failpoints import Failpoints
from bot.mailin.attachments import AttachmentSource, AttachmentUnavailable, media_content
from bot.mailout.reporter import SmtpDeliveryError, SmtpSender, retry_delay
from bot.matrix.client import MatrixAdapter, MatrixSendError
from bot.matrix.posts import Post, message_content, post_to_case, txn_id_for
from bot.policy.clock import Clock
from storage import cases, outbox
from storage.db import Database
from storage.outbox import Channel, OutboxItem

log = logging.getLogger(__name__)

IDLE_WAIT_SECONDS = 30.0
# With the back-off of retry_delay, about ten minutes of trying before an attachment is
# given up.
MEDIA_ATTEMPTS = 15


class DeliveryError(Exception):
    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class ChannelHandler(Protocol):
    def ready(self) -> bool: ...

    async def send(self, item: OutboxItem) -> str: ...

    async def after_sent(
        self, conn: aiosqlite.Connection, item: OutboxItem, result: str, now: datetime
    ) -> None: ...

    async def after_failure(
        self, conn: aiosqlite.Connection, item: OutboxItem, error: DeliveryError, now: datetime
    ) -> None: ...


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
        return self._matrix.case_room_ready.is_set()

    async def send(self, item: OutboxItem) -> str:
        payload = item.payload
        thread_root = last = None
        if payload["kind"] in ("root", "thread", "media"):
            room_id = self._config.matrix.case_room
            assert item.case_id is not None
            async with self._db.transaction() as conn:
                case = await cases.get_case(conn, item.case_id)
            if case is None:
                raise DeliveryError(f"case {item.case_id} does not exist", retryable=False)
            if payload["kind"] in ("thread", "media"):
                if case.thread_root_event_id is None:
                    raise DeliveryError("the case thread is not posted yet", retryable=True)
                thread_root, last = case.thread_root_event_id, case.thread_last_event_id
        else:
            room_id = payload["room_id"]
            thread_root = payload.get("thread_root")
        if not self._matrix.room_is_encrypted(room_id):
            payload = self._for_unencrypted_room(room_id, payload)
        if payload["kind"] == "image":
            return await self._send_image(room_id, payload, item.idem_key)
        if payload["kind"] == "media":
            return await self._send_media(room_id, item, thread_root, last)
        content = message_content(
            payload["body"],
            payload["html"],
            thread_root=thread_root,
            reply_to=payload.get("reply_to"),
            last_in_thread=last,
            mentions=payload.get("mentions") or [],
        )
        try:
            return await self._matrix.send(room_id, content, txn_id_for(item.idem_key))
        except MatrixSendError as exc:
            raise DeliveryError(str(exc), retryable=exc.retryable) from exc

    def _for_unencrypted_room(self, room_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Posts for digest_room carry a variant without report content (deadline warnings,
        the digest) that may go into a joined room that is not end-to-end encrypted; a
        chart is never sent there; everything else waits for an encrypted room."""
        joined = self._matrix.is_joined(room_id)
        if joined and payload["kind"] == "image":
            raise DeliveryError(
                f"{room_id} is not end-to-end encrypted: the chart is not sent", retryable=False
            )
        plain = payload.get("unencrypted")
        if not joined or not isinstance(plain, dict):
            raise DeliveryError(f"{room_id} is not an encrypted room I am in", retryable=True)
        return {**payload, **plain}

    async def _send_image(self, room_id: str, payload: dict[str, Any], idem_key: str) -> str:
        """Upload the image encrypted, then send the m.image event that carries its key."""
        data = base64.b64decode(payload["data"])
        try:
            file = await self._matrix.upload_encrypted(
                data, payload["mimetype"], payload["filename"]
            )
            content = {
                "msgtype": "m.image",
                "body": payload["body"],
                "filename": payload["filename"],
                "info": {
                    "mimetype": payload["mimetype"],
                    "size": len(data),
                    "w": payload["width"],
                    "h": payload["height"],
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
        self, room_id: str, item: OutboxItem, thread_root: str | None, last: str | None
    ) -> str:
        """A report's attachment, read back from the stored mail (bot/mailin/attachments.py),
        uploaded encrypted and sent into the case thread.

        Unlike a text post, an attachment that keeps failing is given up (and the thread
        told): the case's later posts wait behind it, and the mail is stored anyway.
        """
        payload = item.payload
        if self._attachments is None:
            raise DeliveryError("no attachment source configured", retryable=False)
        try:
            data = await self._attachments.load(payload)
        except AttachmentUnavailable as exc:
            raise DeliveryError(str(exc), retryable=False) from exc
        relation = message_content(
            "", "", thread_root=thread_root, reply_to=None, last_in_thread=last, mentions=[]
        )["m.relates_to"]
        try:
            # Uploaded again on a retry (an orphaned blob of ciphertext); the same txn_id
            # keeps the event single.
            file = await self._matrix.upload_encrypted(
                data, "application/octet-stream", str(payload["filename"])
            )
            content = {**media_content(payload, file), "m.relates_to": relation}
            return await self._matrix.send(room_id, content, txn_id_for(item.idem_key))
        except MatrixSendError as exc:
            too_large = "M_TOO_LARGE" in str(exc)
            retryable = exc.retryable and not too_large and item.attempts < MEDIA_ATTEMPTS
            raise DeliveryError(str(exc), retryable=retryable) from exc

    async def after_sent(
        self, conn: aiosqlite.Connection, item: OutboxItem, result: str, now: datetime
    ) -> None:
        kind = item.payload["kind"]
        if item.case_id is not None and kind in ("root", "thread", "media"):
            await cases.set_thread_events(
                conn, item.case_id, last=result, root=result if kind == "root" else None
            )

    async def after_failure(
        self, conn: aiosqlite.Connection, item: OutboxItem, error: DeliveryError, now: datetime
    ) -> None:
        log.warning("Matrix post %s failed: %s", item.id, error)
        if item.payload["kind"] == "media" and item.case_id is not None and not error.retryable:
            text = f"❌ The attachment {item.payload['filename']} could not be posted: {error}"
            await post_to_case(
                conn, item.case_id, Post.text(text), idem_key=f"media-failed:{item.id}", now=now
            )


class MailHandler:
    def __init__(self, smtp: SmtpSender) -> None:
        self._smtp = smtp

    def ready(self) -> bool:
        return True

    async def send(self, item: OutboxItem) -> str:
        payload = item.payload
        try:
            await self._smtp.deliver(
                payload["from"], payload["to"], base64.b64decode(payload["raw"])
            )
        except SmtpDeliveryError as exc:
            raise DeliveryError(str(exc), retryable=exc.retryable) from exc
        return str(payload["message_id"])

    async def after_sent(
        self, conn: aiosqlite.Connection, item: OutboxItem, result: str, now: datetime
    ) -> None:
        if item.case_id is None:
            return
        payload = item.payload
        text = f"✉️ The {payload['label']} mail went to {payload['to']} ({payload['protection']})."
        await post_to_case(conn, item.case_id, Post.text(text), idem_key=f"sent:{item.id}", now=now)

    async def after_failure(
        self, conn: aiosqlite.Connection, item: OutboxItem, error: DeliveryError, now: datetime
    ) -> None:
        log.warning(
            "mail %s not delivered (attempt %d): %s",
            item.id,
            item.attempts + 1,
            type(error.__cause__).__name__ if error.__cause__ else "error",
        )
        if item.case_id is None:
            return
        label = item.payload["label"]
        if not error.retryable:
            text = f"❌ The {label} mail could not be delivered and will not be retried: {error}"
            key = f"mail-failed:{item.id}"
        elif item.attempts == 0:
            text = (
                f"⏳ The {label} mail could not be sent yet ({error}). It stays queued and "
                "goes out once, as soon as the mail server accepts it."
            )
            key = f"mail-delayed:{item.id}"
        else:
            return
        await post_to_case(conn, item.case_id, Post.text(text), idem_key=key, now=now)


class OutboxWorker:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        failpoints: Failpoints,
        handlers: Mapping[Channel, ChannelHandler],
    ) -> None:
        self._db = db
        self._clock = clock
        self._failpoints = failpoints
        self._handlers = handlers
        self._wake = {channel: asyncio.Event() for channel in handlers}

    def wake(self) -> None:
        for event in self._wake.values():
            event.set()

    async def run(self, stop: asyncio.Event) -> None:
        await asyncio.gather(*(self._run_channel(channel, stop) for channel in self._handlers))

    async def _run_channel(self, channel: Channel, stop: asyncio.Event) -> None:
        handler = self._handlers[channel]
        wake = self._wake[channel]
        while not stop.is_set():
            wake.clear()
            if handler.ready():
                await self.drain(channel)
            async with self._db.transaction() as conn:
                next_at = await outbox.next_due_at(conn, channel)
            wait = IDLE_WAIT_SECONDS
            if next_at is not None and handler.ready():
                wait = min(max((next_at - self._clock.now()).total_seconds(), 0.05), wait)
            elif not handler.ready():
                wait = 0.5
            try:
                await asyncio.wait_for(wake.wait(), timeout=wait)
            except TimeoutError:
                pass

    async def drain(self, channel: Channel) -> int:
        """Try every due item of a channel once; the number sent."""
        handler = self._handlers[channel]
        async with self._db.transaction() as conn:
            items = await outbox.due(conn, channel, self._clock.now())
        blocked: set[str] = set()
        sent = 0
        for item in items:
            if item.case_id is not None and item.case_id in blocked:
                continue  # keep a case's posts in order behind one that failed
            if await self._attempt(handler, item):
                sent += 1
            elif item.case_id is not None:
                blocked.add(item.case_id)
        return sent

    async def _attempt(self, handler: ChannelHandler, item: OutboxItem) -> bool:
        try:
            result = await handler.send(item)
        except DeliveryError as error:
            now = self._clock.now()
            async with self._db.transaction() as conn:
                if error.retryable:
                    await outbox.mark_retry(
                        conn, item.id, str(error), now + retry_delay(item.attempts)
                    )
                else:
                    await outbox.mark_failed(conn, item.id, str(error))
                await handler.after_failure(conn, item, error, now)
            self.wake_if_new_posts()
            return False
        self._failpoints.hit("outbox.after_send")
        now = self._clock.now()
        async with self._db.transaction() as conn:
            await outbox.mark_sent(conn, item.id, result, now)
            await handler.after_sent(conn, item, result, now)
        self.wake_if_new_posts()
        return True

    def wake_if_new_posts(self) -> None:
        if "matrix" in self._wake:
            self._wake["matrix"].set()
