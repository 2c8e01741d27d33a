"""The second half of the state table: outcomes, closing, reopening, the retention hold
and the stub that stays after deletion."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from bot.policy.lifecycle import (
    STEPS,
    CaseState,
    TransitionError,
    acknowledge,
    assess,
    close,
    deletion_due,
    end_with,
    hold,
    mark_fixed,
    reopen,
    strip_personal_data,
    unhold,
)
from tests.unit.test_lifecycle import T0, new_case

KEEP = timedelta(days=90)


def fixed_case():  # type: ignore[no-untyped-def]
    return mark_fixed(assess(acknowledge(new_case(), T0), T0, "high", None, "bad"), T0, "done")


def test_every_state_is_named_in_the_table() -> None:
    named = set().union(*STEPS.values())
    # Closed is left only by reopen; every other state is a start of some step.
    assert named == set(CaseState)


@pytest.mark.parametrize("outcome", [CaseState.DUPLICATE, CaseState.WITHDRAWN, CaseState.SPAM])
def test_an_outcome_stops_the_clocks_from_any_working_state(outcome: CaseState) -> None:
    for start in (new_case(), acknowledge(new_case(), T0)):
        ended = end_with(start, outcome, T0, duplicate_of="CVD-2026-0001")
        assert ended.state is outcome and not ended.state.clocks_run
        assert ended.outcome == outcome.value and ended.outcome_at == T0


def test_rejection_needs_one_of_the_reasons_and_keeps_it() -> None:
    with pytest.raises(TransitionError, match="not-a-vulnerability"):
        end_with(new_case(), CaseState.REJECTED, T0, reason="boring")
    rejected = end_with(new_case(), CaseState.REJECTED, T0, reason="out-of-scope", text="x")
    assert rejected.state_text == "rejected (out-of-scope)"
    assert rejected.outcome_text == "x"


def test_a_duplicate_names_another_case() -> None:
    with pytest.raises(TransitionError, match="needs the ID"):
        end_with(new_case(), CaseState.DUPLICATE, T0)
    with pytest.raises(TransitionError, match="itself"):
        end_with(new_case(), CaseState.DUPLICATE, T0, duplicate_of="CVD-2026-0007")
    assert end_with(
        new_case(), CaseState.DUPLICATE, T0, duplicate_of="CVD-2026-0001"
    ).state_text == ("duplicate of CVD-2026-0001")


def test_a_fixed_case_takes_no_outcome_and_an_outcome_refuses_work_until_reopened() -> None:
    with pytest.raises(TransitionError, match="close it with !close"):
        end_with(fixed_case(), CaseState.SPAM, T0)
    spam = end_with(new_case(), CaseState.SPAM, T0)
    for step in (lambda: acknowledge(spam, T0), lambda: mark_fixed(spam, T0, None)):
        with pytest.raises(TransitionError, match="is spam: run !reopen first"):
            step()
    with pytest.raises(TransitionError, match="!reopen"):
        assess(spam, T0, "low", None, None)


def test_close_only_after_the_fix_or_an_outcome_and_starts_the_countdown() -> None:
    with pytest.raises(TransitionError, match="run !fixed, or record an outcome"):
        close(acknowledge(new_case(), T0), T0, KEEP)
    closed = close(fixed_case(), T0 + timedelta(days=1), KEEP)
    assert closed.state is CaseState.CLOSED and closed.outcome == "fixed"
    assert closed.delete_after == T0 + timedelta(days=91)
    assert closed.state_text == "closed (fixed)"
    with pytest.raises(TransitionError, match="closed"):
        close(closed, T0, KEEP)
    rejected = close(end_with(new_case(), CaseState.REJECTED, T0, reason="out-of-scope"), T0, KEEP)
    assert rejected.outcome == "rejected" and rejected.outcome_reason == "out-of-scope"


def test_reopen_returns_to_the_state_the_kept_promises_give() -> None:
    assert reopen(close(fixed_case(), T0, KEEP)).state is CaseState.FIXED
    acknowledged = acknowledge(new_case(), T0)
    back = reopen(end_with(acknowledged, CaseState.WITHDRAWN, T0))
    assert back.state is CaseState.ACKNOWLEDGED and back.outcome is None
    assert back.delete_after is None and back.closed_at is None
    with pytest.raises(TransitionError, match="open already"):
        reopen(acknowledged)


def test_hold_stops_and_unhold_restarts_the_countdown() -> None:
    closed = close(fixed_case(), T0, KEEP)
    held = hold(closed, "court order")
    assert held.delete_after is None and not deletion_due(held, T0 + 2 * KEEP)
    with pytest.raises(TransitionError, match="already held"):
        hold(held, "again")
    later = T0 + timedelta(days=200)
    released = unhold(held, later, KEEP)
    assert released.delete_after == later + KEEP
    with pytest.raises(TransitionError, match="not held"):
        unhold(released, later, KEEP)
    # Held before closing: closing does not start the countdown.
    assert close(hold(fixed_case(), "audit"), T0, KEEP).delete_after is None


def test_the_stub_keeps_dates_severity_and_outcome_and_nothing_personal() -> None:
    closed = close(replace(fixed_case(), reporter_name="Sam"), T0, KEEP)
    assert not deletion_due(closed, T0 + KEEP - timedelta(seconds=1))
    with pytest.raises(TransitionError, match="not due"):
        strip_personal_data(closed, T0)
    stub = strip_personal_data(closed, T0 + KEEP)
    assert stub.reporter_address is None and stub.reporter_name is None
    assert stub.subject == "(deleted)" and stub.assessment_text is None and stub.fix_text is None
    assert stub.severity == "high" and stub.outcome == "fixed" and stub.fixed_at == T0
    assert stub.data_deleted_at == T0 + KEEP
    with pytest.raises(TransitionError, match="was deleted on"):
        reopen(stub)
    with pytest.raises(TransitionError, match="was deleted on"):
        hold(stub, "too late")


def test_a_revised_assessment_keeps_the_first_assessment_time() -> None:
    first = assess(acknowledge(new_case(), T0), T0, "low", None, None)
    revised = assess(first, T0 + timedelta(days=3), "high", None, "worse")
    assert revised.assessed_at == T0 and revised.severity == "high"
