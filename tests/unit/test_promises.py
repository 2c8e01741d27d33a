"""The promises' one declaration (bot/policy/promises.py) and what iterates it: the deadlines
of a new case, the `cvdbot deadlines` lines, the Case fields and the room's deadline lines."""

from __future__ import annotations

from dataclasses import fields, replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.config import PolicyConfig
from bot.matrix.render import case_root, deadline_lines
from bot.policy.lifecycle import Case, CaseState
from bot.policy.promises import BY_NAME, FIX, PROMISES, promise_days
from bot.policy.workdays import CalendarRules, WorkingCalendar, case_deadlines

AMS = ZoneInfo("Europe/Amsterdam")
CALENDAR = WorkingCalendar(CalendarRules())
RECEIVED = datetime(2026, 11, 2, 10, 0, tzinfo=AMS).astimezone(UTC)


def test_the_three_promises_in_the_order_a_case_keeps_them() -> None:
    assert [p.name for p in PROMISES] == ["acknowledge", "assess", "fix"]
    assert [p.label for p in PROMISES] == ["Acknowledge", "Assess", "Fix"]
    assert [p.command for p in PROMISES] == ["!ack", "!assess", "!fixed"]
    assert [p.counting for p in PROMISES] == ["working", "working", "calendar"]
    assert [p.name for p in PROMISES if p.pausable] == ["fix"]
    assert BY_NAME["fix"] is FIX


def test_every_declared_field_is_a_case_field_and_every_size_a_policy_key() -> None:
    case_fields = {f.name for f in fields(Case)}
    policy_keys = set(PolicyConfig.model_fields)
    for promise in PROMISES:
        assert promise.due_field in case_fields
        assert promise.done_field in case_fields
        assert promise.size_key in policy_keys
        assert PolicyConfig.model_fields[promise.size_key].default == promise.default_days


def test_promise_days_follow_the_policy_config() -> None:
    assert promise_days(PolicyConfig()) == {"acknowledge": 2, "assess": 5, "fix": 90}
    custom = PolicyConfig(
        acknowledge_within_working_days=1, assess_within_working_days=3, fix_within_days=60
    )
    assert promise_days(custom) == {"acknowledge": 1, "assess": 3, "fix": 60}


def test_case_deadlines_by_mapping_and_by_default_agree() -> None:
    by_default = case_deadlines(CALENDAR, RECEIVED)
    by_mapping = case_deadlines(CALENDAR, RECEIVED, {"acknowledge": 2, "assess": 5, "fix": 90})
    assert by_default == by_mapping
    # Wed 4 Nov 17:00, Mon 9 Nov 17:00, Sun 31 Jan 2027 17:00 (all CET).
    assert by_default.acknowledge.due == datetime(2026, 11, 4, 16, 0, tzinfo=UTC)
    assert by_default["assess"].due == datetime(2026, 11, 9, 16, 0, tzinfo=UTC)
    assert by_default.fix.due == datetime(2027, 1, 31, 16, 0, tzinfo=UTC)


def test_case_deadlines_sizes_each_promise_separately() -> None:
    shorter = case_deadlines(CALENDAR, RECEIVED, {"fix": 30, "acknowledge": 1})
    assert shorter.acknowledge.due == datetime(2026, 11, 3, 16, 0, tzinfo=UTC)
    assert shorter.assess.due == case_deadlines(CALENDAR, RECEIVED).assess.due
    assert shorter.fix.due == datetime(2026, 12, 2, 16, 0, tzinfo=UTC)


def test_case_deadlines_refuses_an_unknown_promise() -> None:
    with pytest.raises(ValueError, match="no such promise: update"):
        case_deadlines(CALENDAR, RECEIVED, {"update": 30})
    with pytest.raises(AttributeError):
        _ = case_deadlines(CALENDAR, RECEIVED).update


def test_case_fields_fill_the_case() -> None:
    deadlines = case_deadlines(CALENDAR, RECEIVED)
    assert deadlines.case_fields() == {
        "acknowledge_due": deadlines.acknowledge.due,
        "assess_due": deadlines.assess.due,
        "fix_due": deadlines.fix.due,
    }


def _case(**changes: object) -> Case:
    deadlines = case_deadlines(CALENDAR, RECEIVED)
    case = Case(
        id="CVD-2026-0001",
        state=CaseState.NEW,
        subject="XSS",
        reporter_address=None,
        reporter_name=None,
        language="en",
        received_at=RECEIVED,
        **deadlines.case_fields(),
    )
    return replace(case, **changes)  # type: ignore[arg-type]


def test_the_room_shows_one_line_per_promise() -> None:
    acknowledged = RECEIVED + timedelta(days=3)  # a day late
    case = _case(state=CaseState.ACKNOWLEDGED, acknowledged_at=acknowledged)
    now = datetime(2026, 11, 5, 16, 0, tzinfo=UTC)
    assert deadline_lines(case, AMS, now) == [
        "Acknowledge by Wed 4 Nov 2026 17:00 CET — done Thu 5 Nov 2026 10:00 CET (late)",
        "Assess by Mon 9 Nov 2026 17:00 CET — 4d 0h left",
        "Fix by Sun 31 Jan 2027 17:00 CET — 87d 0h left",
    ]


def test_the_root_post_names_the_commands_that_keep_the_promises() -> None:
    post = case_root(_case(), AMS, [])
    assert "Reply in this thread: !ack, !assess, !fixed, !status (!help for more)." in post.body
    assert post.html is not None
    assert (
        "<code>!ack</code>, <code>!assess</code>, <code>!fixed</code>, <code>!status</code>"
        " (<code>!help</code> for more)" in post.html
    )
