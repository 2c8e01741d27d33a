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
from typing import Protocol

import aiosqlite

from bot.clock import Clock
from bot.config import Config
from bot.failpoints import Failpoints
from bot.mail_out import SmtpDeliveryError, SmtpSender, retry_delay
from bot.matrix import MatrixAdapter, MatrixSendError
from bot.posts import Post, message_content, post_to_case, txn_id_for
from storage import cases, outbox
from storage.db import Database
from storage.outbox import Channel, OutboxItem

log = logging.getLogger(__name__)

IDLE_WAIT_SECONDS = 30.0


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
    def __init__(self, config: Config, db: Database, matrix: MatrixAdapter) -> None:
        self._config = config
        self._db = db
        self._matrix = matrix

    def ready(self) -> bool:
        return self._matrix.case_room_ready.is_set()

    async def send(self, item: OutboxItem) -> str:
        payload = item.payload
        thread_root = last = None
        if payload["kind"] in ("root", "thread"):
            room_id = self._config.matrix.case_room
            assert item.case_id is not None
            async with self._db.transaction() as conn:
                case = await cases.get_case(conn, item.case_id)
            if case is None:
                raise DeliveryError(f"case {item.case_id} does not exist", retryable=False)
            if payload["kind"] == "thread":
                if case.thread_root_event_id is None:
                    raise DeliveryError("the case thread is not posted yet", retryable=True)
                thread_root, last = case.thread_root_event_id, case.thread_last_event_id
        else:
            room_id = payload["room_id"]
            thread_root = payload.get("thread_root")
        if not self._matrix.room_is_encrypted(room_id):
            raise DeliveryError(f"{room_id} is not an encrypted room I am in", retryable=True)
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

    async def after_sent(
        self, conn: aiosqlite.Connection, item: OutboxItem, result: str, now: datetime
    ) -> None:
        kind = item.payload["kind"]
        if item.case_id is not None and kind in ("root", "thread"):
            await cases.set_thread_events(
                conn, item.case_id, last=result, root=result if kind == "root" else None
            )

    async def after_failure(
        self, conn: aiosqlite.Connection, item: OutboxItem, error: DeliveryError, now: datetime
    ) -> None:
        log.warning("Matrix post %s failed: %s", item.id, error)


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
        text = (
            f"✉️ The {payload['label']} mail went to {payload['to']} ({payload['protection']})."
        )
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
