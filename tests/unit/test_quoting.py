"""Replies without their quoted history, as each mail client writes them (bot/mailin/quoting.py)."""

from __future__ import annotations

from bot.mailin.quoting import QUOTE_PLACEHOLDER, strip_quoted

HISTORY = "Thank you for your report CVD-2026-0001. To assess it properly"


def test_gmail_top_posted_reply_in_english() -> None:
    text = (
        "The affected URL is https://loket.haaksbergen.example/upload.\n\n"
        "On Tue, 3 Feb 2026 at 10:12, CVD team <security@haaksbergen.example> wrote:\n\n"
        f"> {HISTORY}\n> we need some more information.\n>\n> Kind regards\n"
    )
    result = strip_quoted(text)
    assert result.removed
    assert result.text == "The affected URL is https://loket.haaksbergen.example/upload."


def test_gmail_wrapped_attribution_in_dutch() -> None:
    text = (
        "Het gaat om https://loket.haaksbergen.example/upload.\n\n"
        "Op di 3 feb 2026 om 10:12 schreef Team informatiebeveiliging <\n"
        "security@haaksbergen.example>:\n\n"
        f"> {HISTORY}\n"
    )
    result = strip_quoted(text)
    assert result.text == "Het gaat om https://loket.haaksbergen.example/upload."


def test_gmail_wrapped_attribution_in_english() -> None:
    text = (
        "Firefox 128.\n\n"
        "On Tue, 3 Feb 2026 at 10:12, Information security team <\n"
        "security@haaksbergen.example> wrote:\n\n"
        f"> {HISTORY}\n"
    )
    assert strip_quoted(text).text == "Firefox 128."


def test_thunderbird_reply_in_dutch_and_english() -> None:
    for attribution in (
        "Op 03-02-2026 om 10:12 schreef CVD team:",
        "On 03/02/2026 10:12, CVD team wrote:",
        "Op 3 feb. 2026, om 10:12 heeft CVD team <security@haaksbergen.example> het volgende "
        "geschreven:",
    ):
        text = f"Version 2.3 of the portal.\n\n{attribution}\n> {HISTORY}\n> more\n"
        assert strip_quoted(text).text == "Version 2.3 of the portal.", attribution


def test_outlook_header_block_in_english_and_dutch() -> None:
    english = (
        "Please find the steps below.\n1. Log in\n2. Open /admin\n\n"
        "________________________________\n"
        "From: CVD team <security@haaksbergen.example>\n"
        "Sent: Tuesday, February 3, 2026 10:12 AM\n"
        "To: Sam Finder <sam@finder.example>\n"
        "Subject: [CVD-2026-0001] More information needed\n\n"
        f"{HISTORY}\n"
    )
    assert strip_quoted(english).text == "Please find the steps below.\n1. Log in\n2. Open /admin"
    dutch = (
        "Zie hieronder.\n\n"
        "Van: Team informatiebeveiliging <security@haaksbergen.example>\n"
        "Verzonden: dinsdag 3 februari 2026 10:12\n"
        "Aan: Eva <eva@researcher.example>\n"
        "Onderwerp: [CVD-2026-0001] Aanvullende informatie nodig\n\n"
        f"{HISTORY}\n"
    )
    assert strip_quoted(dutch).text == "Zie hieronder."
    old = f"Ok.\n\n-----Original Message-----\nFrom: x\nSent: y\n\n{HISTORY}\n"
    assert strip_quoted(old).text == "Ok."
    oud = f"Ok.\n\n-----Oorspronkelijk bericht-----\nVan: x\nVerzonden: y\n\n{HISTORY}\n"
    assert strip_quoted(oud).text == "Ok."


def test_interleaved_answers_keep_a_marker_per_quote() -> None:
    text = (
        "On Tue, 3 Feb 2026, CVD team wrote:\n"
        "> Which URL is affected?\n"
        "https://loket.haaksbergen.example/upload\n\n"
        "> Which browser did you use?\n> And which version?\n\n"
        "Firefox 128.\n\n"
        "> Kind regards, the team\n"
    )
    result = strip_quoted(text)
    assert result.text == (
        f"{QUOTE_PLACEHOLDER}\n\nhttps://loket.haaksbergen.example/upload\n\n"
        f"{QUOTE_PLACEHOLDER}\n\nFirefox 128."
    )
    assert "Which browser" not in result.text


def test_text_without_quotes_is_untouched() -> None:
    text = "Just new text.\n\nWith two paragraphs and a line\n-- \nSam"
    result = strip_quoted(text)
    assert result.text == text and not result.removed


def test_a_signature_divider_of_underscores_is_not_history() -> None:
    text = "New info here.\n\n______________________\nSam Finder, Finder Security\n"
    assert strip_quoted(text).text.startswith("New info here.\n\n____")


def test_a_reply_that_is_only_history_is_shown_whole() -> None:
    text = f"On Tue, 3 Feb 2026, CVD team wrote:\n> {HISTORY}\n"
    result = strip_quoted(text)
    assert result.text == text and not result.removed


def test_signature_after_the_quote_does_not_keep_it() -> None:
    text = f"Thanks!\n\nOn Tue, 3 Feb 2026, CVD team wrote:\n> {HISTORY}\n\n-- \nSam\n"
    result = strip_quoted(text)
    assert HISTORY not in result.text and result.text.startswith("Thanks!")
