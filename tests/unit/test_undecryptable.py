"""The rules for messages the bot cannot decrypt: no notice for history, at most one per
sender and device within the window (issue 10 item 9, issue 12)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.matrix.undecryptable import MAX_AGE, WINDOW, NoticeRule, Verdict, notice_text

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
