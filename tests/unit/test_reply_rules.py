"""The pure rules behind !send (bot/policy/reply_preview.py) and the update warning point
(bot/policy/update_due.py)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.policy.lifecycle import Case, CaseState, TransitionError
from bot.policy.reply_preview import ReplyPreview, check_sendable
from bot.policy.update_due import quiet_since, update_due, update_overdue, watched

AMS = ZoneInfo("Europe/Amsterdam")
MADE = datetime(2026, 11, 3, 9, 0, tzinfo=UTC)
PREVIEW = ReplyPreview(
    case_id="CVD-2026-0001",
    number=2,
    created_at=MADE,
    created_by="@alice:example.org",
    language="en",
    to_address="sam@finder.example",
    text="We could reproduce it.",
    subject="[CVD-2026-0001] About your report: XSS",
    body="Dear reporter,\n",
    encrypted=True,
)


def sendable(latest: ReplyPreview | None = PREVIEW, **overrides: object) -> ReplyPreview:
    arguments: dict[str, object] = {
        "wanted": None,
        "now": MADE + timedelta(minutes=5),
        "case_language": "en",
        "to_address": "sam@finder.example",
        "encrypted_now": True,
    }
    arguments.update(overrides)
    return check_sendable(latest, **arguments)  # type: ignore[arg-type]


def test_the_latest_unsent_fresh_preview_may_be_sent() -> None:
    assert sendable() is PREVIEW
    assert sendable(wanted=2) is PREVIEW
    # Exactly an hour old is still fresh; a second later it is not.
    assert sendable(now=MADE + timedelta(hours=1)) is PREVIEW


@pytest.mark.parametrize(
    ("latest", "overrides", "why"),
    [
        (None, {}, "there is no reply to send"),
        (PREVIEW, {"wanted": 1}, "preview #1 was superseded by #2"),
        (PREVIEW, {"wanted": 3}, "there is no preview #3"),
        (PREVIEW, {"wanted": 0}, "there is no preview #0"),
        (
            replace(PREVIEW, sent_at=MADE, sent_by="@bob:example.org"),
            {},
            "already sent on 2026-11-03 09:00 UTC by @bob:example.org",
        ),
        (PREVIEW, {"now": MADE + timedelta(hours=1, seconds=1)}, "older than an hour"),
        (PREVIEW, {"case_language": "nl"}, "language changed to nl"),
        (PREVIEW, {"to_address": None}, "address changed"),
        (PREVIEW, {"encrypted_now": False}, "could now only be signed"),
        (replace(PREVIEW, encrypted=False), {}, "would now be encrypted"),
    ],
)
def test_what_cannot_be_sent_is_refused_with_the_reason(
    latest: ReplyPreview | None, overrides: dict[str, object], why: str
) -> None:
    with pytest.raises(TransitionError, match=why.replace("#", "\\#")):
        sendable(latest, **overrides)


CASE = Case(
    id="CVD-2026-0001",
    state=CaseState.ASSESSED,
    subject="XSS",
    reporter_address="sam@finder.example",
    reporter_name=None,
    language="en",
    received_at=datetime(2026, 9, 1, 8, 0, tzinfo=UTC),
    acknowledge_due=datetime(2026, 9, 3, 15, 0, tzinfo=UTC),
    assess_due=datetime(2026, 9, 8, 15, 0, tzinfo=UTC),
    fix_due=datetime(2026, 11, 30, 16, 0, tzinfo=UTC),
)


def test_only_assessed_cases_with_a_reporter_are_watched() -> None:
    assert watched(CASE)
    for state in CaseState:
        assert watched(replace(CASE, state=state)) is (state is CaseState.ASSESSED)
    assert not watched(replace(CASE, reporter_address=None))
    assert not watched(replace(CASE, data_deleted_at=MADE))


def test_the_quiet_period_starts_at_the_last_mail_or_the_receipt() -> None:
    assert quiet_since(CASE.received_at, None) == CASE.received_at
    assert quiet_since(CASE.received_at, MADE) == MADE


def test_update_is_due_after_calendar_days_at_the_same_local_time_across_dst() -> None:
    # 20 October 2026 10:00 CEST; 30 days later is after the switch to CET: still 10:00.
    last = datetime(2026, 10, 20, 10, 0, tzinfo=AMS).astimezone(UTC)
    due = update_due(last, 30, AMS)
    assert due.astimezone(AMS) == datetime(2026, 11, 19, 10, 0, tzinfo=AMS)
    assert due - last == timedelta(days=30, hours=1)
    assert not update_overdue(last, 30, AMS, due - timedelta(seconds=1))
    assert update_overdue(last, 30, AMS, due)
