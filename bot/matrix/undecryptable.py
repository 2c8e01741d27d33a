"""Messages the bot cannot decrypt: one key request, a short wait, then at most one notice.

A command the bot cannot read would otherwise be silently lost. But a room with shared
history, a member's new device or a client that withholds keys (Element's "exclude insecure
devices") can produce many undecryptable events at once, and a notice for each would flood
the room. So, for every undecryptable event in a joined room:

1. events older than the bot's join of that room, or older than `MAX_AGE`, are history, not
   commands for the bot: logged, nothing else;
2. otherwise the bot asks the sending device for the room key (once per session) and waits
   `GRACE_SECONDS`; when the key arrived meanwhile, the event is handled as if it had been
   readable from the start (a command runs), and so it is when the key arrives later, up to
   `MAX_AGE` after the event was sent;
3. still unreadable: one notice per sender and device within `WINDOW`, naming the device, so
   the team knows which client does not share keys with the bot.

`NoticeRule` holds these rules without any I/O (unit-tested); `UndecryptableEvents` applies
them to the events of the sync loop.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from nio import Event, MegolmEvent

from bot.matrix.posts import Post, defuse_mentions
from bot.ops.supervisor import end_tasks
from bot.policy.clock import Clock

log = logging.getLogger(__name__)

GRACE_SECONDS = 5.0  # time for the room key to arrive after the key request
MAX_AGE = timedelta(minutes=5)  # older undecryptable events are history, never a notice
WINDOW = timedelta(hours=1)  # at most one notice per sender and device in this time
MAX_WAITING = 200  # events waiting for a key at once; more (a flood) are only logged
_MAX_NAME = 60  # a device's display name is the sender's text: shortened in the notice


class Verdict(enum.Enum):
    BEFORE_JOIN = "sent before the bot joined the room"
    TOO_OLD = "too old to be a command for the bot"
    FLOOD = "too many undecryptable events waiting already; ignored"
    WAIT = "key requested; waiting for it"
    NOTICE = "notice posted"
    REPEAT = "no notice: this device was named in a notice less than an hour ago"


@dataclass
class NoticeRule:
    max_age: timedelta = MAX_AGE
    window: timedelta = WINDOW
    _last_notice: dict[tuple[str, str, str], datetime] = field(default_factory=dict)

    def first_sight(
        self, *, sent_at: datetime, joined_at: datetime | None, now: datetime
    ) -> Verdict:
        """Whether an undecryptable event is worth a key request and a possible notice."""
        if joined_at is not None and sent_at < joined_at:
            return Verdict.BEFORE_JOIN
        if now - sent_at > self.max_age:
            return Verdict.TOO_OLD
        return Verdict.WAIT

    def after_wait(self, *, room_id: str, sender: str, device: str, now: datetime) -> Verdict:
        """Still unreadable after the wait: a notice unless this device had one lately."""
        key = (room_id, sender, device)
        last = self._last_notice.get(key)
        if last is not None and now - last < self.window:
            return Verdict.REPEAT
        self._last_notice[key] = now
        return Verdict.NOTICE

    def notice_key(self, *, room_id: str, sender: str, device: str, now: datetime) -> str:
        """The outbox key of the notice: also after a restart, one per device and window."""
        bucket = int(now.timestamp() // self.window.total_seconds())
        return f"undecryptable:{room_id}:{sender}:{device}:{bucket}"


def notice_text(sender: str, device_id: str, device_name: str | None) -> str:
    name = ""
    if device_name:
        short = device_name if len(device_name) <= _MAX_NAME else device_name[:_MAX_NAME] + "…"
        name = f' ("{defuse_mentions(short)}")'
    return (
        f"🔒 I could not decrypt a message from {sender}, sent from device {device_id}{name}: "
        "that device has not shared its key with me. If it was a command and you get no "
        "answer within a minute, please send it again. If this keeps happening, that device "
        'does not share room keys with the bot: see "Trust" in the README (I say this once '
        "an hour per device)."
    )


class Decrypter(Protocol):
    """What the Matrix adapter offers for this."""

    def joined_at(self, room_id: str) -> datetime | None: ...

    async def request_key(self, event: MegolmEvent) -> None: ...

    def try_decrypt(self, room_id: str, event: MegolmEvent) -> Event | None: ...

    def device_name(self, user_id: str, device_id: str) -> str | None: ...


PostNotice = Callable[[str, Post, str], Awaitable[None]]  # room_id, post, idem_key
Redeliver = Callable[[str, Event], Awaitable[None]]  # room_id, the decrypted event


class UndecryptableEvents:
    def __init__(
        self,
        matrix: Decrypter,
        post_notice: PostNotice,
        redeliver: Redeliver,
        clock: Clock,
        *,
        grace_seconds: float = GRACE_SECONDS,
        rule: NoticeRule | None = None,
    ) -> None:
        self._matrix = matrix
        self._post_notice = post_notice
        self._redeliver = redeliver
        self._clock = clock
        self._grace = grace_seconds
        self._rule = rule or NoticeRule()
        self._waiting: set[asyncio.Task[None]] = set()

    async def seen(self, room_id: str, event: MegolmEvent) -> None:
        sent_at = datetime.fromtimestamp(event.server_timestamp / 1000, UTC)
        verdict = self._rule.first_sight(
            sent_at=sent_at, joined_at=self._matrix.joined_at(room_id), now=self._clock.now()
        )
        if verdict is Verdict.WAIT and len(self._waiting) >= MAX_WAITING:
            verdict = Verdict.FLOOD
        self._log(room_id, event, verdict)
        if verdict is not Verdict.WAIT:
            return
        await self._matrix.request_key(event)
        task = asyncio.create_task(self._wait_then_decide(room_id, event))
        self._waiting.add(task)
        task.add_done_callback(self._waiting.discard)

    async def _wait_then_decide(self, room_id: str, event: MegolmEvent) -> None:
        try:
            await asyncio.sleep(self._grace)
            if await self._redelivered(room_id, event):
                return
            now = self._clock.now()
            device = event.device_id or f"with session {event.session_id[:8]}"
            verdict = self._rule.after_wait(
                room_id=room_id, sender=event.sender, device=device, now=now
            )
            self._log(room_id, event, verdict)
            if verdict is Verdict.NOTICE:
                text = notice_text(
                    event.sender, device, self._matrix.device_name(event.sender, device)
                )
                idem_key = self._rule.notice_key(
                    room_id=room_id, sender=event.sender, device=device, now=now
                )
                await self._post_notice(room_id, Post.text(text), idem_key)
            # A key can still come later (a slow or offline device answering the request):
            # keep trying while the event is young enough to be a command.
            sent_at = datetime.fromtimestamp(event.server_timestamp / 1000, UTC)
            while self._clock.now() - sent_at < self._rule.max_age:
                await asyncio.sleep(self._grace)
                if await self._redelivered(room_id, event):
                    return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("handling undecryptable event %s failed", event.event_id)

    async def _redelivered(self, room_id: str, event: MegolmEvent) -> bool:
        decrypted = self._matrix.try_decrypt(room_id, event)
        if decrypted is None:
            return False
        log.info(
            "undecryptable event %s from %s: its key arrived; handled late",
            event.event_id,
            event.sender,
        )
        await self._redeliver(room_id, decrypted)
        return True

    def _log(self, room_id: str, event: MegolmEvent, verdict: Verdict) -> None:
        log.info(
            "undecryptable event %s in %s from %s device %s: %s",
            event.event_id,
            room_id,
            event.sender,
            event.device_id,
            verdict.value,
        )

    async def close(self) -> None:
        await end_tasks(self._waiting)
