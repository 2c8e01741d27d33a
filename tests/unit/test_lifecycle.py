"""The case state machine: allowed steps, refused steps, case IDs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.policy.lifecycle import (
    Case,
    CaseState,
    TransitionError,
    acknowledge,
    assess,
    format_case_id,
    mark_fixed,
    parse_case_id,
)

T0 = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)


def new_case(**changes: object) -> Case:
    base = Case(
        id="CVD-2026-0007",
        state=CaseState.NEW,
        subject="XSS",
        reporter_address="r@example.net",
        reporter_name=None,
        language="en",
        received_at=T0,
        acknowledge_due=T0 + timedelta(days=2),
        assess_due=T0 + timedelta(days=7),
        fix_due=T0 + timedelta(days=90),
    )
    from dataclasses import replace

    return replace(base, **changes)  # type: ignore[arg-type]


def test_case_ids_are_zero_padded_to_four_digits_and_grow_beyond() -> None:
    assert format_case_id(2026, 7) == "CVD-2026-0007"
    assert format_case_id(2026, 12345) == "CVD-2026-12345"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("CVD-2026-0007", "CVD-2026-0007"),
        ("cvd-2026-0007", "CVD-2026-0007"),
        ("CVD-2026-12345", "CVD-2026-12345"),
        ("CVD-2026-007", None),
        ("CVD-26-0007", None),
        ("[CVD-2026-0007]", None),
        ("", None),
    ],
)
def test_parse_case_id(text: str, expected: str | None) -> None:
    assert parse_case_id(text) == expected


def test_the_full_path() -> None:
    case = acknowledge(new_case(), T0)
    assert case.state is CaseState.ACKNOWLEDGED and case.acknowledged_at == T0
    case = assess(case, T0, "high", "CVSS:3.1/AV:N", "bad")
    assert (case.state, case.severity, case.cvss_vector) == (
        CaseState.ASSESSED,
        "high",
        "CVSS:3.1/AV:N",
    )
    case = assess(case, T0, "medium", None, "revised")
    assert case.severity == "medium" and case.assessment_text == "revised"
    case = mark_fixed(case, T0, "patched")
    assert case.state is CaseState.FIXED and case.fix_text == "patched"


def test_ack_twice_is_refused() -> None:
    with pytest.raises(TransitionError, match="already acknowledged"):
        acknowledge(acknowledge(new_case(), T0), T0)


def test_assess_before_ack_is_refused() -> None:
    with pytest.raises(TransitionError, match="!ack first"):
        assess(new_case(), T0, "low", None, None)


def test_fixed_before_ack_names_both_missing_steps() -> None:
    with pytest.raises(TransitionError, match="run !ack and !assess first"):
        mark_fixed(new_case(), T0, None)


def test_fixed_before_assess_names_assess() -> None:
    with pytest.raises(TransitionError, match="run !assess first"):
        mark_fixed(acknowledge(new_case(), T0), T0, None)


def test_fixed_twice_and_assess_after_fix_are_refused() -> None:
    case = mark_fixed(assess(acknowledge(new_case(), T0), T0, "low", None, None), T0, None)
    with pytest.raises(TransitionError, match="already marked fixed"):
        mark_fixed(case, T0, None)
    with pytest.raises(TransitionError, match="already fixed"):
        assess(case, T0, "low", None, None)


def test_unknown_severity_is_refused() -> None:
    with pytest.raises(TransitionError, match="severity must be one of"):
        assess(acknowledge(new_case(), T0), T0, "urgent", None, None)


def test_reporter_display() -> None:
    assert new_case(reporter_address=None).reporter_display == "anonymous"
    assert new_case(reporter_name="Eva").reporter_display == "Eva <r@example.net>"
