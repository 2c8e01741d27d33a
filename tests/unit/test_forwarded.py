"""Forwarded reports as each mail client writes them, in Dutch and English
(bot/mailin/forwarded.py)."""

from __future__ import annotations

from email.message import EmailMessage

from bot.mailin.forwarded import detect_forward, has_forward_prefix
from bot.mailin.parse import attachment_payloads

REPORT = (
    "Hello,\n\nThe search page https://parkeren.haaksbergen.example/zoeken echoes its "
    "input.\n\nRegards,\nSam"
)


def test_gmail_english() -> None:
    text = (
        "FYI, this came in via the general address.\n\n"
        "---------- Forwarded message ---------\n"
        "From: *Sam Finder* <sam@finder.example>\n"
        "Date: Mon, 2 Feb 2026 at 10:12\n"
        "Subject: XSS in parking permit search\n"
        "To: <info@haaksbergen.example>\n\n\n"
        f"{REPORT}\n"
    )
    found = detect_forward("Fwd: XSS in parking permit search", text, [])
    assert found is not None
    assert found.style == "Gmail"
    assert (found.reporter_address, found.reporter_name) == ("sam@finder.example", "Sam Finder")
    assert found.subject == "XSS in parking permit search"
    assert found.text == REPORT
    assert found.note == "FYI, this came in via the general address."


def test_gmail_dutch_without_forward_prefix() -> None:
    text = (
        "---------- Doorgestuurd bericht ---------\n"
        "Van: Eva Onderzoeker <eva@researcher.example>\n"
        "Date: ma 2 feb 2026 om 10:12\n"
        "Subject: Lek in parkeervergunning\n"
        "To: <info@haaksbergen.example>\n\n"
        "Beste mensen, ...\n"
    )
    found = detect_forward("Lek in parkeervergunning", text, [])
    assert found is not None and found.reporter_address == "eva@researcher.example"
    assert found.text == "Beste mensen, ..."


def test_thunderbird_english_and_dutch() -> None:
    for marker, labels in (
        ("-------- Forwarded Message --------", ("Subject", "Date", "From", "To")),
        ("-------- Doorgestuurd bericht --------", ("Onderwerp", "Datum", "Van", "Aan")),
    ):
        text = (
            f"See below.\n\n{marker}\n"
            f"{labels[0]}: \tXSS in parking permit search\n"
            f"{labels[1]}: \tMon, 2 Feb 2026 10:12:00 +0100\n"
            f"{labels[2]}: \tSam Finder <sam@finder.example>\n"
            f"{labels[3]}: \tinfo@haaksbergen.example\n\n\n"
            f"{REPORT}\n"
        )
        found = detect_forward("Fwd: XSS in parking permit search", text, [])
        assert found is not None, marker
        assert found.style == "Thunderbird"
        assert found.reporter_address == "sam@finder.example"
        assert found.subject == "XSS in parking permit search"
        assert found.text == REPORT


def test_outlook_english_and_dutch() -> None:
    english = (
        "Can you have a look?\n\n"
        "________________________________\n"
        "From: Sam Finder <sam@finder.example<mailto:sam@finder.example>>\n"
        "Sent: Monday, February 2, 2026 10:12 AM\n"
        "To: Info <info@haaksbergen.example<mailto:info@haaksbergen.example>>\n"
        "Subject: XSS in parking permit search\n\n"
        f"{REPORT}\n"
    )
    found = detect_forward("FW: XSS in parking permit search", english, [])
    assert found is not None and found.style == "Outlook"
    assert (found.reporter_address, found.reporter_name) == ("sam@finder.example", "Sam Finder")
    assert found.text == REPORT and found.note == "Can you have a look?"
    dutch = (
        "Ter info.\n\n"
        "Van: Eva Onderzoeker <eva@researcher.example>\n"
        "Verzonden: maandag 2 februari 2026 10:12\n"
        "Aan: Info <info@haaksbergen.example>\n"
        "Onderwerp: Lek in parkeervergunning\n\n"
        "Beste mensen, ...\n"
    )
    found = detect_forward("Doorst: Lek in parkeervergunning", dutch, [])
    assert found is not None and found.reporter_address == "eva@researcher.example"
    assert found.subject == "Lek in parkeervergunning"
    old = (
        "-----Oorspronkelijk bericht-----\n"
        "Van: Eva Onderzoeker [mailto:eva@researcher.example] \n"
        "Verzonden: maandag 2 februari 2026 10:12\n"
        "Aan: Info\n"
        "Onderwerp: Lek in parkeervergunning\n\n"
        "Beste mensen, ...\n"
    )
    found = detect_forward("WG: Lek in parkeervergunning", old, [])
    assert found is not None and found.reporter_address == "eva@researcher.example"
    assert found.reporter_name == "Eva Onderzoeker"


