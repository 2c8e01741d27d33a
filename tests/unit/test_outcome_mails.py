"""The outcome mails (rejection, duplicate notice, withdrawal confirmation) in Dutch and
English: each rejection reason explained in plain words, the earlier case named only when
the command says so, and values that cannot be right refused."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bot.mailout.compose import LANGUAGES, MailLanguage, render_reporter_mail
from bot.policy.lifecycle import REJECT_REASONS
from tests.unit.test_reporter_mail import BARE, FULL

# What each reason must say, in words a reporter understands.
REASONS: dict[str, dict[MailLanguage, str]] = {
    "not-a-vulnerability": {
        "nl": "De reden: wat u beschrijft is volgens ons geen beveiligingsprobleem.",
        "en": "Why: what you describe is not a security weakness in our view.",
    },
    "out-of-scope": {
        "nl": "niet van ons\nis of niet door ons wordt beheerd",
        "en": "a system that is not ours or not managed by\nus",
    },
    "not-reproducible": {
        "nl": "De reden: we konden het probleem niet nagaan.",
        "en": "Why: we could not reproduce the problem.",
    },
    "accepted-risk": {
        "nl": "hebben bewust besloten het te\naanvaarden",
        "en": "have deliberately decided to\naccept it",
    },
}


@pytest.mark.parametrize(
    ("kind", "nl", "en"),
    [
        ("rejected", "Besluit over uw melding", "Decision on your report"),
        ("duplicate", "Al eerder gemeld", "Already reported"),
        ("withdrawn", "Melding ingetrokken", "Report withdrawn"),
    ],
)
def test_subjects(kind: str, nl: str, en: str) -> None:
    ctx = replace(FULL, reject_reason="out-of-scope")
    assert render_reporter_mail(kind, "nl", ctx)[0] == f"[CVD-2026-0007] {nl}: XSS in zoekformulier"  # type: ignore[arg-type]
    assert render_reporter_mail(kind, "en", ctx)[0] == f"[CVD-2026-0007] {en}: XSS in zoekformulier"  # type: ignore[arg-type]


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("reason", REJECT_REASONS)
def test_each_rejection_reason_is_explained_and_only_that_one(
    reason: str, language: MailLanguage
) -> None:
    _, body = render_reporter_mail("rejected", language, replace(FULL, reject_reason=reason))
    assert REASONS[reason][language] in body
    for other, texts in REASONS.items():
        if other != reason:
            assert texts[language] not in body, other
    assert "Parameter q was not escaped." in body, "the team's own words follow the reason"
    assert "CVD-2026-0007" in body
    # Readable in any mail client: the longest Dutch and English dates still fit a line.
    assert max(len(line) for line in body.splitlines()) <= 76
    # Asked for more details only when we could not reproduce it.
    more = {"nl": "Kunt u ons meer vertellen", "en": "If you can tell us more"}[language]
    assert (more in body) is (reason == "not-reproducible")


def test_a_rejection_without_a_reason_still_reads_well_and_an_unknown_one_is_refused() -> None:
    _, body = render_reporter_mail("rejected", "en", BARE)
    assert "we have decided not to handle it as a vulnerability" in " ".join(body.split())
    assert "Why:" not in body
    with pytest.raises(ValueError, match="unknown rejection reason"):
        render_reporter_mail("rejected", "nl", replace(BARE, reject_reason="boring"))


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_duplicate_notice_names_the_earlier_case_only_when_given(
    language: MailLanguage,
) -> None:
    _, own = render_reporter_mail(
        "duplicate", language, replace(BARE, duplicate_of="CVD-2026-0003")
    )
    _, other = render_reporter_mail("duplicate", language, BARE)
    assert "CVD-2026-0003" in own and "CVD-2026-0003" not in other
    said = {
        "nl": ("U heeft dit probleem al eerder bij ons gemeld", "Dit probleem was al eerder"),
        "en": ("You already reported this problem", "This problem had already been reported"),
    }[language]
    assert said[0] in own and said[1] in other
    assert said[0] not in other and said[1] not in own
    with pytest.raises(ValueError, match="not a case ID"):
        render_reporter_mail("duplicate", language, replace(BARE, duplicate_of="#3"))


@pytest.mark.parametrize(
    ("language", "stopped"),
    [
        ("nl", "Hierbij bevestigen\nwe dat we de behandeling ervan hebben gestopt."),
        ("en", "We confirm that we have\nstopped handling it."),
    ],
)
def test_the_withdrawal_mail_confirms_that_we_stopped(language: MailLanguage, stopped: str) -> None:
    _, body = render_reporter_mail("withdrawn", language, BARE)
    assert stopped in body
    assert ("ons beleid vraagt" if language == "nl" else "as our policy asks") in body
