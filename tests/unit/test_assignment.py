"""Who may be assigned (bot/policy/assignment.py): team members and managers only."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from bot.policy.assignment import AssignmentError, assign, resolve_assignee
from bot.policy.lifecycle import Case, CaseState

ALICE, BOB, BOSS = "@alice:example.org", "@bob:example.org", "@boss:example.org"
ELIGIBLE = [ALICE, BOB, BOSS]
NOW = datetime(2026, 11, 2, 9, tzinfo=UTC)
CASE = Case(
    id="CVD-2026-0001",
    state=CaseState.ACKNOWLEDGED,
    subject="XSS",
    reporter_address="sam@finder.example",
    reporter_name=None,
    language="en",
    received_at=NOW,
    acknowledge_due=NOW,
    assess_due=NOW,
    fix_due=NOW,
)


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("me", ALICE),
        ("ME", ALICE),
        ("none", None),
        (BOB, BOB),
        (BOSS, BOSS),
        ("bob", BOB),  # a client may write a mention as the display name
        ("@Bob", BOB),
    ],
)
def test_resolve_assignee(word: str, expected: str | None) -> None:
    assert resolve_assignee(word, ALICE, ELIGIBLE) == expected


@pytest.mark.parametrize(
    ("word", "message"),
    [
        ("@mallory:example.org", "@mallory:example.org is not in the CVD team"),
        ("@bob:evil.example", "@bob:evil.example is not in the CVD team"),
        ("mallory", "is none of the team members"),
        ("@room", "is none of the team members"),
        ("@" + "a" * 300 + ":example.org", "is none of the team members"),
    ],
)
def test_outsiders_cannot_be_assigned(word: str, message: str) -> None:
    with pytest.raises(AssignmentError) as caught:
        resolve_assignee(word, ALICE, ELIGIBLE)
    assert message in str(caught.value)


def test_me_is_refused_for_a_sender_outside_the_list() -> None:
    with pytest.raises(AssignmentError):
        resolve_assignee("me", "@mallory:example.org", ELIGIBLE)


def test_an_ambiguous_local_part_names_the_candidates() -> None:
    with pytest.raises(AssignmentError, match="2 team members are called 'bob'"):
        resolve_assignee("bob", ALICE, [BOB, "@bob:other.example"])


def test_assign_changes_only_the_assignee_and_refuses_no_change() -> None:
    assigned = assign(CASE, BOB)
    assert assigned == replace(CASE, assignee=BOB)
    assert assign(assigned, None).assignee is None
    with pytest.raises(AssignmentError, match="already assigned to @bob:example.org"):
        assign(assigned, BOB)
    with pytest.raises(AssignmentError, match="not assigned to anyone"):
        assign(CASE, None)


def test_a_deleted_case_cannot_be_assigned() -> None:
    deleted = replace(CASE, state=CaseState.CLOSED, data_deleted_at=NOW)
    with pytest.raises(Exception, match="only its stub remains"):
        assign(deleted, BOB)
