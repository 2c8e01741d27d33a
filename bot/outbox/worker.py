"""The outbox sender: delivers queued Matrix posts and mails, marks them sent, retries.

Each channel runs its own loop, so a mail server that is down never holds up the room.
Within a case, Matrix posts go out in the order they were queued (root first). The channels
themselves are bot/outbox/matrix_channel.py and bot/outbox/mail_channel.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Protocol

import aiosqlite

from bot.failpoints import Failpoints
from bot.mailout.reporter import retry_delay
from bot.outbox.payloads import Payload, PayloadError, channel_of, decode
from bot.policy.clock import Clock
from storage import outbox
from storage.db import Database, StorageUnavailable
from storage.outbox import Channel, OutboxItem

log = logging.getLogger(__name__)

IDLE_WAIT_SECONDS = 30.0
STORAGE_RETRY_SECONDS = 5.0


class DeliveryError(Exception):
    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class ChannelHandler(Protocol):
    def ready(self) -> bool: ...

    async def prepare(self, item: OutboxItem, payload: Payload) -> Payload:
        """What to send, made ready outside any transaction (a mail is sealed here)."""
        ...

    async def send(self, item: OutboxItem, payload: Payload) -> str: ...

    async def after_sent(
        self,
        conn: aiosqlite.Connection,
        item: OutboxItem,
        payload: Payload,
        result: str,
        now: datetime,
    ) -> None: ...

    async def after_failure(
        self,
        conn: aiosqlite.Connection,
        item: OutboxItem,
        payload: Payload,
        error: DeliveryError,
        now: datetime,
    ) -> None: ...


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
            try:
                if handler.ready():
                    await self.drain(channel)
                async with self._db.transaction() as conn:
                    next_at = await outbox.next_due_at(conn, channel)
            except StorageUnavailable:
                # Rolled back whole (storage/db.py); an item sent but not marked sent goes
                # out again with the same txn_id or Message-ID once the database writes.
                log.error("outbox (%s) paused: the database refused a write; again in 5 s", channel)
                await asyncio.sleep(STORAGE_RETRY_SECONDS)
                continue
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
            payload = decode(item.payload)
            if channel_of(payload) != item.channel:
                raise PayloadError(f"a {type(payload).__name__} is not sent by {item.channel}")
        except PayloadError as exc:
            await self._set_aside(item, exc)
            return False
        try:
            payload = await handler.prepare(item, payload)
            result = await handler.send(item, payload)
        except DeliveryError as error:
            now = self._clock.now()
            async with self._db.transaction() as conn:
                if error.retryable:
                    await outbox.mark_retry(
                        conn, item.id, str(error), now + retry_delay(item.attempts)
                    )
                else:
                    await outbox.mark_failed(conn, item.id, str(error))
                await handler.after_failure(conn, item, payload, error, now)
            self.wake_if_new_posts()
            return False
        self._failpoints.hit("outbox.after_send")
        now = self._clock.now()
        async with self._db.transaction() as conn:
            await outbox.mark_sent(conn, item.id, result, now)
            await handler.after_sent(conn, item, payload, result, now)
        self.wake_if_new_posts()
        return True

    async def _set_aside(self, item: OutboxItem, error: PayloadError) -> None:
        """A payload this version cannot read is never guessed at, skipped or deleted: it is
        marked failed with the reason, for a human to look at."""
        log.error(
            "outbox item %d (%s) cannot be read and is left failed for a human: %s",
            item.id,
            item.channel,
            error,
        )
        async with self._db.transaction() as conn:
            await outbox.mark_failed(conn, item.id, f"unreadable payload: {error}")

    def wake_if_new_posts(self) -> None:
        if "matrix" in self._wake:
            self._wake["matrix"].set()