def test_outlook_reply_history_is_not_a_forward() -> None:
    text = (
        "Thanks, here is more.\n\n"
        "________________________________\n"
        "From: CVD team <security@haaksbergen.example>\n"
        "Sent: Monday, February 2, 2026 10:12 AM\n"
        "Subject: Receipt confirmation\n\nThank you\n"
    )
    assert detect_forward("RE: Receipt confirmation", text, []) is None


def test_outlook_without_an_address_keeps_the_name() -> None:
    text = (
        "________________________________\n"
        "From: Sam Finder\nSent: Monday, February 2, 2026 10:12 AM\nSubject: XSS\n\nbody\n"
    )
    found = detect_forward("FW: XSS", text, [])
    assert found is not None
    assert (found.reporter_address, found.reporter_name) == (None, "Sam Finder")


def test_apple_mail_quoted_forward() -> None:
    text = (
        "Begin forwarded message:\n\n"
        "> From: Sam Finder <sam@finder.example>\n"
        "> Subject: XSS in parking permit search\n"
        "> Date: 2 February 2026 at 10:12:00 CET\n"
        "> To: info@haaksbergen.example\n"
        ">\n> Hello,\n> the search page echoes its input.\n"
    )
    found = detect_forward("Fwd: XSS in parking permit search", text, [])
    assert found is not None and found.style == "Apple Mail"
    assert found.reporter_address == "sam@finder.example"
    assert found.text == "Hello,\nthe search page echoes its input."


def test_a_forward_of_a_forward_finds_the_first_reporter() -> None:
    text = (
        "Voor jullie.\n\n"
        "---------- Forwarded message ---------\n"
        "From: Helpdesk <helpdesk@haaksbergen.example>\n"
        "Date: Mon, 2 Feb 2026 at 11:00\n"
        "Subject: Fwd: XSS\n\n"
        "Kwam binnen bij de helpdesk.\n\n"
        "---------- Forwarded message ---------\n"
        "From: Sam Finder <sam@finder.example>\n"
        "Date: Mon, 2 Feb 2026 at 10:12\n"
        "Subject: XSS\n\n"
        f"{REPORT}\n"
    )
    found = detect_forward("Fwd: Fwd: XSS", text, [])
    assert found is not None and found.reporter_address == "sam@finder.example"
    assert found.text == REPORT
    assert "Voor jullie." in found.note and "helpdesk" in found.note


def _with_attached(subject: str, inner_subject: str) -> bytes:
    inner = EmailMessage()
    inner["From"] = "Sam Finder <sam@finder.example>"
    inner["Subject"] = inner_subject
    inner["Date"] = "Mon, 02 Feb 2026 10:12:00 +0100"
    inner["Message-ID"] = "<orig@finder.example>"
    inner.set_content(REPORT)
    outer = EmailMessage()
    outer["From"] = "colleague@haaksbergen.example"
    outer["Subject"] = subject
    outer.set_content("Zie bijlage.")
    outer.add_attachment(inner)
    return bytes(outer)


def test_attached_message_with_forward_subject() -> None:
    raw = _with_attached("FW: XSS in parking permit search", "XSS in parking permit search")
    found = detect_forward(
        "FW: XSS in parking permit search", "Zie bijlage.", attachment_payloads(raw)
    )
    assert found is not None and found.style == "attached message"
    assert found.reporter_address == "sam@finder.example"
    assert found.text.strip() == REPORT and found.note == "Zie bijlage."


def test_an_attached_example_mail_in_a_report_is_not_a_forward() -> None:
    raw = _with_attached("Phishing mail in your name", "Uw belastingaanslag")
    payloads = attachment_payloads(raw)
    assert detect_forward("Phishing mail in your name", "See the attached mail.", payloads) is None


def test_plain_report_is_not_a_forward() -> None:
    assert detect_forward("XSS", REPORT, []) is None
    assert has_forward_prefix("Fwd: x") and has_forward_prefix("Doorst: x")
    assert has_forward_prefix("WG: x") and not has_forward_prefix("Re: x")
