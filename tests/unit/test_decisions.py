"""The pure rules of the promises beyond the fix (bot/policy/decisions.py) and their steps in
the lifecycle's transition table."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from bot.policy import decisions as rules
from bot.policy.decisions import Decisions
from bot.policy.lifecycle import STEPS, Case, CaseState, TransitionError

T = datetime(2026, 12, 1, 10, tzinfo=UTC)
CASE = Case(
    id="CVD-2026-0001",
    state=CaseState.ASSESSED,
    subject="s",
    reporter_address="r@x.example",
    reporter_name=None,
    language="en",
    received_at=T,
    acknowledge_due=T,
    assess_due=T,
    fix_due=T,
    acknowledged_at=T,
    assessed_at=T,
)


def test_steps_place_the_promises_in_the_lifecycle() -> None:
    assert STEPS["credit"] == STEPS["consent"] == frozenset(CaseState)
    assert CaseState.NEW not in STEPS["ibd"] and CaseState.SPAM not in STEPS["ibd"]
    assert STEPS["publish"] == STEPS["advisory"] == {CaseState.FIXED, CaseState.CLOSED}
    assert CaseState.ACKNOWLEDGED not in STEPS["reward"]


@pytest.mark.parametrize(
    ("words", "name", "url"),
    [
        ("Jan de Vries", "Jan de Vries", None),
        ("Jan de Vries https://jan.example/about", "Jan de Vries", "https://jan.example/about"),
        ("  Sam   Finder ", "Sam Finder", None),
    ],
)
def test_credit_name_and_url(words: str, name: str, url: str | None) -> None:
    assert rules.parse_credit_name(words) == (name, url)


def test_credit_needs_a_name() -> None:
    for words in ("", "https://jan.example", "x" * 101):
        with pytest.raises(TransitionError):
            rules.parse_credit_name(words)


def test_reward_criteria_in_any_order_and_the_proposal() -> None:
    criteria, proposal = rules.parse_criteria("quality=good a voucher seriousness=high diligence=x")
    assert criteria == "diligence=x quality=good seriousness=high"
    assert proposal == "a voucher"
    with pytest.raises(TransitionError, match="seriousness"):
        rules.parse_criteria("diligence=x quality=y a voucher")
    with pytest.raises(TransitionError, match="what you propose"):
        rules.parse_criteria("diligence=x quality=y seriousness=z")


def test_reward_order_propose_decide_send() -> None:
    d = Decisions(CASE.id)
    with pytest.raises(TransitionError, match="no reward proposal"):
        rules.decide_reward(CASE, d, True, None, "@boss:x", T)
    d = rules.propose_reward(CASE, d, "diligence=a quality=b seriousness=c voucher", T)
    assert d.reward_pending
    with pytest.raises(TransitionError, match="only an approved"):
        rules.reward_sent(CASE, d, T)
    declined = rules.decide_reward(CASE, d, False, "not this time", "@boss:x", T)
    assert declined.reward_state == "declined" and not declined.reward_pending
    d = rules.reward_details(CASE, rules.decide_reward(CASE, d, True, None, "@b:x", T), "addr")
    sent = rules.reward_sent(CASE, d, T)
    assert sent.reward_state == "sent" and sent.reward_delivery is None


def test_tlp_labels() -> None:
    assert rules.parse_tlp(None) == "TLP:AMBER"
    assert rules.parse_tlp("tlp:amber+strict") == "TLP:AMBER+STRICT"
    assert rules.parse_tlp("clear") == "TLP:CLEAR"
    with pytest.raises(TransitionError, match="TLP:RED"):
        rules.parse_tlp("TLP:WHITE")


def test_ibd_share_once_then_updates() -> None:
    new = Case(**{**CASE.__dict__, "state": CaseState.NEW, "assessed_at": None})
    with pytest.raises(TransitionError):
        rules.share_with_ibd(new, Decisions(CASE.id), "TLP:AMBER", T)
    with pytest.raises(TransitionError, match="run !ibd first"):
        rules.update_ibd(CASE, Decisions(CASE.id), T)
    shared = rules.share_with_ibd(CASE, Decisions(CASE.id), "TLP:RED", T)
    with pytest.raises(TransitionError, match="!ibd update"):
        rules.share_with_ibd(CASE, shared, "TLP:RED", T)
    assert rules.update_ibd(CASE, shared, T).ibd_updated_at == T


def test_publication_is_decided_after_the_fix() -> None:
    with pytest.raises(TransitionError):
        rules.propose_publication(CASE, Decisions(CASE.id), date(2027, 1, 1), None, T)
    fixed = Case(**{**CASE.__dict__, "state": CaseState.FIXED, "fixed_at": T})
    with pytest.raises(TransitionError, match="in the past"):
        rules.propose_publication(fixed, Decisions(CASE.id), date(2020, 1, 1), None, T)
    d = rules.propose_publication(fixed, Decisions(CASE.id), date(2027, 1, 1), "text", T)
    agreed = rules.decide_publication(fixed, d, "agreed", None, "mail 3 <m@x>", T)
    assert agreed.publish_date == date(2027, 1, 1) and agreed.publish_evidence == "mail 3 <m@x>"
    declined = rules.decide_publication(fixed, d, "declined", None, "mail 4 <n@x>", T)
    assert declined.publish_state == "declined" and declined.publish_date is None
    with pytest.raises(TransitionError, match="already decided"):
        rules.propose_publication(fixed, agreed, date(2027, 2, 1), None, T)
