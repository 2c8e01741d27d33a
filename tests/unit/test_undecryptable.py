"""The rules for messages the bot cannot decrypt: no notice for history, at most one per
sender and device within the window (issue 10 item 9, issue 12)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from nio import Event, MegolmEvent

from bot.matrix.posts import Post
from bot.matrix.undecryptable import (
    MAX_AGE,
    WINDOW,
    NoticeRule,
    UndecryptableEvents,
    Verdict,
    notice_text,
)

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
JOINED = NOW - timedelta(minutes=2)


def test_history_gets_no_notice() -> None:
    rule = NoticeRule()
    before_join = JOINED - timedelta(seconds=1)
    assert rule.first_sight(sent_at=before_join, joined_at=JOINED, now=NOW) is Verdict.BEFORE_JOIN
    old = NOW - MAX_AGE - timedelta(seconds=1)
    assert rule.first_sight(sent_at=old, joined_at=None, now=NOW) is Verdict.TOO_OLD
    assert rule.first_sight(sent_at=NOW - MAX_AGE, joined_at=None, now=NOW) is Verdict.WAIT
    assert rule.first_sight(sent_at=JOINED, joined_at=JOINED, now=NOW) is Verdict.WAIT


def test_one_notice_per_sender_and_device_within_the_window() -> None:
    rule = NoticeRule()
    room, alice = "!r:x", "@alice:x"
    verdicts = [
        rule.after_wait(room_id=room, sender=alice, device="PHONE", now=NOW + timedelta(seconds=s))
        for s in range(50)
    ]
    assert verdicts.count(Verdict.NOTICE) == 1 and verdicts[0] is Verdict.NOTICE
    # Another device of the same sender, the same device name of another sender, another
    # room: each its own notice.
    assert rule.after_wait(room_id=room, sender=alice, device="LAPTOP", now=NOW) is Verdict.NOTICE
    assert rule.after_wait(room_id=room, sender="@bob:x", device="PHONE", now=NOW) is Verdict.NOTICE
    assert rule.after_wait(room_id="!o:x", sender=alice, device="PHONE", now=NOW) is Verdict.NOTICE
    # After the window the device is named again, once.
    later = NOW + WINDOW
    assert rule.after_wait(room_id=room, sender=alice, device="PHONE", now=later) is Verdict.NOTICE
    assert rule.after_wait(room_id=room, sender=alice, device="PHONE", now=later) is Verdict.REPEAT


def test_notice_key_is_stable_within_a_window() -> None:
    rule = NoticeRule()
    start = datetime.fromtimestamp(
        (NOW.timestamp() // WINDOW.total_seconds()) * WINDOW.total_seconds(), UTC
    )
    key = rule.notice_key(room_id="!r:x", sender="@a:x", device="D", now=start)
    same = rule.notice_key(room_id="!r:x", sender="@a:x", device="D", now=start + WINDOW / 2)
    nxt = rule.notice_key(room_id="!r:x", sender="@a:x", device="D", now=start + WINDOW)
    assert key == same != nxt


def test_notice_names_the_device_and_cannot_ping() -> None:
    text = notice_text("@alice:x", "PHONE", "Element @room " + "x" * 200)
    assert "device PHONE" in text and "@alice:x" in text
    assert "@room" not in text  # the display name is the sender's text
    assert len(text) < 600


@dataclass
class _Matrix:
    """The adapter's side, scripted: which events become readable, and when."""

    readable: set[str] = field(default_factory=set)
    requested: list[str] = field(default_factory=list)

    def joined_at(self, room_id: str) -> datetime | None:
        return JOINED

    async def request_key(self, event: MegolmEvent) -> None:
        self.requested.append(event.event_id)

    def try_decrypt(self, room_id: str, event: MegolmEvent) -> Event | None:
        return event if event.event_id in self.readable else None

    def device_name(self, user_id: str, device_id: str) -> str | None:
        return None


async def _until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


class _Clock:
    def now(self) -> datetime:
        return datetime.now(UTC)


def _event(event_id: str, device: str = "PHONE") -> MegolmEvent:
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    return MegolmEvent.from_dict(
        {
            "event_id": event_id,
            "sender": "@alice:x",
            "origin_server_ts": now_ms,
            "type": "m.room.encrypted",
            "content": {
                "algorithm": "m.megolm.v1.aes-sha2",
                "sender_key": "key",
                "ciphertext": "c",
                "session_id": "s" + event_id,
                "device_id": device,
            },
        }
    )


async def test_a_key_that_arrives_late_runs_the_command_and_a_missing_one_gets_one_notice() -> None:
    matrix = _Matrix()
    notices: list[tuple[str, str]] = []
    redelivered: list[str] = []

    async def post(room_id: str, post: Post, idem_key: str) -> None:
        notices.append((post.body, idem_key))

    async def redeliver(room_id: str, event: Event) -> None:
        redelivered.append(event.event_id)

    handler = UndecryptableEvents(matrix, post, redeliver, _Clock(), grace_seconds=0.05)
    try:
        for event_id in ("$a", "$b", "$late"):
            await handler.seen("!r:x", _event(event_id))
        assert matrix.requested == ["$a", "$b", "$late"]
        await _until(lambda: len(notices) > 0)  # past the grace time: a notice for the device
        assert len(notices) == 1 and "device PHONE" in notices[0][0]
        assert redelivered == []
        matrix.readable.add("$late")  # its key arrives after the notice: still handled
        await _until(lambda: len(redelivered) > 0)
        assert redelivered == ["$late"]
        assert len(notices) == 1
    finally:
        await handler.close()
