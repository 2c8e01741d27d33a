"""The shared display forms (bot/text.py): shortened lines and durations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.matrix.render import time_left
from bot.text import duration, shorten


def test_shorten_keeps_short_text_and_marks_a_cut() -> None:
    assert shorten("abc", 3) == "abc"
    assert shorten("abcd", 3) == "ab…"
    assert len(shorten("x" * 500, 60)) == 60


def test_shorten_does_not_leave_a_space_before_the_ellipsis() -> None:
    assert shorten("ab cdef", 4) == "ab…"


def test_duration_in_whole_minutes_hours_and_days() -> None:
    assert duration(timedelta(seconds=59)) == "0m"
    assert duration(timedelta(minutes=5, seconds=59)) == "5m"
    assert duration(timedelta(hours=3, minutes=5)) == "3h 5m"
    assert duration(timedelta(days=2, hours=3, minutes=59)) == "2d 3h"
    assert duration(timedelta(hours=-3, minutes=-5)) == "3h 5m"


def test_time_left_says_left_or_overdue() -> None:
    now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    assert time_left(now + timedelta(hours=2, minutes=1), now) == "2h 1m left"
    assert time_left(now, now) == "0m left"
    assert time_left(now - timedelta(days=1, hours=4), now) == "overdue by 1d 4h"
